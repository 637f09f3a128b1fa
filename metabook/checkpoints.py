"""Checkpoint files: the weights of a learner with what made them (chapter "Core concepts").

A checkpoint written by :func:`~metabook.training.meta_train` holds the learner's
``state_dict``, the step, the training history, the :class:`~metabook.config.RunConfig` of
the run and what a resumed run needs to continue exactly (the optimiser's state and every
random generator's); only tensors and plain data, so reading it never runs code from the
file (``torch.load(weights_only=True)``). :func:`~metabook.registry.load_learner` rebuilds
the learner from it.

The same training state saves to the same bytes: the file is serialised in memory (the
archive's name inside the file is then always the same) before it is written atomically.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metabook._version import __version__
from metabook.config import BackboneConfig, DataConfig, RunConfig, TrainConfig
from metabook.files import atomic_write

__all__ = ["Checkpoint", "load_checkpoint", "load_weights"]

FORMAT = "metabook-checkpoint"


def _read_blob(path: Path) -> Any:
    """``torch.load`` of ``path``, every failure turned into one line that says what the
    file is; a file that would need unpickling code is refused, never retried unsafely."""
    if path.is_dir():
        raise ValueError(
            f"{path} is a folder, not a checkpoint: give a file in it (last.pt or best.pt), "
            "or continue its run with `metabook train --resume FOLDER`"
        )
    if not path.exists():
        raise FileNotFoundError(f"there is no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty: it is not a checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path} holds Python objects other than tensors and plain data, so metabook does "
            "not load it (reading it would run code from the file); it was not written by "
            "metabook"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise ValueError(
            f"{path} is not a readable checkpoint ({type(err).__name__}): it is truncated, "
            "corrupt or another kind of file"
        ) from err


@dataclass
class Checkpoint:
    """What a checkpoint file holds.

    Attributes:
        state_dict: the learner's weights.
        step: the meta-training step they were saved at.
        history: the losses and validation results up to ``step``.
        config: the run configuration, or ``None`` for a learner trained without one.
        learner: the class name of the learner.
        version: the metabook version that wrote the file.
        training: what resuming needs: the optimiser's and the scheduler's state, the
            random generators' states and the task source's (``None`` in 0.1 files).
    """

    state_dict: dict[str, torch.Tensor]
    step: int
    history: dict[str, Any] = field(default_factory=dict)
    config: RunConfig | None = None
    learner: str = ""
    version: str = ""
    training: dict[str, Any] | None = None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the checkpoint to ``path`` atomically (a reader never sees half a file)."""
        blob = {
            "format": FORMAT,
            "state_dict": self.state_dict,
            "step": self.step,
            "history": self.history,
            "config": None if self.config is None else self.config.to_dict(),
            "learner": self.learner,
            "version": self.version or __version__,
            "training": self.training,
        }
        buffer = io.BytesIO()
        torch.save(blob, buffer)
        data = buffer.getvalue()

        def write(tmp: Path) -> None:
            tmp.write_bytes(data)

        return atomic_write(Path(path), write)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Read a checkpoint written by metabook (this version or 0.1); anything else is a
        :class:`ValueError` of one line."""
        blob = _read_blob(Path(path))
        if not isinstance(blob, dict) or "state_dict" not in blob:
            raise ValueError(f"{path} is not a metabook checkpoint")
        raw = blob.get("config")
        if blob.get("format") == FORMAT:
            config = None if raw is None else RunConfig.from_dict(raw)
        else:
            config = _legacy_config(raw)
        return cls(
            state_dict=blob["state_dict"],
            step=int(blob.get("step", 0)),
            history=blob.get("history") or {},
            config=config,
            learner=str(blob.get("learner", "")),
            version=str(blob.get("version", "0.1")),
            training=blob.get("training"),
        )


def _legacy_config(raw: Any) -> RunConfig | None:
    """The run configuration of a checkpoint written by ``metabook train`` 0.1 (a dict with
    ``method``, ``ways``, ``preprocessing`` and the command's ``args``)."""
    if not isinstance(raw, dict) or "method" not in raw:
        return None
    prep, args = raw.get("preprocessing", {}), raw.get("args", {})
    return RunConfig(
        method=raw["method"],
        ways=int(raw["ways"]),
        shots=int(args.get("shots", 1)),
        queries=int(args.get("queries", 5)),
        train_ways=args.get("train_ways"),
        backbone=BackboneConfig(),
        data=DataConfig(
            dataset=prep.get("dataset", DataConfig.dataset),
            image_size=int(prep.get("image_size", 28)),
            rotations=bool(prep.get("rotations", False)),
            augment=bool(prep.get("augment", False)),
            within_alphabet=bool(args.get("within_alphabet", False)),
            val_fraction=float(args.get("val_fraction", 0.2)),
        ),
        train=TrainConfig(
            steps=int(args.get("steps", 1000)),
            meta_batch=int(args.get("meta_batch", 1)),
            lr=float(args.get("lr", 1e-3)),
            val_episodes=int(args.get("val_episodes", 100)),
            val_every=int(args.get("val_every", 100)),
            seed=int(args.get("seed", 0)),
        ),
        command=str(raw.get("command", "")),
    )


def load_weights(learner: nn.Module, checkpoint: Checkpoint, path: object) -> None:
    """Load ``checkpoint``'s weights into ``learner``; weights that do not fit it (another
    method, backbone or number of ways) are a :class:`ValueError` that says so."""
    try:
        learner.load_state_dict(checkpoint.state_dict)
    except RuntimeError as err:
        wanted = learner.state_dict()
        missing = sorted(set(wanted) - set(checkpoint.state_dict))
        unexpected = sorted(set(checkpoint.state_dict) - set(wanted))
        raise ValueError(
            f"the weights in {path} do not fit this {type(learner).__name__} "
            f"({len(missing)} missing, {len(unexpected)} unexpected, or of other shapes): the "
            "checkpoint was written for another method, backbone or number of ways"
        ) from err


def load_checkpoint(path: str | os.PathLike[str], learner: nn.Module | None = None) -> Checkpoint:
    """Read a checkpoint written by :func:`~metabook.training.meta_train` (safely: tensors
    and plain data only). With ``learner`` given, its weights are loaded from it."""
    checkpoint = Checkpoint.read(path)
    if learner is not None:
        load_weights(learner, checkpoint, path)
    return checkpoint
