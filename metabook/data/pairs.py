"""Balanced pairs for Siamese networks (chapter "Siamese networks and prototype losses")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from metabook.data.episodes import _gather, _labels_of

__all__ = ["PairSampler"]


class PairSampler:
    """Draws pairs of examples, half from the same class and half from different classes.

    ``sample(batch_size)`` returns ``(x1, x2, dissimilar)``: two batches of examples and a
    0/1 tensor in the convention of :func:`metabook.learners.metric.contrastive_loss` (1 marks a
    pair of different classes). Exactly ``batch_size // 2`` pairs are same-class pairs
    (two distinct examples of one class); the rest pair two different classes. Same-class
    pairs draw the class uniformly, so frequent classes do not dominate.

    Args:
        dataset: any map-style dataset of ``(x, label)`` pairs.
        classes: the classes to draw from (default: all).
        seed: seeds the sampler's own generator.
    """

    def __init__(
        self, dataset: Any, classes: Sequence[int] | torch.Tensor | None = None, seed: int = 0
    ) -> None:
        labels = _labels_of(dataset)
        allowed = torch.unique(labels if classes is None else torch.as_tensor(classes).long())
        if allowed.numel() < 2:
            raise ValueError("pairs of different classes need at least 2 classes")
        members = [torch.nonzero(labels == c).squeeze(1) for c in allowed.tolist()]
        if any(m.numel() == 0 for m in members):
            raise ValueError("some of the requested classes have no examples in the dataset")
        self._pairable = [i for i, m in enumerate(members) if m.numel() >= 2]
        if not self._pairable:
            raise ValueError("same-class pairs need a class with at least 2 examples")
        self.dataset, self.classes, self._members = dataset, allowed, members
        self.generator = torch.Generator().manual_seed(seed)

    def _pick(self, cls: int, count: int) -> torch.Tensor:
        members = self._members[cls]
        return members[torch.randperm(members.numel(), generator=self.generator)[:count]]

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {batch_size}")
        same = batch_size // 2
        first, second = [], []
        for _ in range(same):
            cls = self._pairable[
                int(torch.randint(len(self._pairable), (1,), generator=self.generator))
            ]
            a, b = self._pick(cls, 2)
            first.append(a)
            second.append(b)
        for _ in range(batch_size - same):
            c1, c2 = torch.randperm(self.classes.numel(), generator=self.generator)[:2].tolist()
            first.append(self._pick(c1, 1)[0])
            second.append(self._pick(c2, 1)[0])
        dissimilar = torch.cat([torch.zeros(same), torch.ones(batch_size - same)]).long()
        return (
            _gather(self.dataset, torch.stack(first)),
            _gather(self.dataset, torch.stack(second)),
            dissimilar,
        )
