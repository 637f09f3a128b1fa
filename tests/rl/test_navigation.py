"""The 2-D navigation tasks of Finn et al. by hand."""

from __future__ import annotations

import pytest
import torch

from metabook.rl import Navigation2D


def test_a_step_by_hand():
    env = Navigation2D()
    moved, reward, reached = env.step(
        torch.zeros(2), torch.tensor([0.3, -0.05]), torch.tensor([0.2, 0.1])
    )
    # the velocity is clipped to 0.1 per axis; reward minus the squared distance
    torch.testing.assert_close(moved, torch.tensor([0.1, -0.05]))
    assert reward.item() == pytest.approx(-(0.1**2 + 0.15**2))
    assert not reached
    _, reward, reached = env.step(
        torch.tensor([0.195, 0.1]), torch.tensor([0.004, 0.0]), torch.tensor([0.2, 0.1])
    )
    assert reached and reward.item() == pytest.approx(-(0.001**2), rel=1e-4)  # float32
    with pytest.raises(ValueError, match="2-D"):
        env.step(torch.zeros(3), torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="horizon >= 1"):
        Navigation2D(horizon=0)


def test_goals_lie_in_the_square_and_follow_the_seed():
    env = Navigation2D(goal_range=0.5)
    goals = env.sample_goals(1000, torch.Generator().manual_seed(0))
    assert goals.shape == (1000, 2) and goals.abs().max() <= 0.5
    assert goals.min() < -0.45 and goals.max() > 0.45  # it covers the square
    again = env.sample_goals(1000, torch.Generator().manual_seed(0))
    assert torch.equal(goals, again)
