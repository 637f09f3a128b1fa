"""The learner interface, the nearest-neighbour baseline and evaluate(), by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import metabook as mb
from metabook.data import Episode, EpisodeSampler
from metabook.learners.base import class_max


def test_class_max_by_hand():
    scores = torch.tensor([[1.0, 5.0, 2.0, 4.0], [0.0, -1.0, 3.0, -2.0]])
    labels = torch.tensor([0, 1, 0, 1])
    assert class_max(scores, labels).tolist() == [[2.0, 5.0], [3.0, -1.0]]


def test_nearest_neighbour_scores_are_minus_the_nearest_distance():
    support = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    learner = mb.NearestNeighbour(nn.Identity())
    scores = learner(support, labels, query)
    # query 0: d = 1 to class 0; min(3, sqrt(10)) = 3 to class 1
    # query 1: d = 2 to class 0; min(sqrt(20), 1) = 1 to class 1
    torch.testing.assert_close(scores, torch.tensor([[-1.0, -3.0], [-2.0, -1.0]]))
    # invariant to the order of the support set
    order = torch.tensor([2, 0, 1])
    torch.testing.assert_close(learner(support[order], labels[order], query), scores)


def test_nearest_neighbour_on_a_batch_equals_each_episode():
    data = torch.utils.data.TensorDataset(torch.randn(60, 1, 4, 4), torch.arange(6).repeat(10))
    batch = EpisodeSampler(data, 3, 2, 2, seed=0).sample(batch_size=5)
    learner = mb.NearestNeighbour()
    out = learner(batch.support_x, batch.support_y, batch.query_x)
    assert out.shape == (5, 6, 3)
    for b in range(5):
        t = batch.task(b)
        torch.testing.assert_close(out[b], learner(t.support_x, t.support_y, t.query_x))


def test_mean_confidence_interval_by_hand():
    mean, half = mb.mean_confidence_interval(torch.tensor([0.6, 0.8, 1.0]))
    assert mean == pytest.approx(0.8)
    assert half == pytest.approx(1.96 * 0.2 / math.sqrt(3))
    assert math.isnan(mb.mean_confidence_interval(torch.tensor([0.5]))[1])
    with pytest.raises(ValueError, match="at least one episode"):
        mb.mean_confidence_interval(torch.tensor([]))


class AlwaysZero(mb.FewShotLearner):
    """Predicts class 0 for every query: accuracy is exactly 1/N on balanced queries."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, support_x, support_y, query_x, ways=None):
        ways = mb.episode_ways(support_y, ways)
        logits = torch.zeros(*query_x.shape[:-1], ways) + self.bias
        logits[..., 0] += 1
        return logits


def test_evaluate_exact_accuracies_and_mode_restored():
    data = torch.utils.data.TensorDataset(torch.randn(100, 2), torch.arange(10).repeat(10))
    episodes = EpisodeSampler(data, 4, 1, 3, seed=0).episodes(20)
    learner = AlwaysZero().train()
    result = mb.evaluate(learner, episodes)
    assert result.mean == pytest.approx(0.25) and result.ci95 == pytest.approx(0.0)
    assert result.values.shape == (20,) and result.metric == "accuracy"
    assert learner.training  # evaluate() puts the learner back in training mode
    assert "25.00% ± 0.00% (20 episodes)" in str(result)
    # a batch of 20 episodes counts as 20 episodes
    batched = mb.evaluate(learner, [Episode.stack(episodes)])
    assert batched.values.shape == (20,)


def test_evaluate_with_perfect_learner_and_custom_metric():
    x = torch.randn(10, 3)
    y = torch.arange(5).repeat(2)
    episode = Episode(x, y, x.clone(), y.clone())  # queries are copies of the support
    assert mb.evaluate(mb.NearestNeighbour(nn.Identity()), [episode]).mean == 1.0

    def error_rate(prediction, target):
        return (prediction != target).float().mean(-1)

    result = mb.evaluate(AlwaysZero(), [episode], metric=error_rate, higher_is_better=False)
    assert result.mean == pytest.approx(0.8) and result.metric == "error_rate"
    assert result.score == pytest.approx(-0.8)  # lower is better: the score is signed
    with pytest.raises(ValueError, match="higher_is_better"):
        mb.evaluate(AlwaysZero(), [episode], metric=error_rate)
    with pytest.raises(ValueError, match="unknown metric"):
        mb.evaluate(AlwaysZero(), [episode], metric="f1")
    with pytest.raises(ValueError, match="no episodes"):
        mb.evaluate(AlwaysZero(), [])


class Zero(mb.FewShotLearner):
    def forward(self, support_x, support_y, query_x, ways=None):
        return torch.zeros_like(query_x)


def test_regression_is_scored_by_mean_squared_error():
    tasks = mb.data.SineTasks(shots=5, queries=10, seed=0).sample(batch_size=3)
    result = mb.evaluate(Zero(), [tasks])
    expected = tasks.query_y.pow(2).mean(dim=(1, 2))
    torch.testing.assert_close(result.values, expected)
    assert result.metric == "mse"


def test_default_loss_is_query_cross_entropy():
    torch.manual_seed(0)
    learner = AlwaysZero()
    episode = Episode(
        torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]), torch.zeros(2, 2), torch.tensor([0, 1])
    )
    expected = F.cross_entropy(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 1]))
    torch.testing.assert_close(learner.loss(episode), expected)
    with pytest.raises(NotImplementedError):
        mb.FewShotLearner()(episode.support_x, episode.support_y, episode.query_x)
    with pytest.raises(ValueError, match="needs query_y"):
        learner.loss(Episode(episode.support_x, episode.support_y, episode.query_x))
