"""Policy gradients, and MAML for policies (chapter "Applications").

REINFORCE (Williams, 1992) estimates the gradient of a policy's expected return from
trajectories drawn with it::

    grad_theta E[R] = E[ sum_t grad_theta log pi_theta(a_t | s_t) (G_t - b_t) ],
    G_t = sum_{k >= t} gamma^(k - t) r_k                         (the return from step t)

where the baseline ``b_t`` may be anything that does not depend on the action ``a_t``.
Here it is the mean of ``G_t`` over the *other* episodes of the same task (leave one out),
so the estimate stays unbiased while most of its variance goes.

MAML with policy gradients (Finn et al., 2017, section 3.2): for each task, ``episodes``
trajectories with ``theta`` give one inner step ``theta' = theta - alpha grad L(theta)`` of
the REINFORCE loss; new trajectories drawn with ``theta'`` give the outer loss ``L(theta')``,
differentiated through the inner step (second order unless ``first_order``). As in Finn et
al., the meta-gradient leaves out the dependence of the inner trajectories' distribution
on ``theta`` (the term that ProMP and DiCE add). Every task of a batch is adapted at once:
the adapted parameters carry a leading task dimension and the policy evaluates them with
batched matrix products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from metabook._compat import renamed_arguments, warn_deprecated
from metabook.learners.sgd import Params, sgd_step
from metabook.rl.navigation import Navigation2D

__all__ = [
    "GaussianMLPPolicy",
    "PolicyMAML",
    "Rollouts",
    "discounted_returns",
    "reinforce_loss",
    "sample_rollouts",
]


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T + bias``; with a leading task dimension on ``weight [B, out, in]`` and
    ``bias [B, out]``, task ``b`` of ``x [B, ..., in]`` uses its own weights."""
    if weight.dim() == 2:
        return F.linear(x, weight, bias)
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    out = torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))
    return out.reshape(*x.shape[:-1], weight.shape[1])


class GaussianMLPPolicy(nn.Module):
    """A Gaussian policy: a ReLU network gives the mean action, a learned vector the log
    standard deviation (independent of the state), as in Finn et al. (two hidden layers of
    100 units: ``hidden_sizes``).

    ``policy(obs, params)`` returns ``(mean, std)``. ``params`` (default: the module's own)
    may carry a leading task dimension, e.g. the output of :meth:`PolicyMAML.adapt`; then
    ``obs`` must have the same leading dimension.
    """

    @renamed_arguments(hidden="hidden_sizes")
    def __init__(
        self,
        obs_dim: int = 2,
        action_dim: int = 2,
        hidden_sizes: tuple[int, ...] = (100, 100),
        init_std: float = 1.0,
    ) -> None:
        super().__init__()
        if init_std <= 0:
            raise ValueError(f"init_std must be positive, got {init_std}")
        sizes = (obs_dim, *hidden_sizes, action_dim)
        pairs = zip(sizes[:-1], sizes[1:], strict=True)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)
        self.log_std = nn.Parameter(torch.full((action_dim,), math.log(init_std)))
        self.obs_dim, self.action_dim = obs_dim, action_dim

    def forward(
        self, obs: torch.Tensor, params: Params | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        params = dict(self.named_parameters()) if params is None else params
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"observations must end in {self.obs_dim}, got {tuple(obs.shape)}")
        h = obs
        for i in range(len(self.layers)):
            h = _linear(h, params[f"layers.{i}.weight"], params[f"layers.{i}.bias"])
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        log_std = params["log_std"]
        if log_std.dim() == 2:  # one per task
            log_std = log_std.reshape(log_std.shape[0], *([1] * (h.dim() - 2)), -1)
        return h, log_std.exp().expand_as(h)

    def log_prob(
        self, obs: torch.Tensor, actions: torch.Tensor, params: Params | None = None
    ) -> torch.Tensor:
        """``log pi(a | s)`` summed over the action's coordinates, ``[...]``."""
        mean, std = self(obs, params)
        return torch.distributions.Normal(mean, std).log_prob(actions).sum(-1)


@dataclass
class Rollouts:
    """Episodes of a batch of tasks: ``positions [B, K, T+1, 2]`` (the start included),
    ``actions [B, K, T, 2]`` as drawn (before clipping), ``rewards`` and ``alive [B, K, T]``
    (1 while the episode runs, 0 after it reached its goal)."""

    positions: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    alive: torch.Tensor

    @property
    def observations(self) -> torch.Tensor:
        """The position each action was taken from, ``[B, K, T, 2]``."""
        return self.positions[..., :-1, :]

    def returns(self) -> torch.Tensor:
        """Each episode's undiscounted return ``[B, K]``."""
        return (self.rewards * self.alive).sum(-1)


@torch.no_grad()
def sample_rollouts(
    env: Navigation2D,
    policy: GaussianMLPPolicy,
    goals: torch.Tensor,
    episodes: int,
    params: Params | None = None,
    generator: torch.Generator | None = None,
) -> Rollouts:
    """``episodes`` episodes of the policy for each goal of ``goals [B, 2]``.

    The action noise is drawn on the CPU from ``generator`` (the global generator when
    ``None``) and moved to the goals' device, so a seed gives the same episodes everywhere.
    """
    if goals.dim() != 2 or goals.shape[-1] != 2:
        raise ValueError(f"goals must be [tasks, 2], got {tuple(goals.shape)}")
    if episodes < 1:
        raise ValueError(f"need at least one episode per task, got {episodes}")
    tasks, horizon = goals.shape[0], env.horizon
    noise = torch.randn(horizon, tasks, episodes, 2, generator=generator).to(goals)
    position = env.reset(goals, episodes)
    alive = torch.ones(tasks, episodes, dtype=torch.bool, device=goals.device)
    positions, actions, rewards, alives = [position], [], [], []
    target = goals.unsqueeze(1)
    for t in range(horizon):
        mean, std = policy(position, params)
        action = mean + std * noise[t]
        moved, reward, reached = env.step(position, action, target)
        alives.append(alive)
        rewards.append(reward)
        actions.append(action)
        position = torch.where(alive.unsqueeze(-1), moved, position)
        positions.append(position)
        alive = alive & ~reached
    return Rollouts(
        torch.stack(positions, 2),
        torch.stack(actions, 2),
        torch.stack(rewards, 2),
        torch.stack(alives, 2).to(goals.dtype),
    )


def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """``G_t = sum_{k >= t} gamma^(k - t) r_k`` for rewards ``[..., T]``."""
    if not 0 <= gamma <= 1:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    steps = rewards.shape[-1]
    k = torch.arange(steps, device=rewards.device)
    power = (k.unsqueeze(0) - k.unsqueeze(1)).to(rewards.dtype)  # [t, k] = k - t
    weights = torch.where(power >= 0, gamma ** power.clamp_min(0), torch.zeros_like(power))
    return rewards @ weights.T


def reinforce_loss(
    policy: GaussianMLPPolicy,
    rollouts: Rollouts,
    params: Params | None = None,
    gamma: float = 0.99,
    normalise: bool = True,
) -> torch.Tensor:
    """The REINFORCE surrogate of each task, ``[B]``: minus the mean of
    ``log pi(a_t | s_t) A_t`` over the task's time steps (of every episode, while it runs).

    Its gradient is the policy-gradient estimate divided by the number of steps per
    episode (exactly so when no episode ends early): the convention of rllab, in which
    Finn et al.'s step sizes were set.

    ``A_t = G_t - b_t`` with the leave-one-out baseline of the module docstring (needs at
    least two episodes per task); with ``normalise`` each task's advantages are divided by
    their standard deviation, which makes a fixed inner step size fit every task.
    """
    alive = rollouts.alive
    episodes = alive.shape[1]
    if episodes < 2:
        raise ValueError("the leave-one-out baseline needs at least 2 episodes per task")
    returns = discounted_returns(rollouts.rewards * alive, gamma)
    baseline = (returns.sum(1, keepdim=True) - returns) / (episodes - 1)
    advantage = (returns - baseline) * alive
    if normalise:
        count = alive.sum((1, 2), keepdim=True).clamp_min(1)
        variance = (advantage.pow(2).sum((1, 2), keepdim=True) / count).clamp_min(1e-12)
        advantage = advantage / variance.sqrt()
    log_prob = policy.log_prob(rollouts.observations, rollouts.actions, params)
    steps = alive.sum((1, 2)).clamp_min(1)
    return -(log_prob * advantage.detach()).sum((1, 2)) / steps


class PolicyMAML(nn.Module):
    """MAML for a policy on a family of navigation tasks (Finn et al., 2017).

    Args:
        policy: the policy whose parameters are meta-learned.
        env: the task family.
        inner_lr: the inner step size ``alpha`` (0.1 in the paper).
        episodes: episodes per task for each adaptation and for the outer loss (20).
        gamma: the discount of the returns.
        first_order: drop the second-order term of the meta-gradient.
    """

    def __init__(
        self,
        policy: GaussianMLPPolicy,
        env: Navigation2D | None = None,
        inner_lr: float = 0.1,
        episodes: int = 20,
        gamma: float = 0.99,
        first_order: bool = False,
    ) -> None:
        super().__init__()
        if episodes < 2:
            raise ValueError(f"need at least 2 episodes per task, got {episodes}")
        self.policy, self.env = policy, env if env is not None else Navigation2D()
        self.inner_lr, self.episodes, self.gamma = inner_lr, episodes, gamma
        self.first_order = first_order

    def batched_params(self, tasks: int) -> Params:
        """The policy's parameters repeated for ``tasks`` tasks (views, differentiable)."""
        return {n: p.expand(tasks, *p.shape) for n, p in self.policy.named_parameters()}

    def inner_step(self, params: Params, rollouts: Rollouts, create_graph: bool) -> Params:
        """One policy-gradient step of every task on its own ``rollouts``: the shared
        :func:`~metabook.learners.sgd.sgd_step` on the sum of the tasks' losses (task
        ``b``'s parameters only affect task ``b``'s loss, so each gets its own gradient)."""

        def loss_of(current: Params, step: int) -> torch.Tensor:
            return reinforce_loss(self.policy, rollouts, current, self.gamma).sum()

        return sgd_step(loss_of, params, self.inner_lr, create_graph=create_graph)

    @renamed_arguments(steps="inner_steps")
    def adapt(
        self,
        goals: torch.Tensor,
        inner_steps: int = 1,
        generator: torch.Generator | None = None,
        create_graph: bool | None = None,
    ) -> tuple[Params, list[Rollouts]]:
        """Parameters adapted to each goal of ``goals [B, 2]`` by ``inner_steps`` inner
        steps, each on fresh episodes; also the episodes of every step (before each update).

        ``create_graph`` (by default: in training mode, second order, gradients enabled)
        keeps the inner steps differentiable for the meta-gradient."""
        if create_graph is None:
            create_graph = self.training and not self.first_order and torch.is_grad_enabled()
        params = self.batched_params(goals.shape[0])
        seen = []
        with torch.enable_grad():
            for _ in range(inner_steps):
                rollouts = sample_rollouts(
                    self.env, self.policy, goals, self.episodes, params, generator
                )
                seen.append(rollouts)
                params = self.inner_step(params, rollouts, create_graph)
        return params, seen

    def meta_loss(
        self, goals: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The outer loss averaged over the tasks of ``goals``, and the mean return per task
        before and after adaptation ``[B]`` (for monitoring)."""
        params, (before,) = self.adapt(goals, 1, generator)
        after = sample_rollouts(self.env, self.policy, goals, self.episodes, params, generator)
        loss = reinforce_loss(self.policy, after, params, self.gamma).mean()
        return loss, before.returns().mean(1), after.returns().mean(1)

    @renamed_arguments(steps="inner_steps")
    def adaptation_returns(
        self, goals: torch.Tensor, inner_steps: int = 3, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Mean return per task after 0, 1, ..., ``inner_steps`` inner steps,
        ``[inner_steps + 1, B]``."""
        params, seen = self.adapt(goals, inner_steps, generator, create_graph=False)
        last = sample_rollouts(self.env, self.policy, goals, self.episodes, params, generator)
        return torch.stack([r.returns().mean(1) for r in [*seen, last]]).detach()

    def evaluate(
        self, goals: torch.Tensor, steps: int = 3, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Deprecated name of :meth:`adaptation_returns`."""
        warn_deprecated("PolicyMAML.evaluate", "PolicyMAML.adaptation_returns")
        return self.adaptation_returns(goals, steps, generator)
