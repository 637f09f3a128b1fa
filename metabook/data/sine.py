"""The sine-wave regression tasks of MAML (Finn et al., 2017), defined in "Core concepts".

Each task is a wave ``y = A sin(x - phi)`` with amplitude ``A ~ U[0.1, 5]`` and phase
``phi ~ U[0, pi]``; inputs are drawn from ``U[-5, 5]``. A learner sees ``K`` points of a
new wave and must predict the rest of it.
"""

from __future__ import annotations

import math

import torch

from metabook.data.episodes import Episode, TaskSource, _batch_count

__all__ = ["SineTasks"]


class SineTasks(TaskSource):
    """A family of sine-wave regression tasks.

    Args:
        shots: ``K`` support points per task.
        queries: query points per task.
        amplitude, phase, x_range: the uniform ranges of the task family.
        seed: seeds the family's own generator.

    ``sample(batch_size)`` returns an :class:`~metabook.data.episodes.Episode` with
    ``regression=True``, inputs and targets of shape ``[B, K, 1]``, and ``info`` holding each
    task's ``amplitude`` and ``phase`` so that the true curve can be drawn with
    :meth:`curve`.
    """

    def __init__(
        self,
        shots: int = 10,
        queries: int = 10,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
        seed: int = 0,
    ) -> None:
        if shots < 1 or queries < 0:
            raise ValueError(f"need shots >= 1 and queries >= 0, got {shots} and {queries}")
        for name, (low, high) in (("amplitude", amplitude), ("phase", phase), ("x_range", x_range)):
            if not low <= high:
                raise ValueError(f"{name} range must be (low, high) with low <= high")
        self.shots, self.queries = shots, queries
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    @staticmethod
    def curve(x: torch.Tensor, amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """``amplitude * sin(x - phase)``, broadcasting task parameters over points."""
        return amplitude * torch.sin(x - phase)

    def _uniform(
        self, low_high: tuple[float, float], *shape: int, generator: torch.Generator
    ) -> torch.Tensor:
        low, high = low_high
        return low + (high - low) * torch.rand(*shape, generator=generator)

    def sample(
        self, batch_size: int | None = None, generator: torch.Generator | None = None
    ) -> Episode:
        """A task (or a batch of ``batch_size`` tasks) with support and query points."""
        generator = self.generator if generator is None else generator
        count = _batch_count(batch_size)
        amplitude = self._uniform(self.amplitude, count, 1, 1, generator=generator)
        phase = self._uniform(self.phase, count, 1, 1, generator=generator)
        x = self._uniform(self.x_range, count, self.shots + self.queries, 1, generator=generator)
        y = self.curve(x, amplitude, phase)
        episode = Episode(
            support_x=x[:, : self.shots],
            support_y=y[:, : self.shots],
            query_x=x[:, self.shots :],
            query_y=y[:, self.shots :],
            regression=True,
            info={"amplitude": amplitude.view(count), "phase": phase.view(count)},
        )
        return episode if batch_size is not None else episode.task(0)
