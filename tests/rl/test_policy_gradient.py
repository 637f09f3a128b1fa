"""Fast adaptation in reinforcement learning: the navigation environment by hand, returns
and the REINFORCE estimator against a known gradient, batched adaptation against per-task
adaptation, the meta-gradient against finite differences, and a short meta-training run."""

from __future__ import annotations

import math

import pytest
import torch

from metabook.rl import (
    GaussianMLPPolicy,
    Navigation2D,
    PolicyMAML,
    discounted_returns,
    reinforce_loss,
    sample_rollouts,
)
from tests.finite_differences import assert_gradients_match


def constant_policy(mean, log_std=-30.0):
    """A policy whose action is ``mean`` whatever the state (all weights zero)."""
    policy = GaussianMLPPolicy(hidden_sizes=(3,)).double()
    with torch.no_grad():
        for p in policy.parameters():
            p.zero_()
        policy.layers[-1].bias.copy_(torch.tensor(mean))
        policy.log_std.fill_(log_std)
    return policy


def test_an_episode_stops_at_its_goal():
    env = Navigation2D(horizon=6)
    goals = torch.tensor([[0.3, 0.0]], dtype=torch.float64)
    r = sample_rollouts(env, constant_policy([0.1, 0.0]), goals, episodes=2)
    assert r.positions.shape == (1, 2, 7, 2) and r.rewards.shape == (1, 2, 6)
    # three steps of 0.1 reach the goal; the episode is over after them
    assert r.alive[0, 0].tolist() == [1, 1, 1, 0, 0, 0]
    torch.testing.assert_close(r.positions[0, 0, 3:, 0], torch.full((4,), 0.3).double())
    torch.testing.assert_close(r.returns()[0], torch.full((2,), -(0.2**2 + 0.1**2)).double())


def test_discounted_returns_by_hand():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    torch.testing.assert_close(
        discounted_returns(rewards, 0.5), torch.tensor([[1 + 1 + 0.75, 2 + 1.5, 3.0]])
    )
    torch.testing.assert_close(discounted_returns(rewards, 1.0), torch.tensor([[6.0, 5.0, 3.0]]))
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns(rewards, 1.5)


def test_reinforce_estimates_a_known_gradient():
    # one step, no clipping: E[r] = -(|mu - g|^2 + 2 sigma^2), so dE/dmu = -2 (mu - g); with
    # one step per episode the loss is the plain mean over episodes
    env = Navigation2D(horizon=1, max_step=100.0, tolerance=0.0)
    mu, sigma, goal = torch.tensor([0.3, -0.2]), 0.5, torch.tensor([[0.1, 0.2]])
    policy = constant_policy(mu.tolist(), math.log(sigma))
    rollouts = sample_rollouts(
        env, policy, goal.double(), 50_000, generator=torch.Generator().manual_seed(0)
    )
    loss = reinforce_loss(policy, rollouts, normalise=False).sum()
    (grad,) = torch.autograd.grad(-loss, policy.layers[-1].bias)
    expected = -2 * (mu - goal[0]).double()  # (-0.4, 0.8)
    torch.testing.assert_close(grad, expected, atol=0.02, rtol=0)
    # the log standard deviation: dE/dlog(sigma) = -4 sigma^2 per coordinate, -2 in all
    (grad_std,) = torch.autograd.grad(
        -reinforce_loss(policy, rollouts, normalise=False).sum(), policy.log_std
    )
    torch.testing.assert_close(
        grad_std, torch.full((2,), -2 * sigma**2).double(), atol=0.03, rtol=0
    )
    with pytest.raises(ValueError, match="at least 2 episodes"):
        reinforce_loss(policy, sample_rollouts(env, policy, goal.double(), 1))


def small_maml(seed=0, horizon=5):
    torch.manual_seed(seed)
    policy = GaussianMLPPolicy(hidden_sizes=(4,), init_std=0.3).double()
    return PolicyMAML(policy, Navigation2D(horizon=horizon), inner_lr=0.1, episodes=3)


def test_a_batch_of_tasks_adapts_like_each_task_alone():
    maml = small_maml()
    goals = torch.tensor([[0.2, 0.1], [-0.3, 0.4], [0.0, -0.5]], dtype=torch.float64)
    rollouts = sample_rollouts(maml.env, maml.policy, goals, 3, maml.batched_params(3))
    batched = maml.inner_step(maml.batched_params(3), rollouts, create_graph=False)
    for b in range(3):
        alone = type(rollouts)(*(t[b : b + 1] for t in vars(rollouts).values()))
        single = maml.inner_step(maml.batched_params(1), alone, create_graph=False)
        for name, value in single.items():
            torch.testing.assert_close(batched[name][b], value[0])
    # and the adapted parameters differ between tasks
    assert not torch.allclose(batched["layers.1.bias"][0], batched["layers.1.bias"][1])


def test_the_meta_gradient_matches_finite_differences():
    maml = small_maml(seed=1)
    goals = torch.tensor([[0.2, 0.1], [-0.3, 0.4]], dtype=torch.float64)
    inner = sample_rollouts(
        maml.env, maml.policy, goals, 3, generator=torch.Generator().manual_seed(1)
    )
    outer = sample_rollouts(
        maml.env, maml.policy, goals, 3, generator=torch.Generator().manual_seed(2)
    )

    def meta_loss(create_graph=True):
        fast = maml.inner_step(maml.batched_params(2), inner, create_graph)
        return reinforce_loss(maml.policy, outer, fast).mean()

    params = list(maml.policy.parameters())
    grads = torch.autograd.grad(meta_loss(), params)
    assert_gradients_match(meta_loss, params, grads, eps=1e-6, atol=1e-6)
    # first order differs: it drops the second-order term
    first = torch.autograd.grad(meta_loss(create_graph=False), params)
    assert not all(torch.allclose(a, b) for a, b in zip(first, grads, strict=True))


def test_meta_training_makes_one_step_of_adaptation_pay():
    torch.manual_seed(0)
    maml = PolicyMAML(GaussianMLPPolicy(), Navigation2D(), inner_lr=0.1, episodes=20)
    optimiser = torch.optim.Adam(maml.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    test_goals = maml.env.sample_goals(20, torch.Generator().manual_seed(123))
    untrained = maml.adaptation_returns(test_goals, 1, torch.Generator().manual_seed(5))
    for _ in range(30):
        loss, _, _ = maml.meta_loss(maml.env.sample_goals(10, g), g)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    trained = maml.adaptation_returns(test_goals, 1, torch.Generator().manual_seed(5))
    # measured: untrained -140 before and -132 after one step; trained -29 before, -6.7 after
    before, after = trained.mean(1).tolist()
    assert after > 0.5 * before  # one step at least halves the (negative) return
    assert after > 0.2 * untrained[1].mean()  # and meta-training made it five times better
