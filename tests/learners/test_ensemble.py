"""Ensembles by hand: the mean of log-probabilities, not a vote."""

from __future__ import annotations

import math

import pytest
import torch

import metabook as mb
from metabook.data import Episode
from metabook.models import MLP


class Fixed(mb.FewShotLearner):
    """Gives every query the same class scores."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.scores = torch.tensor(scores)

    def forward(self, support_x, support_y, query_x, ways=None):
        return self.scores.expand(len(query_x), -1)


def episode(queries: int = 3) -> Episode:
    return Episode(torch.zeros(2, 1), torch.tensor([0, 1]), torch.zeros(queries, 1),
                   torch.zeros(queries, dtype=torch.long))  # fmt: skip


def test_scores_are_the_mean_of_log_probabilities():
    # p_a = (1/4, 3/4), p_b = (1/2, 1/2): the mean log-probabilities are the logs of the
    # geometric means sqrt(1/8) and sqrt(3/8)
    ensemble = mb.Ensemble([Fixed([0.0, math.log(3.0)]), Fixed([0.0, 0.0])])
    e = episode()
    scores = ensemble(e.support_x, e.support_y, e.query_x, 2)
    expected = torch.tensor([0.5 * math.log(1 / 8), 0.5 * math.log(3 / 8)])
    torch.testing.assert_close(scores, expected.expand(3, -1))


def test_one_confident_member_outweighs_two_mild_ones():
    # a is 99% sure of class 0, b and c 60% sure of class 1: a vote says 1, the mean
    # log-probability says 0 ((ln .99 + 2 ln .4) / 3 > (ln .01 + 2 ln .6) / 3)
    confident = Fixed([math.log(0.99), math.log(0.01)])
    mild = [Fixed([math.log(0.4), math.log(0.6)]) for _ in range(2)]
    assert mb.Ensemble([confident, *mild]).predict(episode()).tolist() == [0, 0, 0]
    assert mb.Ensemble(mild).predict(episode()).tolist() == [1, 1, 1]


def test_an_ensemble_of_one_protonet_is_its_log_softmax():
    torch.manual_seed(0)
    protonet = mb.ProtoNet(MLP(4, 3, hidden_sizes=(8,)))
    x, y, q = torch.randn(6, 4), torch.tensor([0, 1, 2] * 2), torch.randn(5, 4)
    expected = protonet(x, y, q, 3).log_softmax(-1)
    torch.testing.assert_close(mb.Ensemble([protonet])(x, y, q, 3), expected)


def test_learners_that_adapt_at_test_time_and_empty_ensembles_are_refused():
    with pytest.raises(ValueError, match="MAML adapts at test time"):
        mb.Ensemble([mb.MAML(MLP(4, 3, hidden_sizes=(8,)))])
    with pytest.raises(ValueError, match="at least one learner"):
        mb.Ensemble([])
