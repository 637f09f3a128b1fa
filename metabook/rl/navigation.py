"""The 2-D navigation tasks of Finn et al. (2017), section 5.3 (chapter "Applications").

A point robot starts at the origin of the plane; its observation is its position and its
action a velocity, clipped to ``[-max_step, max_step]`` in each coordinate. A task is a goal
drawn uniformly from the square ``[-goal_range, goal_range]^2``; the reward of a step is
minus the squared distance from the new position to the goal, and an episode ends after
``horizon`` steps or once the robot is within ``tolerance`` of the goal. The environment is
a few tensor operations, batched over any leading dimensions (tasks, episodes) and on any
device; there is no gym dependency.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Navigation2D"]


@dataclass(frozen=True)
class Navigation2D:
    """The point-robot navigation task family.

    Args:
        horizon: steps per episode (100 in the paper).
        max_step: the largest velocity along each axis (0.1).
        goal_range: goals are uniform in ``[-goal_range, goal_range]^2`` (0.5: the unit
            square centred on the start).
        tolerance: an episode ends once the robot is this close to its goal (0.01).
    """

    horizon: int = 100
    max_step: float = 0.1
    goal_range: float = 0.5
    tolerance: float = 0.01

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.max_step <= 0 or self.goal_range <= 0 or self.tolerance < 0:
            raise ValueError(
                "need horizon >= 1, max_step > 0, goal_range > 0 and tolerance >= 0; got "
                f"{self.horizon}, {self.max_step}, {self.goal_range}, {self.tolerance}"
            )

    def sample_goals(
        self,
        tasks: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``tasks`` goals ``[tasks, 2]``, uniform in the square (drawn on the CPU, so that a
        seeded generator gives the same goals on every device)."""
        goals = torch.rand(tasks, 2, generator=generator) * 2 * self.goal_range - self.goal_range
        return goals.to(device)

    def reset(self, goals: torch.Tensor, episodes: int) -> torch.Tensor:
        """Start positions ``[tasks, episodes, 2]`` (the origin) for goals ``[tasks, 2]``."""
        return goals.new_zeros(goals.shape[0], episodes, 2)

    def step(
        self, position: torch.Tensor, action: torch.Tensor, goal: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step for positions and actions ``[..., 2]`` and goals broadcastable to them.

        Returns the new position, the reward ``-||position' - goal||^2`` ``[...]`` and
        whether the goal is reached (``||position' - goal|| < tolerance``).
        """
        if position.shape[-1] != 2 or action.shape[-1] != 2:
            raise ValueError(
                f"positions and actions are 2-D: got shapes {tuple(position.shape)} and "
                f"{tuple(action.shape)}"
            )
        moved = position + action.clamp(-self.max_step, self.max_step)
        squared = (moved - goal).pow(2).sum(-1)
        return moved, -squared, squared.sqrt() < self.tolerance
