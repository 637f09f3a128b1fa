"""The configuration of a training run: one typed record of everything that made a learner.

:func:`~metabook.training.meta_train` saves it in every checkpoint and
:func:`~metabook.registry.load_learner` reads it back to rebuild the exact learner, its
backbone and its preprocessing. It holds plain values only (numbers, strings, booleans), so
a checkpoint loads with ``torch.load(weights_only=True)`` and a configuration can be
written as a file. ``schema`` numbers the layout: a checkpoint from a newer layout is
refused with a message instead of being misread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

__all__ = ["SCHEMA_VERSION", "BackboneConfig", "DataConfig", "RunConfig", "TrainConfig"]

#: The layout of :meth:`RunConfig.to_dict`; raise it when a field changes meaning.
SCHEMA_VERSION = 1

_PLAIN = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class BackboneConfig:
    """The backbone a registry learner is built around (:class:`~metabook.models.Conv4`).

    ``channels`` per block and ``norm`` (``"batch"``, ``"layer"`` or ``"none"``); the input
    size comes from :class:`DataConfig`."""

    name: str = "conv4"
    channels: int = 64
    norm: str = "batch"


@dataclass(frozen=True)
class DataConfig:
    """What the learner is trained on and how its inputs are prepared.

    ``dataset`` is ``"omniglot:SPLIT[+SPLIT...]"``; ``image_size`` and ``in_channels`` fix the
    backbone's input; ``rotations`` adds rotated characters as new classes, ``augment``
    distorts every training image, ``within_alphabet`` draws each training episode inside
    one alphabet. Validation holds out either ``val_fraction`` of the classes, drawn at
    random (rotated copies of a held-out character are held out with it), or, when
    ``val_alphabets`` names some, those whole alphabets: the learner never sees them, and
    the validation episodes are drawn within one of them, as the official one-shot runs
    are (``val_fraction`` is then unused)."""

    dataset: str = "omniglot:background_small1+background_small2"
    image_size: int = 28
    in_channels: int = 1
    rotations: bool = False
    augment: bool = False
    within_alphabet: bool = False
    val_fraction: float = 0.2
    val_alphabets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = self.val_alphabets
        if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"val_alphabets must be a list of alphabet names, got {names!r}")
        object.__setattr__(self, "val_alphabets", tuple(names))


@dataclass(frozen=True)
class TrainConfig:
    """How the learner is meta-trained: ``steps`` of ``meta_batch`` episodes with Adam at
    learning rate ``lr`` (gradients clipped to norm ``grad_clip`` if given), validated on
    ``val_episodes`` episodes every ``val_every`` steps; ``seed`` seeds the task stream, the
    distortions and the weights."""

    steps: int = 1000
    meta_batch: int = 1
    lr: float = 1e-3
    val_episodes: int = 100
    val_every: int = 100
    seed: int = 0
    grad_clip: float | None = None


@dataclass(frozen=True)
class RunConfig:
    """Everything that made a learner: the method and its hyper-parameters, the episodes,
    the backbone, the data and the training.

    Args:
        method: a name of :data:`metabook.registry.LEARNERS` (``"protonet"``, ``"maml"``, ...).
        ways: classes per test episode (the size of the head of learners that have one).
        shots, queries: support and query examples per class.
        train_ways: classes per training episode, when it differs from ``ways`` (Snell et
            al.'s higher-way training; only for learners without a fixed head).
        hyper: the learner's hyper-parameters; the registry fills in the method's defaults
            for any not given (:func:`~metabook.registry.resolve`).
        backbone: the backbone; ``None`` takes the method's default.
        data, train: see :class:`DataConfig` and :class:`TrainConfig`.
        command: the command line that started the run, if any.
    """

    method: str
    ways: int = 5
    shots: int = 1
    queries: int = 5
    train_ways: int | None = None
    hyper: Mapping[str, Any] = field(default_factory=dict)
    backbone: BackboneConfig | None = None
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    command: str = ""
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        for name in ("ways", "shots", "queries"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        bad = {k: v for k, v in self.hyper.items() if not isinstance(v, _PLAIN)}
        if bad:
            raise ValueError(
                f"hyper-parameters must be numbers, strings or booleans; got {bad}: give "
                "the learner objects such as loss functions in code, not in a configuration"
            )
        object.__setattr__(self, "hyper", dict(self.hyper))

    @property
    def episode_ways(self) -> int:
        """Classes per training episode."""
        return self.train_ways or self.ways

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested data (what a checkpoint stores)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """The configuration :meth:`to_dict` wrote, checked: an unknown key or a newer
        schema is a :class:`ValueError` that says so."""
        schema = data.get("schema")
        if not isinstance(schema, int):
            raise ValueError("this is not a metabook run configuration (no schema number)")
        if schema > SCHEMA_VERSION:
            raise ValueError(
                f"the run configuration has schema {schema}, newer than this metabook's "
                f"({SCHEMA_VERSION}): upgrade metabook to read it"
            )
        values = _known(cls, data, "run configuration")
        sections = {"backbone": BackboneConfig, "data": DataConfig, "train": TrainConfig}
        for name, section in sections.items():
            if values.get(name) is not None:
                values[name] = section(**_known(section, values[name], name))
        return cls(**values)


def _known(cls: type, data: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``data`` as keyword arguments of the dataclass ``cls``; unknown keys are an error."""
    if not isinstance(data, Mapping):
        raise ValueError(f"the {what} must be a table of values, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {what} fields {unknown}: the known ones are {sorted(names)}")
    return dict(data)
