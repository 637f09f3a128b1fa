"""Metric-based learners: Prototypical Networks, Matching Networks and Siamese networks.

Chapter "Siamese networks and prototype losses". Each learner embeds the support and the
query examples with a shared ``backbone`` and classifies a query by comparing embeddings;
meta-training shapes the embedding so that this comparison works on new classes.

The support and query examples of an episode are embedded in one call of the backbone, so
a BatchNorm layer without running statistics (as in :class:`metabook.models.Conv4`)
normalises with the statistics of the whole episode (of the whole batch of episodes, when
a batch is given).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metabook.data.episodes import Episode, is_batched
from metabook.learners.base import FewShotLearner, class_max, embedding_size, episode_ways

__all__ = [
    "MatchingNetwork",
    "ProtoNet",
    "SiameseNetwork",
    "contrastive_loss",
    "pairwise_distance",
    "prototypes",
]

DISTANCES = ("sqeuclidean", "euclidean", "cosine")


def prototypes(
    embeddings: torch.Tensor, labels: torch.Tensor, ways: int | None = None
) -> torch.Tensor:
    """Class means of support embeddings: ``[..., S, D]`` with labels ``[..., S]`` give
    ``[..., N, D]``, whatever the order of the labels (batched; chapter "Siamese networks
    and prototype losses" dissects a source article's version that returns one row per
    example). Every class ``0..N-1`` must have at least one example."""
    ways = episode_ways(labels, ways)
    one_hot = F.one_hot(labels, ways).to(embeddings.dtype)  # [..., S, N]
    counts = one_hot.sum(-2)  # [..., N]
    if bool((counts == 0).any()):
        raise ValueError(f"every class 0..{ways - 1} needs a support example; some have none")
    return one_hot.transpose(-1, -2) @ embeddings / counts.unsqueeze(-1)


def pairwise_distance(a: torch.Tensor, b: torch.Tensor, kind: str = "sqeuclidean") -> torch.Tensor:
    """Distances between ``a [..., M, D]`` and ``b [..., N, D]``: ``[..., M, N]``.

    ``"sqeuclidean"``: ``||a - b||^2``; ``"euclidean"``: ``||a - b||``; ``"cosine"``:
    ``1 - cos(a, b)``.
    """
    if kind == "sqeuclidean":
        diff = a.unsqueeze(-2) - b.unsqueeze(-3)
        return diff.pow(2).sum(-1)
    if kind == "euclidean":
        diff = a.unsqueeze(-2) - b.unsqueeze(-3)
        return diff.pow(2).sum(-1).clamp_min(1e-12).sqrt()
    if kind == "cosine":
        return 1 - F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).transpose(-1, -2)
    raise ValueError(f"unknown distance {kind!r}: choose from {DISTANCES}")


def _embed(
    backbone: Callable[[torch.Tensor], torch.Tensor],
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embed support and query examples in one backbone call; split the result.

    The examples of an episode are along dimension 0, or 1 for a batch of episodes."""
    dim = 1 if is_batched(support_x, support_y) else 0
    split = support_x.shape[dim]
    z = backbone(torch.cat([support_x, query_x], dim=dim))
    return z[..., :split, :], z[..., split:, :]


class ProtoNet(FewShotLearner):
    """Prototypical Networks (Snell et al., 2017).

    A class is represented by the mean of its support embeddings (its *prototype*) and a
    query's class scores are minus its distances to the prototypes, so the softmax over
    classes is ``p(y = k | x) ∝ exp(-d(f(x), c_k))``.

    Args:
        backbone: the embedding ``f`` (e.g. ``Conv4()`` without a head), applied to inputs
            ``[..., C, H, W]`` (or vectors ``[..., D]``).
        distance: ``"sqeuclidean"`` (the paper's, a Bregman divergence: the classifier is
            linear in the embedding), ``"euclidean"`` (the plain distance) or ``"cosine"``.
        scale: multiplies the scores; cosine distances lie in ``[0, 2]`` and need a scale
            (e.g. 10) for a softmax that is not nearly uniform.
    """

    def __init__(self, backbone: nn.Module, distance: str = "sqeuclidean", scale: float = 1.0):
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance {distance!r}: choose from {DISTANCES}")
        self.backbone, self.distance, self.scale = backbone, distance, scale

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        ways: int | None = None,
    ) -> torch.Tensor:
        support, query = _embed(self.backbone, support_x, support_y, query_x)
        centres = prototypes(support, support_y, ways)
        return -self.scale * pairwise_distance(query, centres, self.distance)


class MatchingNetwork(FewShotLearner):
    """Matching Networks (Vinyals et al., 2016), without full-context embeddings.

    The prediction for a query ``x`` is an attention-weighted vote of the support labels,
    ``P(y | x) = sum_i a(x, x_i) [y_i = y]`` with ``a(x, x_i)`` the softmax over the support
    set of ``scale * cos(f(x), f(x_i))``. The learner returns ``log P(y | x)``, so the
    cross-entropy of the learner interface is the paper's negative log-likelihood.
    """

    def __init__(self, backbone: nn.Module, scale: float = 10.0) -> None:
        super().__init__()
        self.backbone, self.scale = backbone, scale

    def attention(self, support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """``a(x, x_i)``: ``[..., M, S]``, each row summing to one."""
        cosine = F.normalize(query, dim=-1) @ F.normalize(support, dim=-1).transpose(-1, -2)
        return torch.softmax(self.scale * cosine, dim=-1)

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        ways: int | None = None,
    ) -> torch.Tensor:
        support, query = _embed(self.backbone, support_x, support_y, query_x)
        one_hot = F.one_hot(support_y, episode_ways(support_y, ways)).to(support.dtype)
        probabilities = self.attention(support, query) @ one_hot  # [..., M, N]
        return probabilities.clamp_min(1e-12).log()


def contrastive_loss(
    distance: torch.Tensor, dissimilar: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """The contrastive loss of Hadsell, Chopra and LeCun (2006):
    ``(1 - y) D^2 + y max(0, m - D)^2``, averaged.

    Convention: ``dissimilar = 1`` marks a pair of *different* classes (pushed beyond the
    margin ``m``), ``0`` a pair of the same class (pulled together).
    """
    y = dissimilar.to(distance.dtype)
    return ((1 - y) * distance.pow(2) + y * (margin - distance).clamp_min(0).pow(2)).mean()


class SiameseNetwork(FewShotLearner):
    """A Siamese network: one embedding applied to both inputs of a pair.

    Args:
        backbone: the shared embedding.
        head: ``"contrastive"`` scores a pair by minus the Euclidean distance of the
            embeddings and trains with :func:`contrastive_loss`; ``"koch"`` scores it by the
            logit ``w . |f(x1) - f(x2)| + b`` of Koch et al. (2015), trained with binary
            cross-entropy (``embedding_dim`` is then required).
        margin: the contrastive margin.

    As a few-shot learner it classifies a query like its most similar support example;
    :meth:`loss` trains on all (query, support) pairs of the episodes, weighting same-class
    and different-class pairs equally.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: str = "contrastive",
        margin: float = 1.0,
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        if head not in ("contrastive", "koch"):
            raise ValueError(f"head must be 'contrastive' or 'koch', got {head!r}")
        if head == "koch" and embedding_dim is None:
            raise ValueError("the 'koch' head needs embedding_dim (the backbone's output size)")
        self.backbone, self.head, self.margin = backbone, head, margin
        self.verifier = (
            nn.Linear(embedding_dim, 1) if embedding_dim is not None and head == "koch" else None
        )

    def pair_scores(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Similarity of every ``a [..., M, D]`` with every ``b [..., S, D]``: ``[..., M, S]``."""
        if self.verifier is None:
            return -pairwise_distance(a, b, "euclidean")
        return self.verifier((a.unsqueeze(-2) - b.unsqueeze(-3)).abs()).squeeze(-1)

    @classmethod
    def from_backbone(cls, backbone: nn.Module, ways: int, **hyper: Any) -> SiameseNetwork:
        """The Siamese network around ``backbone``; the Koch head is sized from the
        backbone's ``embedding_dim``."""
        if hyper.get("head") == "koch" and "embedding_dim" not in hyper:
            hyper["embedding_dim"] = embedding_size(backbone)
        return cls(backbone, **hyper)

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        ways: int | None = None,
    ) -> torch.Tensor:
        support, query = _embed(self.backbone, support_x, support_y, query_x)
        return class_max(self.pair_scores(query, support), support_y, ways)

    def loss(self, episode: Episode) -> torch.Tensor:
        """Contrastive (or binary cross-entropy) loss on all (query, support) pairs, with
        same-class and different-class pairs weighted equally."""
        if episode.query_y is None:
            raise ValueError("a training episode needs query_y")
        support, query = _embed(
            self.backbone, episode.support_x, episode.support_y, episode.query_x
        )
        scores = self.pair_scores(query, support)  # [..., M, S]
        is_different = episode.query_y.unsqueeze(-1) != episode.support_y.unsqueeze(-2)
        y = is_different.to(scores.dtype)  # 1 marks a pair of different classes
        weights = torch.where(is_different, 0.5 / y.sum(), 0.5 / (1 - y).sum())
        if self.verifier is None:
            per_pair = (1 - y) * scores.pow(2) + y * (self.margin + scores).clamp_min(0).pow(2)
        else:
            per_pair = F.binary_cross_entropy_with_logits(scores, 1 - y, reduction="none")
        return (weights * per_pair).sum()
