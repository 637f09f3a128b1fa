"""Choosing a device and making runs repeatable (defined in the chapter "Core concepts")."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["device", "seed_everything"]


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def device(name: str | torch.device = "auto") -> torch.device:
    """Return a :class:`torch.device`.

    ``"auto"`` picks CUDA when a GPU is visible, then Apple's MPS, then the CPU. Any other
    name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) is checked: asking for a device
    that this machine does not have raises a :class:`ValueError` that says what is there.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise TypeError(f"device name must be a string or torch.device, got {type(name).__name__}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(name)
    except RuntimeError as err:
        raise ValueError(
            f"unknown device {name!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from err
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but no CUDA GPU is visible; use 'auto'")
    if chosen.type == "cuda" and chosen.index is not None:
        count = torch.cuda.device_count()
        if chosen.index >= count:
            raise ValueError(f"device {name!r} was asked for but only {count} GPU(s) are visible")
    if chosen.type == "mps" and not _mps_available():
        raise ValueError(f"device {name!r} was asked for but MPS is not available; use 'auto'")
    return chosen


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and every GPU) and return a seeded generator.

    With ``deterministic=True`` PyTorch is also asked for deterministic kernels, which
    makes GPU runs repeatable at some cost in speed.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeding the legacy global generator)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
