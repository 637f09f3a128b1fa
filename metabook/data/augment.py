"""Random affine distortions of training episodes (chapter "Siamese networks and prototype
losses").

Omniglot has only 20 drawings of each character. Koch et al. (2015) multiplied them with
small random affine distortions (rotation, shear, scale, shift), and the same trick lifts a
prototypical network trained on the minimal splits. The distortion runs on tensors (on the
GPU when the episode is there), one independent draw per image.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from metabook.data.episodes import Episode, TaskSource

__all__ = ["AugmentedTasks", "RandomAffine"]


class RandomAffine:
    """Distort every image of a batch ``[..., C, H, W]`` with its own random affine map.

    Each image is rotated by an angle drawn uniformly from ``±degrees``, sheared by
    ``±shear`` (a factor, 0.1 = 10% of the height), scaled by a factor drawn from ``scale``
    and shifted by up to ``±translate`` of its side, then resampled bilinearly; pixels
    brought in from outside are ``fill``. With every range zero the images come back
    unchanged (up to float rounding).

    Args:
        degrees, translate, shear: half-widths of the uniform ranges.
        scale: ``(low, high)`` of the zoom factor (above 1 enlarges the character).
        fill: value of pixels from outside the image (0 = Omniglot's background).
        generator: makes the draws reproducible; its device must be the CPU.
    """

    def __init__(
        self,
        degrees: float = 10.0,
        translate: float = 0.1,
        scale: tuple[float, float] = (0.9, 1.1),
        shear: float = 0.1,
        fill: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        low, high = scale
        if degrees < 0 or translate < 0 or shear < 0 or not 0 < low <= high:
            raise ValueError(
                "need degrees, translate, shear >= 0 and 0 < scale[0] <= scale[1]; got "
                f"degrees={degrees}, translate={translate}, shear={shear}, scale={scale}"
            )
        self.degrees, self.translate, self.scale, self.shear = degrees, translate, scale, shear
        self.fill, self.generator = fill, generator

    def matrices(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` random maps as ``[n, 2, 3]`` matrices in the normalised coordinates of
        :func:`torch.nn.functional.affine_grid` (each maps an output pixel to the input
        location it reads from), drawn from ``generator`` (by default the transform's)."""
        generator = self.generator if generator is None else generator

        def uniform(count: int, half_width: float, centre: float = 0.0) -> torch.Tensor:
            u = torch.rand(count, generator=generator, dtype=torch.float64)
            return centre + half_width * (2 * u - 1)

        angle = uniform(n, math.radians(self.degrees))
        low, high = self.scale
        zoom = uniform(n, (high - low) / 2, (high + low) / 2)
        shear = uniform(n, self.shear)
        shift = uniform(2 * n, 2 * self.translate).view(n, 2)
        cos, sin = torch.cos(angle), torch.sin(angle)
        rotate = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
        shear_m = torch.eye(2, dtype=torch.float64).repeat(n, 1, 1)
        shear_m[:, 0, 1] = shear
        forward = rotate @ shear_m * zoom.view(n, 1, 1)  # input -> output
        inverse = torch.linalg.inv(forward)  # affine_grid wants output -> input
        offset = -(inverse @ shift.unsqueeze(-1))
        return torch.cat([inverse, offset], dim=-1)

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Every image distorted by its own map, drawn from ``generator`` (by default the
        transform's)."""
        if images.dim() < 3 or not images.is_floating_point():
            raise ValueError(
                f"RandomAffine needs float images [..., C, H, W]; got {tuple(images.shape)} "
                f"{images.dtype}"
            )
        lead, (c, h, w) = images.shape[:-3], images.shape[-3:]
        flat = images.reshape(-1, c, h, w)
        theta = self.matrices(flat.shape[0], generator).to(device=images.device, dtype=images.dtype)
        grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
        out = F.grid_sample(
            flat - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        return (out + self.fill).reshape(*lead, c, h, w)


class AugmentedTasks(TaskSource):
    """A task source whose episodes come with every image distorted by ``transform``.

    ``AugmentedTasks(EpisodeSampler(...), RandomAffine())`` plugs into
    :func:`~metabook.training.meta_train` in place of the sampler. Support and query images are
    distorted independently; labels and ``info`` are unchanged. Use it for training only:
    evaluation episodes should be the data as it is.

    ``sample(batch_size)`` draws the episode from the inner source's generator and the
    distortions from the transform's; ``sample(batch_size, generator)`` draws both from
    ``generator``, so :meth:`~metabook.data.episodes.TaskSource.episodes` gives a fixed list.
    """

    def __init__(self, tasks: TaskSource, transform: RandomAffine) -> None:
        if not isinstance(tasks, TaskSource):
            raise TypeError(
                f"tasks must be a metabook task source (e.g. an EpisodeSampler); got {type(tasks)}"
            )
        self.tasks, self.transform = tasks, transform
        self.seed, self.generator = tasks.seed, tasks.generator

    def sample(
        self, batch_size: int | None = None, generator: torch.Generator | None = None
    ) -> Episode:
        """Episodes of the inner source, distorted."""
        episode = self.tasks.sample(batch_size, generator)
        return Episode(
            support_x=self.transform(episode.support_x, generator),
            support_y=episode.support_y,
            query_x=self.transform(episode.query_x, generator),
            query_y=episode.query_y,
            regression=episode.regression,
            info=episode.info,
        )

    def state_dict(self) -> dict[str, Any]:
        """The inner source's state and the distortions' generator."""
        own = self.transform.generator
        return {
            "tasks": self.tasks.state_dict(),
            "transform": None if own is None else own.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tasks.load_state_dict(state["tasks"])
        if self.transform.generator is not None and state["transform"] is not None:
            self.transform.generator.set_state(state["transform"])

    def __repr__(self) -> str:
        return f"AugmentedTasks({self.tasks!r})"
