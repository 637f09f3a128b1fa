"""Balanced pairs for Siamese networks."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from tests.data.test_episodes import toy_dataset


def test_pairs_are_balanced_and_correct():
    from metabook.data import PairSampler

    data = toy_dataset(classes=6, per_class=3)
    x1, x2, dissimilar = PairSampler(data, seed=0).sample(11)
    assert x1.shape == x2.shape == (11, 3)
    assert dissimilar.tolist() == [0] * 5 + [1] * 6
    class1, class2 = (x1[:, 0] // 1000).long(), (x2[:, 0] // 1000).long()
    assert torch.equal(class1 != class2, dissimilar.bool())
    assert not bool((x1[:5, 0] == x2[:5, 0]).any())  # two distinct examples of one class
    again = PairSampler(data, seed=0).sample(11)
    assert torch.equal(again[0], x1) and torch.equal(again[1], x2)
    restricted = PairSampler(data, classes=[1, 4], seed=0).sample(20)
    assert set((restricted[0][:, 0] // 1000).long().tolist()) <= {1, 4}
    with pytest.raises(ValueError, match="at least 2 classes"):
        PairSampler(data, classes=[3])
    one_each = TensorDataset(torch.zeros(3, 1), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="at least 2 examples"):
        PairSampler(one_each)
