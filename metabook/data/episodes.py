"""Episodes (tasks) and the N-way K-shot sampler (defined in the chapter "Core concepts").

An *episode* is a small classification problem: a support set of ``N`` classes with ``K``
labelled examples each, and a query set of ``Q`` further examples per class to predict.
Labels inside an episode are ``0..N-1``, assigned afresh in every episode, so a learner
cannot memorise which character is "class 3".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Episode", "EpisodeSampler", "TaskSource", "is_batched", "split_classes"]


def _lead_dims(support_x: torch.Tensor, support_y: torch.Tensor, regression: bool) -> int:
    """How many leading dimensions index examples: 1 for one episode, 2 for a batch.

    Class labels have one entry per example. Regression targets may carry a feature
    dimension (``[K, 1]`` beside inputs ``[K, 1]``); then they have the inputs' rank.
    """
    same_rank = support_y.dim() == support_x.dim()
    return support_y.dim() - 1 if regression and same_rank else support_y.dim()


def is_batched(support_x: torch.Tensor, support_y: torch.Tensor) -> bool:
    """Whether ``support_x``/``support_y`` hold a batch of episodes (a leading task dim).

    Integer labels mean classification, floating-point targets regression.
    """
    regression = support_y.is_floating_point()
    return _lead_dims(support_x, support_y, regression) == 2


def _check_shapes(
    sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor, qy: torch.Tensor | None, label_dims: int
) -> None:
    """The shapes of an episode's four tensors agree (``label_dims``: 1 single, 2 batched)."""
    if label_dims not in (1, 2):
        raise ValueError(
            f"support_y must have shape [N*K] (one episode) or [B, N*K] (a batch); "
            f"got {tuple(sy.shape)}"
        )
    batched = label_dims == 2
    if sx.shape[:label_dims] != sy.shape[:label_dims]:
        raise ValueError(
            f"support_x {tuple(sx.shape)} and support_y {tuple(sy.shape)} disagree on the "
            f"number of {'tasks and ' if batched else ''}support examples"
        )
    if batched and qx.shape[:1] != sx.shape[:1]:
        raise ValueError(
            f"query_x {tuple(qx.shape)} has {qx.shape[0]} tasks but support_x has {sx.shape[0]}"
        )
    if qx.shape[label_dims:] != sx.shape[label_dims:]:
        raise ValueError(
            f"query examples {tuple(qx.shape[label_dims:])} and support examples "
            f"{tuple(sx.shape[label_dims:])} have different shapes"
        )
    if qy is not None and qy.shape[:label_dims] != qx.shape[:label_dims]:
        raise ValueError(
            f"query_x {tuple(qx.shape)} and query_y {tuple(qy.shape)} disagree on the "
            "number of query examples"
        )


def _check_inputs(**inputs: torch.Tensor | None) -> None:
    """NaN or infinite inputs would be scored, silently, as some class: refuse them."""
    for name, x in inputs.items():
        if x is not None and x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ValueError(
                f"{name} holds NaN or infinite values ({int((~torch.isfinite(x)).sum())} of "
                f"{x.numel()}): check the data or the transform that made them"
            )


def _check_labels(sy: torch.Tensor, qy: torch.Tensor | None) -> int:
    """Check class labels once, where the episode is built; return the number of classes."""
    for name, labels in (("support_y", sy), ("query_y", qy)):
        if labels is not None and (labels.dtype.is_floating_point or labels.dtype == torch.bool):
            raise ValueError(f"{name} must hold integer class labels, got {labels.dtype}")
    if sy.numel() == 0:
        return 0
    if int(sy.min()) < 0:
        raise ValueError(f"support_y holds a negative label ({int(sy.min())})")
    ways = int(sy.max()) + 1
    present = torch.nn.functional.one_hot(sy, ways).sum(-2) > 0
    if not bool(present.all()):
        missing = torch.nonzero(~present.reshape(-1, ways).all(0)).reshape(-1).tolist()
        raise ValueError(
            f"support_y labels the classes 0..{ways - 1} but has no example of class "
            f"{missing[0]}: an N-way episode needs support examples of every label 0..N-1"
        )
    if qy is not None and qy.numel():
        low, high = int(qy.min()), int(qy.max())
        if low < 0 or high >= ways:
            raise ValueError(
                f"query_y holds label {low if low < 0 else high}, outside 0..{ways - 1} "
                f"(the support set has {ways} classes)"
            )
    return ways


@dataclass
class Episode:
    """One episode, or a batch of ``B`` episodes stacked along a leading task dimension.

    Shapes (for one episode): ``support_x [N*K, *shape]``, ``support_y [N*K]``,
    ``query_x [M, *shape]``, ``query_y [M]``; a batch adds a leading ``B`` to each.
    ``query_y`` may be ``None`` at test time. For classification the labels are integers in
    ``0..N-1``; for regression ``support_y`` and ``query_y`` hold the targets and
    ``regression=True`` skips the label checks. ``info`` carries whatever the sampler wants
    to record (the dataset classes behind each label, a sine wave's amplitude, ...).

    The episode is checked once, when it is built: shapes, finite inputs, label types and
    ranges (every class ``0..N-1`` has a support example). It then
    knows whether it is a batch (:attr:`batched`) and how many classes it has
    (:attr:`ways`), and passes both to the learners, so that no learner re-derives them
    from the tensors (which would wait for the device). Copies made by :meth:`to` and
    :meth:`task` keep what was checked.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor | None = None
    regression: bool = False
    info: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("support_x", "support_y", "query_x"):
            if not isinstance(getattr(self, name), torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(getattr(self, name))}")
        label_dims = _lead_dims(self.support_x, self.support_y, self.regression)
        _check_shapes(self.support_x, self.support_y, self.query_x, self.query_y, label_dims)
        _check_inputs(support_x=self.support_x, query_x=self.query_x)
        self._batched = label_dims == 2
        self._ways = 0 if self.regression else _check_labels(self.support_y, self.query_y)

    def _copy(self, **tensors: Any) -> Episode:
        """A copy with some fields replaced, keeping what was checked (no new checks)."""
        copy = object.__new__(Episode)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(tensors)
        return copy

    @property
    def batched(self) -> bool:
        """Whether this is a batch of episodes (a leading task dimension)."""
        return self._batched

    @property
    def ways(self) -> int:
        """The number of classes ``N`` (the largest support label plus one)."""
        if self.regression:
            raise AttributeError("a regression episode has no classes")
        return self._ways

    @property
    def num_tasks(self) -> int:
        """``B`` for a batch, 1 for a single episode."""
        return self.support_x.shape[0] if self.batched else 1

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Episode:
        """A copy with every tensor moved to ``device``."""
        names = ("support_x", "support_y", "query_x", "query_y")
        moved = {
            name: getattr(self, name).to(device, non_blocking=non_blocking)
            for name in names
            if getattr(self, name) is not None
        }
        return self._copy(**moved)

    def task(self, index: int) -> Episode:
        """Episode ``index`` of a batch (it keeps the batch's number of classes)."""
        if not self.batched:
            raise ValueError("task() needs a batch of episodes; this is a single episode")
        info = self.info
        return self._copy(
            support_x=self.support_x[index],
            support_y=self.support_y[index],
            query_x=self.query_x[index],
            query_y=None if self.query_y is None else self.query_y[index],
            info=None if info is None else {key: value[index] for key, value in info.items()},
            _batched=False,
        )

    def single_queries(self) -> list[Episode]:
        """One episode per query, each with the whole support set and that query alone:
        for inductive evaluation, where no query can influence another's prediction (a
        single episode only; split a batch with :meth:`task` first)."""
        if self.batched:
            raise ValueError("single_queries() takes a single episode: use task(b) first")
        return [
            self._copy(
                query_x=self.query_x[i : i + 1],
                query_y=None if self.query_y is None else self.query_y[i : i + 1],
            )
            for i in range(self.query_x.shape[0])
        ]

    @staticmethod
    def stack(episodes: Sequence[Episode]) -> Episode:
        """Stack single episodes of equal shapes into a batch."""
        if not episodes:
            raise ValueError("cannot stack an empty list of episodes")
        if any(episode.batched for episode in episodes):
            raise ValueError("Episode.stack takes single episodes, not batches")
        first = episodes[0]
        info = None
        if first.info is not None:
            info = {
                key: torch.stack([torch.as_tensor(e.info[key]) for e in episodes])  # type: ignore[index]
                for key in first.info
            }
        query_y = None
        if first.query_y is not None:
            query_y = torch.stack([e.query_y for e in episodes])  # type: ignore[misc]
        try:
            return Episode(
                torch.stack([e.support_x for e in episodes]),
                torch.stack([e.support_y for e in episodes]),
                torch.stack([e.query_x for e in episodes]),
                query_y,
                regression=first.regression,
                info=info,
            )
        except RuntimeError as err:
            raise ValueError(f"episodes of different shapes cannot be stacked: {err}") from err


class TaskSource(ABC):
    """Where episodes come from: every sampler and task family of metabook is one.

    A source draws episodes with :meth:`sample` (one, or a batch on a leading dimension),
    from its own seeded generator or from one it is given, and makes fixed lists with
    :meth:`episodes`. A source is not iterable: it never ends, so
    :func:`~metabook.evaluation.evaluate` takes ``source.episodes(count)`` instead.

    Subclasses set ``seed`` and ``generator`` and implement :meth:`sample`.
    """

    seed: int
    generator: torch.Generator

    @abstractmethod
    def sample(
        self, batch_size: int | None = None, generator: torch.Generator | None = None
    ) -> Episode:
        """One episode, or a batch of ``batch_size`` episodes, drawn with ``generator``
        (by default the source's own)."""

    def state_dict(self) -> dict[str, Any]:
        """Where the source's own random generator stands: a checkpoint keeps it, so that a
        resumed run draws the episodes the uninterrupted run would have drawn."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put the generator where :meth:`state_dict` found it."""
        self.generator.set_state(state["generator"])

    def episodes(self, count: int, seed: int | None = None) -> list[Episode]:
        """A fixed list of ``count`` episodes drawn from ``seed`` (by default the source's).

        The list does not depend on what the source drew before, so an evaluation on
        ``source.episodes(600, seed=0)`` is the same every time.
        """
        if count < 0:
            raise ValueError(f"count must be non-negative, got {count}")
        generator = torch.Generator().manual_seed(self.seed if seed is None else seed)
        return [self.sample(generator=generator) for _ in range(count)]


def _batch_count(batch_size: int | None) -> int:
    """How many episodes ``sample(batch_size)`` draws (``None``: one, unbatched)."""
    count = 1 if batch_size is None else batch_size
    if count < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return count


def _integer_labels(labels: Any) -> torch.Tensor:
    """Labels as int64, refusing values that are not whole numbers (``long()`` would
    silently truncate 2.7 to class 2)."""
    labels = torch.as_tensor(labels).reshape(-1)
    if labels.is_floating_point() and not bool((labels == labels.round()).all()):
        raise ValueError(
            "the dataset's labels must be whole numbers (class indices); some are not, e.g. "
            f"{labels[labels != labels.round()][0].item()}"
        )
    return labels.long()


def _labels_of(dataset: Any) -> torch.Tensor:
    """All labels of a map-style dataset, read from an attribute when there is one."""
    for attribute in ("labels", "targets"):
        labels = getattr(dataset, attribute, None)
        if labels is not None and not callable(labels):
            return _integer_labels(labels)
    if isinstance(dataset, torch.utils.data.TensorDataset):
        return _integer_labels(dataset.tensors[1])
    return _integer_labels([dataset[i][1] for i in range(len(dataset))])


def _gather(dataset: Any, index: torch.Tensor) -> torch.Tensor:
    """Examples ``index`` of a dataset as one tensor, without Python loops when possible."""
    images = getattr(dataset, "images", None)
    if isinstance(images, torch.Tensor):
        return images[index]
    if isinstance(dataset, torch.utils.data.TensorDataset):
        return dataset.tensors[0][index]
    items = [dataset[int(i)][0] for i in index.reshape(-1)]
    if not all(isinstance(item, torch.Tensor) for item in items):
        kind = type(next(i for i in items if not isinstance(i, torch.Tensor))).__name__
        raise TypeError(
            f"the dataset returns {kind} inputs; give it a transform that makes tensors "
            "(for torchvision datasets, transform=torchvision.transforms.ToTensor())"
        )
    stacked = torch.stack(items)
    return stacked.reshape(*index.shape, *stacked.shape[1:])


def split_classes(
    num_classes: int, sizes: Sequence[int | float], seed: int = 0
) -> list[torch.Tensor]:
    """Split class indices ``0..num_classes-1`` into disjoint random groups.

    ``sizes`` are counts (integers) or fractions summing to at most 1; e.g.
    ``split_classes(1623, [1200, 423])`` or ``split_classes(242, [0.7, 0.3])``. The same
    seed always gives the same split.
    """
    if num_classes <= 0:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if all(isinstance(s, int) for s in sizes):
        counts = [int(s) for s in sizes]
    elif all(0 <= float(s) <= 1 for s in sizes):
        if sum(float(s) for s in sizes) > 1 + 1e-9:
            raise ValueError(f"fractions {list(sizes)} add up to more than 1")
        counts = [int(round(float(s) * num_classes)) for s in sizes]
        if abs(sum(float(s) for s in sizes) - 1) < 1e-9:
            counts[-1] = num_classes - sum(counts[:-1])
    else:
        raise ValueError(f"sizes must be all counts or all fractions in [0, 1], got {sizes}")
    if any(c < 0 for c in counts) or sum(counts) > num_classes:
        raise ValueError(f"cannot split {num_classes} classes into groups of {counts}")
    order = torch.randperm(num_classes, generator=torch.Generator().manual_seed(seed))
    groups, start = [], 0
    for count in counts:
        groups.append(order[start : start + count].sort().values)
        start += count
    return groups


def _class_pools(
    allowed: torch.Tensor, groups: Sequence[int] | torch.Tensor | None, ways: int
) -> list[torch.Tensor]:
    """The pools an episode draws its classes from: all ``allowed`` classes, or each group
    with at least ``ways`` of them."""
    if groups is None:
        return [allowed]
    group_of = torch.as_tensor(groups, dtype=torch.int64).reshape(-1)
    if group_of.numel() <= int(allowed.max()):
        raise ValueError(
            f"groups has {group_of.numel()} entries but class {int(allowed.max())} "
            "needs one: give the group of every class, indexed by class"
        )
    pools = [allowed[group_of[allowed] == g] for g in torch.unique(group_of[allowed])]
    usable = [pool for pool in pools if pool.numel() >= ways]
    if not usable:
        largest = max(pool.numel() for pool in pools)
        raise ValueError(
            f"{ways}-way episodes within one group need a group with {ways} classes, "
            f"but the largest has {largest}; lower ways or drop groups="
        )
    return usable


def _allowed_classes(
    labels: torch.Tensor, classes: Sequence[int] | torch.Tensor | None, ways: int
) -> torch.Tensor:
    """The classes a sampler may use, checked against the dataset's labels."""
    if labels.numel() == 0:
        raise ValueError("the dataset is empty")
    if int(labels.min()) < 0:
        raise ValueError(f"the dataset has a negative label ({int(labels.min())})")
    if classes is None:
        allowed = torch.unique(labels)
    else:
        allowed = torch.unique(torch.as_tensor(classes, dtype=torch.int64))
        missing = allowed[~torch.isin(allowed, labels)]
        if missing.numel():
            raise ValueError(
                f"classes {missing.tolist()[:10]} have no examples in the dataset "
                f"(its labels range over {int(labels.min())}..{int(labels.max())})"
            )
    if allowed.numel() < ways:
        raise ValueError(
            f"{ways}-way episodes need {ways} classes but only {allowed.numel()} are "
            "available; lower ways or allow more classes"
        )
    return allowed


class EpisodeSampler(TaskSource):
    """Draws N-way K-shot episodes from a labelled dataset.

    Args:
        dataset: any map-style dataset of ``(x, label)`` pairs: a metabook dataset, a
            ``TensorDataset``, a torchvision dataset. Labels are read once (from a
            ``labels`` or ``targets`` attribute when present).
        ways, shots, queries: ``N`` classes per episode, ``K`` support and ``Q`` query
            examples per class.
        classes: the dataset classes this sampler may use (for example one part of
            :func:`split_classes`), by default all.
        seed: seeds the sampler's own generator; two samplers with the same arguments and
            seed give the same episodes.
        groups: optionally, the group of every dataset class (a sequence indexed by class,
            e.g. ``Omniglot.class_alphabet``): each episode then draws all its classes from
            one group, chosen uniformly among the groups with at least ``ways`` usable
            classes. This is the within-alphabet protocol of the official one-shot runs.

    The dataset is checked up front: there must be at least ``ways`` classes with at least
    ``shots + queries`` examples each, or a :class:`ValueError` says what is missing.
    In every episode the chosen classes are given labels ``0..N-1`` in random order; the
    support (and query) examples are ordered by that label: class 0's ``K`` examples first.
    """

    def __init__(
        self,
        dataset: Any,
        ways: int,
        shots: int,
        queries: int,
        classes: Sequence[int] | torch.Tensor | None = None,
        seed: int = 0,
        groups: Sequence[int] | torch.Tensor | None = None,
    ) -> None:
        for name, value, low in (("ways", ways, 2), ("shots", shots, 1), ("queries", queries, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        self.dataset, self.ways, self.shots, self.queries = dataset, ways, shots, queries
        labels = _labels_of(dataset)
        allowed = _allowed_classes(labels, classes, ways)
        # classes by their sorted label values: memory in proportion to the number of
        # classes, not to the largest label
        self._labels, dense, self._counts = torch.unique(
            labels, return_inverse=True, return_counts=True
        )
        self._order = torch.argsort(dense, stable=True)
        self._starts = torch.cumsum(self._counts, 0) - self._counts
        needed = shots + queries
        counts = self._counts[self._dense(allowed)]
        short = allowed[counts < needed]
        if short.numel():
            raise ValueError(
                f"{shots} shots + {queries} queries need {needed} examples per class, but "
                f"{short.numel()} of the {allowed.numel()} classes have fewer (e.g. class "
                f"{int(short[0])} has {int(counts[counts < needed][0])}); lower "
                "shots/queries or pass classes= without them"
            )
        self.classes = allowed
        self._pools = _class_pools(allowed, groups, ways)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def _dense(self, classes: torch.Tensor) -> torch.Tensor:
        """The position of each label value among the dataset's sorted label values."""
        return torch.searchsorted(self._labels, classes)

    def _indices(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Dataset indices ``[N, K+Q]`` of one episode, and the dataset class of each label."""
        pool = self._pools[0]
        if len(self._pools) > 1:
            pool = self._pools[int(torch.randint(len(self._pools), (1,), generator=generator))]
        chosen = pool[torch.randperm(pool.numel(), generator=generator)[: self.ways]]
        rows = []
        for cls in self._dense(chosen).tolist():
            within = torch.randperm(int(self._counts[cls]), generator=generator)
            rows.append(self._order[self._starts[cls] + within[: self.shots + self.queries]])
        return torch.stack(rows), chosen

    def sample(
        self, batch_size: int | None = None, generator: torch.Generator | None = None
    ) -> Episode:
        """One episode, or a batch of ``batch_size`` episodes stacked on a leading dimension.

        ``info["classes"]`` holds the dataset class behind each episode label.
        """
        generator = self.generator if generator is None else generator
        count = _batch_count(batch_size)
        index, chosen = zip(*(self._indices(generator) for _ in range(count)), strict=True)
        index_t = torch.stack(index)  # [B, N, K+Q]
        x = _gather(self.dataset, index_t)  # [B, N, K+Q, *shape]
        shape = x.shape[3:]
        labels = torch.arange(self.ways).view(1, self.ways, 1)
        support_y = labels.expand(count, self.ways, self.shots).reshape(count, -1)
        query_y = labels.expand(count, self.ways, self.queries).reshape(count, -1)
        episode = Episode(
            support_x=x[:, :, : self.shots].reshape(count, -1, *shape),
            support_y=support_y,
            query_x=x[:, :, self.shots :].reshape(count, -1, *shape),
            query_y=query_y,
            info={"classes": torch.stack(chosen), "indices": index_t},
        )
        return episode if batch_size is not None else episode.task(0)

    def __repr__(self) -> str:
        return (
            f"EpisodeSampler({self.ways}-way {self.shots}-shot, {self.queries} queries per "
            f"class, {self.classes.numel()} classes)"
        )
