"""The few-shot learner interface that every method in the book implements.

Defined in the chapter "Core concepts". A learner is an ``nn.Module`` called as
``learner(support_x, support_y, query_x)``; it returns predictions for the queries: class
scores (logits) ``[M, N]`` for an episode of ``N`` classes, or ``[B, M, N]`` for a batch of
``B`` episodes. Training calls :meth:`FewShotLearner.loss` on a batch of episodes, and
evaluation calls :meth:`FewShotLearner.predict`; so any learner works with
:func:`~metabook.evaluation.evaluate` and :func:`~metabook.training.meta_train`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from metabook.data.episodes import Episode, is_batched

__all__ = [
    "FewShotLearner",
    "NearestNeighbour",
    "episode_ways",
    "per_task",
    "standardise_by_support",
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


class FewShotLearner(nn.Module):
    """Base class of few-shot learners: implement :meth:`forward`, override the rest at will."""

    def forward(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """Predictions for ``query_x`` after seeing the labelled support set."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def query_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of query predictions: cross-entropy for class scores ``[..., M, N]``
        against labels ``[..., M]``, mean squared error for regression targets."""
        if target.is_floating_point():
            return F.mse_loss(prediction, target)
        return F.cross_entropy(prediction.reshape(-1, prediction.shape[-1]), target.reshape(-1))

    def loss(self, episode: Episode) -> torch.Tensor:
        """The meta-training loss on an episode or a batch: :meth:`query_loss` of the
        predictions for the queries."""
        if episode.query_y is None:
            raise ValueError("a training episode needs query_y")
        out = self(episode.support_x, episode.support_y, episode.query_x)
        return self.query_loss(out, episode.query_y)

    def predict(self, episode: Episode) -> torch.Tensor:
        """Predictions without building a graph: class indices, or values for regression.

        Learners that adapt by gradient descent at test time override this.
        """
        with torch.no_grad():
            out = self(episode.support_x, episode.support_y, episode.query_x)
        return out if episode.regression else out.argmax(-1)


def episode_ways(learner: nn.Module, support_y: torch.Tensor, max_ways: int) -> int:
    """The number of classes of an episode, checked against a learner built for at most
    ``max_ways`` (label inputs and outputs of a fixed size)."""
    ways = int(support_y.max()) + 1
    if ways > max_ways:
        raise ValueError(
            f"this {type(learner).__name__} was built for at most {max_ways} ways; the episode "
            f"has {ways}: build it with max_ways={ways} or more"
        )
    return ways


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


def class_max(scores: torch.Tensor, support_y: torch.Tensor) -> torch.Tensor:
    """For scores ``[..., M, S]`` against ``S`` support examples, the best score per class.

    Returns ``[..., M, N]``: entry ``n`` is the largest score among the support examples of
    class ``n``, whatever their order.
    """
    ways = int(support_y.max()) + 1
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
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        support = self.embedding(support_x)
        query = self.embedding(query_x)
        return class_max(-torch.cdist(query, support), support_y)
