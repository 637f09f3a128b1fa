"""Random affine distortions: the geometry of each draw, reproducibility, and the wrapper."""

from __future__ import annotations

import pytest
import torch

from metabook.data import Episode, TaskSource
from metabook.data.augment import AugmentedTasks, RandomAffine

SIDE = 41


def blob(centre: tuple[float, float], width: float = 0.08) -> torch.Tensor:
    """A Gaussian ink blob [1, SIDE, SIDE] at ``centre`` in normalised coordinates (x, y)."""
    coords = (2 * torch.arange(SIDE, dtype=torch.float64) + 1) / SIDE - 1  # pixel centres
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    d2 = (x - centre[0]) ** 2 + (y - centre[1]) ** 2
    return torch.exp(-d2 / (2 * width**2)).unsqueeze(0)


def centre_of_mass(image: torch.Tensor) -> torch.Tensor:
    coords = (2 * torch.arange(SIDE, dtype=image.dtype) + 1) / SIDE - 1
    mass = image.sum((-1, -2))
    x = (image.sum(-2) * coords).sum(-1) / mass
    y = (image.sum(-1) * coords).sum(-1) / mass
    return torch.stack([x, y], -1).squeeze(-2)


def test_zero_ranges_leave_images_unchanged():
    images = torch.rand(3, 2, 1, SIDE, SIDE)
    same = RandomAffine(degrees=0, translate=0, scale=(1, 1), shear=0)(images)
    assert same.shape == images.shape
    torch.testing.assert_close(same, images, atol=1e-5, rtol=0)


def test_each_image_moves_where_its_drawn_map_sends_it():
    """A blob at p must land at A^-1 (p - b), where [A | b] is the drawn output->input map."""
    points = [(0.2, -0.1), (-0.3, 0.25), (0.0, 0.0), (0.1, 0.3)]
    images = torch.stack([blob(p) for p in points])  # [4, 1, H, W]
    settings = dict(degrees=30.0, translate=0.1, scale=(0.8, 1.2), shear=0.2)
    theta = RandomAffine(**settings, generator=torch.Generator().manual_seed(3)).matrices(4)
    out = RandomAffine(**settings, generator=torch.Generator().manual_seed(3))(images)
    a, b = theta[:, :, :2], theta[:, :, 2]
    expected = torch.linalg.solve(a, torch.tensor(points, dtype=torch.float64) - b)
    torch.testing.assert_close(centre_of_mass(out), expected, atol=0.01, rtol=0)
    # the draws differ from image to image, and are not the identity
    assert not torch.allclose(theta[0], theta[1])
    assert (expected - torch.tensor(points, dtype=torch.float64)).norm(dim=-1).min() > 1e-3


def test_draws_stay_within_their_ranges():
    theta = RandomAffine(degrees=0, translate=0.1, scale=(1, 1), shear=0).matrices(2000)
    torch.testing.assert_close(theta[:, :, :2], torch.eye(2, dtype=theta.dtype).expand(2000, 2, 2))
    shift = -theta[:, :, 2]  # with A = I the output is the input moved by b's opposite
    assert shift.abs().max() <= 0.2 and shift.abs().max() > 0.19  # 10% of a side = 0.2 units
    zoom = RandomAffine(degrees=0, translate=0, scale=(0.5, 2.0), shear=0).matrices(2000)
    factor = 1 / zoom[:, 0, 0]
    assert factor.min() >= 0.5 and factor.max() <= 2.0
    torch.testing.assert_close(zoom[:, 0, 0], zoom[:, 1, 1])


def test_reproducible_with_a_generator_and_dtype_kept():
    images = torch.rand(5, 1, 28, 28)
    first = RandomAffine(generator=torch.Generator().manual_seed(0))(images)
    second = RandomAffine(generator=torch.Generator().manual_seed(0))(images)
    assert torch.equal(first, second) and first.dtype == images.dtype
    assert not torch.equal(first, images)


def test_bad_arguments_and_inputs_are_refused():
    with pytest.raises(ValueError, match="scale"):
        RandomAffine(scale=(1.2, 0.8))
    with pytest.raises(ValueError, match="degrees"):
        RandomAffine(degrees=-1)
    with pytest.raises(ValueError, match=r"float images \[\.\.\., C, H, W\]"):
        RandomAffine()(torch.zeros(28, 28))
    with pytest.raises(ValueError, match="float images"):
        RandomAffine()(torch.zeros(1, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(TypeError, match="must be a metabook task source"):
        AugmentedTasks([1, 2, 3], RandomAffine())


class FixedTasks(TaskSource):
    def __init__(self, episode: Episode) -> None:
        self.episode = episode
        self.seed, self.generator = 0, torch.Generator()

    def sample(self, batch_size=None, generator=None) -> Episode:
        return self.episode


def test_augmented_tasks_distort_images_and_keep_labels():
    episode = Episode(
        support_x=torch.rand(2, 6, 1, 28, 28),
        support_y=torch.tensor([[0, 0, 1, 1, 2, 2]] * 2),
        query_x=torch.rand(2, 3, 1, 28, 28),
        query_y=torch.tensor([[0, 1, 2]] * 2),
        info={"classes": torch.tensor([[4, 5, 6]] * 2)},
    )
    tasks = AugmentedTasks(FixedTasks(episode), RandomAffine())
    out = tasks.sample(2)
    assert out.support_x.shape == episode.support_x.shape
    assert out.query_x.shape == episode.query_x.shape
    assert torch.equal(out.support_y, episode.support_y)
    assert torch.equal(out.query_y, episode.query_y)
    assert out.info is episode.info
    assert not torch.allclose(out.support_x, episode.support_x)
    # a second draw distorts differently
    assert not torch.allclose(tasks.sample(2).support_x, out.support_x)
