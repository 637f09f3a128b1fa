"""The few-shot learner interface that every method in the book implements.

Defined in the chapter "Core concepts". A learner is an ``nn.Module`` called as
``learner(support_x, support_y, query_x)``; it returns predictions for the queries: class
scores (logits) ``[M, N]`` for an episode of ``N`` classes, or ``[B, M, N]`` for a batch of
``B`` episodes. Training calls :meth:`FewShotLearner.loss` on a batch of episodes, and
evaluation calls :meth:`FewShotLearner.predict`; so any learner works with
:func:`~metabook.evaluation.evaluate` and :func:`~metabook.training.meta_train`.

The number of classes is decided once, by the :class:`~metabook.data.episodes.Episode`
(which checked its labels when it was built), and handed to the learner as ``ways``;
a learner called on bare tensors without ``ways`` derives it with :func:`episode_ways`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metabook._compat import warn_deprecated
from metabook.data.episodes import Episode, is_batched

__all__ = [
    "FewShotLearner",
    "ModifiedHausdorff",
    "NearestNeighbour",
    "class_max",
    "each_query_after",
    "embedding_size",
    "episode_ways",
    "ink_points",
    "modified_hausdorff",
    "per_task",
    "standardise_by_support",
    "uses_batch_statistics",
]

TaskFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def per_task(
    fn: TaskFn, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
) -> torch.Tensor:
    """``fn(support_x, support_y, query_x)`` for one episode, or for each episode of a batch
    (a leading task dimension), the results stacked: for learners that adapt per task."""
    if not is_batched(support_x, support_y):
        return fn(support_x, support_y, query_x)
    return torch.stack(
        [fn(sx, sy, qx) for sx, sy, qx in zip(support_x, support_y, query_x, strict=True)]
    )


def episode_ways(
    support_y: torch.Tensor,
    ways: int | None = None,
    max_ways: int | None = None,
    learner: nn.Module | None = None,
) -> int:
    """The number of classes of an episode: ``ways`` when the caller knows it (an
    :class:`~metabook.data.episodes.Episode` does), otherwise the largest support label plus
    one (which waits for the device). With ``max_ways`` it is checked against a learner
    built for at most that many classes (label inputs and outputs of a fixed size)."""
    if ways is None:
        ways = int(support_y.max()) + 1
    if max_ways is not None and ways > max_ways:
        name = type(learner).__name__ if learner is not None else "learner"
        raise ValueError(
            f"this {name} was built for at most {max_ways} ways; the episode has {ways}: "
            f"build it with max_ways={ways} or more"
        )
    return ways


def embedding_size(backbone: nn.Module) -> int:
    """The size of a backbone's output, which it declares as ``embedding_dim`` (as
    :class:`~metabook.models.Conv4` and :class:`~metabook.models.BagOfWords` do)."""
    size = getattr(backbone, "embedding_dim", None)
    if not isinstance(size, int):
        raise ValueError(
            f"{type(backbone).__name__} does not declare its output size as an integer "
            "embedding_dim attribute; give the learner embedding_dim= yourself"
        )
    return size


class FewShotLearner(nn.Module):
    """Base class of few-shot learners: implement :meth:`forward`, override the rest at will.

    Two class attributes tell :mod:`metabook.registry` how to build a learner around the
    book's backbone: ``needs_head`` (the backbone ends in a linear layer with one output
    per class, so the learner classifies exactly that many classes) and :meth:`from_backbone`
    (how the backbone and the hyper-parameters are passed to the constructor). A third,
    ``queries_apart``, says that the architecture keeps the queries apart (each query's
    prediction depends on the support set and on itself only, as long as no layer
    normalises with batch statistics): :meth:`predict_each` is then :meth:`predict`.
    """

    needs_head: ClassVar[bool] = False
    queries_apart: ClassVar[bool] = False

    @classmethod
    def from_backbone(cls, backbone: nn.Module, ways: int, **hyper: Any) -> FewShotLearner:
        """The learner around ``backbone`` for ``ways``-way episodes: ``cls(backbone, **hyper)``
        unless a learner needs more (its embedding size, its largest number of classes)."""
        return cls(backbone, **hyper)

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        ways: int | None = None,
    ) -> torch.Tensor:
        """Predictions for ``query_x`` after seeing the labelled support set (of ``ways``
        classes; derived from ``support_y`` when not given)."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def query_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of query predictions: cross-entropy for class scores ``[..., M, N]``
        against labels ``[..., M]``, mean squared error for regression targets."""
        if target.is_floating_point():
            return F.mse_loss(prediction, target)
        return F.cross_entropy(prediction.reshape(-1, prediction.shape[-1]), target.reshape(-1))

    def _forward_episode(self, episode: Episode) -> torch.Tensor:
        """The learner on an episode, given the episode's number of classes."""
        if not _forward_takes_ways(type(self)):
            warn_deprecated(
                f"{type(self).__name__}.forward(support_x, support_y, query_x) without ways",
                "forward(support_x, support_y, query_x, ways=None)",
                stacklevel=4,
            )
            return self(episode.support_x, episode.support_y, episode.query_x)
        ways = None if episode.regression else episode.ways
        return self(episode.support_x, episode.support_y, episode.query_x, ways)

    def loss(self, episode: Episode) -> torch.Tensor:
        """The meta-training loss on an episode or a batch: :meth:`query_loss` of the
        predictions for the queries."""
        if episode.query_y is None:
            raise ValueError("a training episode needs query_y")
        return self.query_loss(self._forward_episode(episode), episode.query_y)

    def predict(self, episode: Episode) -> torch.Tensor:
        """Predictions without building a graph: class indices, or values for regression.

        Learners that adapt by gradient descent at test time override this.
        """
        with torch.no_grad():
            out = self._forward_episode(episode)
        return out if episode.regression else out.argmax(-1)

    def predict_each(self, episode: Episode) -> torch.Tensor:
        """Like :meth:`predict`, but each query is predicted on its own, with the whole
        support set: the inductive setting, in which no query can influence another's
        prediction (e.g. through BatchNorm's batch statistics). Where a model normalises
        with batch statistics, a query is normalised with those of the support set and
        itself, never by itself alone.

        By definition this is :meth:`predict` on each of
        :meth:`~metabook.data.episodes.Episode.single_queries`, which is what this default
        does (a batch of episodes is split into its tasks first); a metric learner embeds
        the support set and the one query together. Learners whose adaptation reads only
        the support set override it to adapt once per episode and then predict the queries
        one by one, each beside the support set (:func:`each_query_after`). Learners whose
        ``queries_apart`` is true predict the queries together: the same predictions,
        unless a layer normalises with batch statistics (:func:`uses_batch_statistics`), in
        which case this default applies.
        """
        if self.queries_apart and not uses_batch_statistics(self):
            return self.predict(episode)
        if episode.batched:
            return torch.stack(
                [self.predict_each(episode.task(b)) for b in range(episode.num_tasks)]
            )
        return torch.cat([self.predict(one) for one in episode.single_queries()])


def uses_batch_statistics(module: nn.Module) -> bool:
    """Whether a BatchNorm layer of ``module`` would normalise with the statistics of the
    batch it is given (it is training, or it keeps no running statistics), so that
    examples in one call influence each other's outputs."""
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and (m.training or not m.track_running_stats)
        for m in module.modules()
    )


def each_query_after(
    episode: Episode,
    adapt: Callable[[torch.Tensor, torch.Tensor], Any],
    call: Callable[[Any, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """:meth:`FewShotLearner.predict_each` for a learner that adapts to the support set
    alone: ``adapt(support_x, support_y)`` once per task (e.g. MAML's adapted parameters),
    then ``call(adapted, inputs)`` for each query on its own, without a graph; class
    indices, or values for regression.

    Each query is called in one batch with the support set, and its own row of the output
    kept: a model that normalises with batch statistics then normalises the query with
    those of the support set and that query, as a metric learner embedding the support set
    and one query does (Nichol et al., 2018's non-transductive setting). Called alone, a
    query would be normalised by its own statistics, which nothing in training resembles.
    """
    if episode.batched:
        return torch.stack(
            [each_query_after(episode.task(b), adapt, call) for b in range(episode.num_tasks)]
        )
    adapted = adapt(episode.support_x, episode.support_y)
    support_x = episode.support_x
    with torch.no_grad():
        out = torch.cat(
            [call(adapted, torch.cat([support_x, query[None]]))[-1:] for query in episode.query_x]
        )
    return out if episode.regression else out.argmax(-1)


def _each_query_of_adapted(
    model: nn.Module,
    adapt: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
    episode: Episode,
) -> torch.Tensor:
    """:func:`each_query_after` for a learner whose ``adapt`` returns new parameters of
    ``model`` (Reptile, the Meta-LSTM): adapted without a graph, as :meth:`predict` does,
    then ``model`` with them on each query alone."""
    return each_query_after(
        episode,
        torch.no_grad()(adapt),
        lambda params, query: functional_call(model, params, (query,)),
    )


_TAKES_WAYS: dict[type, bool] = {}


def _forward_takes_ways(cls: type[FewShotLearner]) -> bool:
    """Whether a learner class's ``forward`` accepts ``ways`` (learners written for
    metabook 0.1 take three arguments); decided once per class."""
    if cls not in _TAKES_WAYS:
        parameters = inspect.signature(cls.forward).parameters.values()
        _TAKES_WAYS[cls] = any(p.name == "ways" or p.kind is p.VAR_KEYWORD for p in parameters)
    return _TAKES_WAYS[cls]


def standardise_by_support(z: torch.Tensor, support: int, eps: float = 1e-6) -> torch.Tensor:
    """Embeddings ``[..., S+M, D]`` of an episode (its ``support`` examples first), centred on
    the mean of the support rows and divided by their root-mean-square feature.

    Afterwards the support rows have mean zero and mean square one per feature, and a query
    row is mapped by the same shift and scale: the statistics come from the support set
    only, so a query's result does not depend on the other queries. Sequence learners need
    this (chapter "Model-based meta-learning"): the embeddings of an untrained encoder are
    nearly parallel (ReLU features share a large common part), and without it a Transformer
    or a MANN sees examples that differ too little to learn which ones to attend to.
    """
    if not 1 <= support <= z.shape[-2]:
        raise ValueError(f"support must be between 1 and {z.shape[-2]} rows; got {support}")
    mean = z[..., :support, :].mean(-2, keepdim=True)
    centred = z - mean
    rms = centred[..., :support, :].pow(2).mean((-2, -1), keepdim=True).add(eps).sqrt()
    return centred / rms


def class_max(
    scores: torch.Tensor, support_y: torch.Tensor, ways: int | None = None
) -> torch.Tensor:
    """For scores ``[..., M, S]`` against ``S`` support examples, the best score per class.

    Returns ``[..., M, N]``: entry ``n`` is the largest score among the support examples of
    class ``n``, whatever their order.
    """
    ways = episode_ways(support_y, ways)
    index = support_y.unsqueeze(-2).expand_as(scores)
    out = scores.new_full((*scores.shape[:-1], ways), float("-inf"))
    return out.scatter_reduce(-1, index, scores, reduce="amax")


class NearestNeighbour(FewShotLearner):
    """Label each query like its nearest support example (Euclidean distance).

    With no ``embedding`` the distance is taken between raw pixels: the baseline that any
    meta-learner must beat. The scores are minus the distance to the nearest support
    example of each class, so ``argmax`` is the 1-nearest-neighbour rule.
    """

    def __init__(self, embedding: nn.Module | None = None) -> None:
        super().__init__()
        self.embedding = embedding if embedding is not None else nn.Flatten(start_dim=-3)

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        ways: int | None = None,
    ) -> torch.Tensor:
        support = self.embedding(support_x)
        query = self.embedding(query_x)
        return class_max(-torch.cdist(query, support), support_y, ways)


def ink_points(image: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The ``[K, 2]`` (row, column) coordinates of the inked pixels of an image
    ``[1, H, W]`` or ``[H, W]`` (ink above ``threshold``), centred at their mean: the point
    set of Lake et al.'s one-shot baseline. A blank image is a :class:`ValueError`."""
    points = torch.nonzero(image.squeeze(0) > threshold).to(torch.float64)
    if points.numel() == 0:
        raise ValueError("the image has no inked pixel: the point-set distance needs ink")
    return points - points.mean(0)


def modified_hausdorff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The modified Hausdorff distance of Dubuisson and Jain (1994) between point sets
    ``a`` ``[K, d]`` and ``b`` ``[L, d]``: the larger of the mean distance from a point of
    ``a`` to its nearest point of ``b`` and the same from ``b`` to ``a``."""
    d = torch.cdist(a, b)
    return torch.maximum(d.min(1).values.mean(), d.min(0).values.mean())


class ModifiedHausdorff(FewShotLearner):
    """The baseline of Lake et al.'s 20 one-shot runs: label each query like the support
    image at the smallest :func:`modified_hausdorff` distance between their inked pixels
    (each set centred at its mean), as the official demo does on the original 105 x 105
    images, where it errs on 38.8% of the queries. Nothing is learned; the scores are minus
    the distance to the nearest support image of each class."""

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = threshold

    def _one(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        ways: int | None,
    ) -> torch.Tensor:
        # Nearest-point distances from k-d trees: exact, and far faster than full matrices
        # (imported here: SciPy's spatial module would slow down importing metabook).
        from scipy.spatial import cKDTree

        support = [cKDTree(ink_points(x, self.threshold).cpu().numpy()) for x in support_x]
        query = [cKDTree(ink_points(x, self.threshold).cpu().numpy()) for x in query_x]
        rows = [
            [max(s.query(q.data)[0].mean(), q.query(s.data)[0].mean()) for s in support]
            for q in query
        ]
        distance = torch.tensor(rows, dtype=torch.float64).to(support_x.device, support_x.dtype)
        return class_max(-distance, support_y, ways)

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        ways: int | None = None,
    ) -> torch.Tensor:
        return per_task(
            lambda sx, sy, qx: self._one(sx, sy, qx, ways), support_x, support_y, query_x
        )
