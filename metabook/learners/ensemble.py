"""Ensembles of trained learners (chapter "Siamese networks and prototype losses").

Training seeds of one recipe disagree on the hardest queries; averaging their predictions
is the simplest way to spend more training compute on accuracy, and the book measures it
on validation like any other choice.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from metabook.learners.base import FewShotLearner

__all__ = ["Ensemble"]


class Ensemble(FewShotLearner):
    """Classifies a query by the mean of its members' log-probabilities.

    ``Ensemble([a, b, c])`` scores each class with ``mean_m log p_m(class | query)`` (the
    log of the normalised geometric mean of the members' distributions, up to a constant);
    its :meth:`predict` takes the class of the highest score. Every member sees the same
    episode, so an ensemble of learners that use the queries' batch statistics is
    transductive exactly when they are. An ensemble is for evaluation: its members are
    trained separately (for example several seeds of one recipe), and it has no
    parameters of its own. Members that adapt by gradient steps at test time (MAML and its
    kin, which override :meth:`predict`) are refused.

    Args:
        learners: the trained classifiers (at least one); each must return class scores.
    """

    def __init__(self, learners: Iterable[FewShotLearner]) -> None:
        super().__init__()
        members = list(learners)
        if not members:
            raise ValueError("an ensemble needs at least one learner")
        for member in members:
            if type(member).predict is not FewShotLearner.predict:
                raise ValueError(
                    f"{type(member).__name__} adapts at test time (its own predict), which "
                    "an ensemble does not support: ensemble learners that only compare"
                )
        self.learners = nn.ModuleList(members)

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        ways: int | None = None,
    ) -> torch.Tensor:
        scores = [
            member(support_x, support_y, query_x, ways).log_softmax(-1) for member in self.learners
        ]
        return torch.stack(scores).mean(0)
