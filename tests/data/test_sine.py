"""MAML's sine-wave task family: the waves, the ranges and the seeds."""

from __future__ import annotations

import math

import pytest
import torch

from metabook.data import SineTasks


def test_sine_tasks_lie_on_their_waves():
    tasks = SineTasks(shots=5, queries=7, seed=0).sample(batch_size=300)
    assert tasks.regression and tasks.batched
    assert tasks.support_x.shape == (300, 5, 1) and tasks.query_y.shape == (300, 7, 1)
    a = tasks.info["amplitude"].view(-1, 1, 1)
    phase = tasks.info["phase"].view(-1, 1, 1)
    torch.testing.assert_close(tasks.support_y, a * torch.sin(tasks.support_x - phase))
    torch.testing.assert_close(tasks.query_y, a * torch.sin(tasks.query_x - phase))
    assert a.min() >= 0.1 and a.max() <= 5.0 and phase.min() >= 0 and phase.max() <= math.pi
    x = torch.cat([tasks.support_x, tasks.query_x], 1)
    assert x.min() >= -5 and x.max() <= 5 and x.min() < -4.5 and x.max() > 4.5
    single = SineTasks(shots=3, queries=2, seed=0).sample()
    assert not single.batched and single.support_x.shape == (3, 1)
    assert torch.equal(SineTasks(seed=4).sample(2).support_x, SineTasks(seed=4).sample(2).support_x)
    with pytest.raises(AttributeError, match="no classes"):
        _ = single.ways
