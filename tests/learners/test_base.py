"""The learner interface by hand: class_max, the nearest-neighbour baseline, ways."""

from __future__ import annotations

import torch
from torch import nn

import metabook as mb
from metabook.data import EpisodeSampler
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
