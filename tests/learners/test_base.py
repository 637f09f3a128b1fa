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


def test_modified_hausdorff_by_hand():
    a = torch.tensor([[0.0, 0.0]])
    b = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    # a to b: its one point is at 0 from b; b to a: (0 + 5) / 2 = 2.5; the larger is 2.5
    assert float(mb.modified_hausdorff(a, b)) == 2.5
    assert float(mb.modified_hausdorff(b, a)) == 2.5
    assert float(mb.modified_hausdorff(b, b)) == 0.0


def test_ink_points_are_the_inked_pixels_centred():
    image = torch.zeros(1, 5, 5)
    image[0, 1, 1] = image[0, 1, 3] = image[0, 3, 2] = 1.0
    points = mb.ink_points(image)
    # pixels (1,1), (1,3), (3,2); their mean is (5/3, 2)
    expected = torch.tensor([[1.0, 1.0], [1.0, 3.0], [3.0, 2.0]]) - torch.tensor([5 / 3, 2.0])
    torch.testing.assert_close(points, expected.double())
    try:
        mb.ink_points(torch.zeros(1, 5, 5))
    except ValueError as err:
        assert "no inked pixel" in str(err)
    else:
        raise AssertionError("a blank image must be refused")


def test_modified_hausdorff_learner_matches_the_definition():
    """The learner's k-d tree distances equal the full-matrix definition, and a shifted
    copy of a support image is at distance 0 from it (the point sets are centred)."""
    gen = torch.Generator().manual_seed(0)
    support = (torch.rand(4, 1, 12, 12, generator=gen) > 0.7).float()
    query = torch.roll(support[[2, 0, 3]], shifts=(1, -2), dims=(-2, -1))
    query[..., :2, :] = 0  # a roll wraps ink around; clear the wrapped rows
    query[..., :, -2:] = 0
    scores = mb.ModifiedHausdorff()(support, torch.tensor([0, 1, 2, 3]), query)
    for i, q in enumerate(query):
        for j, s in enumerate(support):
            d = mb.modified_hausdorff(mb.ink_points(q), mb.ink_points(s))
            torch.testing.assert_close(-scores[i, j].double(), d)
    clean = torch.zeros(2, 1, 9, 9)
    clean[0, 0, 2:5, 3] = 1.0  # a vertical bar
    clean[1, 0, 4, 2:7] = 1.0  # a horizontal bar
    moved = torch.roll(clean, shifts=(2, 1), dims=(-2, -1))
    scores = mb.ModifiedHausdorff()(clean, torch.tensor([0, 1]), moved)
    assert scores.diagonal().abs().max() == 0
    assert scores.argmax(1).tolist() == [0, 1]
