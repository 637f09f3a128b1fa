"""Choosing a device, making runs repeatable, progress bars, and the preamble every chapter
runs (defined in the chapter "Core concepts")."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from tqdm import tqdm

T = TypeVar("T")

__all__ = [
    "ChapterSettings",
    "chapter_setup",
    "glue",
    "pick_device",
    "progress_bar",
    "progress_enabled",
    "seed_everything",
]


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """The :class:`torch.device` to run on.

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


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to show progress bars: ``progress`` when it is given, otherwise yes unless
    the environment variable ``METABOOK_PROGRESS`` is ``0``.

    ``make notebooks`` and the test suite set ``METABOOK_PROGRESS=0``, so that no progress
    output is saved in a notebook or published in the book; a reader running a chapter in
    Colab or Jupyter sees live bars. (A notebook kernel has no terminal in either case, so
    only an explicit switch can tell them apart.)
    """
    if progress is not None:
        return progress
    return os.environ.get("METABOOK_PROGRESS", "1") != "0"


def progress_bar(iterable: Iterable[T], progress: bool | None = None, **kwargs: Any) -> Iterable[T]:
    """``iterable`` with a tqdm progress bar, shown as :func:`progress_enabled` decides;
    ``kwargs`` go to tqdm (``desc=``, ``total=``, ...)."""
    return tqdm(iterable, disable=not progress_enabled(progress), **kwargs)


@dataclass(frozen=True)
class ChapterSettings:
    """What a chapter needs to know about where it runs (see :func:`chapter_setup`).

    Attributes:
        quick: ``METABOOK_QUICK=1`` is set (the test suite sets it): use the smallest
            settings that still exercise every cell.
        device: the device the chapter's experiments run on.
        scale: ``"quick"``, ``"cpu"`` (minutes on a laptop) or ``"full"`` (the settings the
            text discusses, on a GPU).
        seed: the seed every generator was set to.
    """

    quick: bool
    device: torch.device
    scale: str
    seed: int


def chapter_setup(seed: int = 0, device: str | torch.device = "auto") -> ChapterSettings:
    """The preamble of every chapter: read the quick switch, pick the device and the scale,
    seed every generator, and print one line saying what was chosen.

    ``METABOOK_QUICK=1`` selects the quick settings; otherwise a CUDA device selects the
    full settings and anything else the CPU settings.
    """
    quick = os.environ.get("METABOOK_QUICK") == "1"
    chosen = pick_device(device)
    scale = "quick" if quick else ("full" if chosen.type == "cuda" else "cpu")
    seed_everything(seed)
    print("device:", chosen, "| settings:", scale)
    return ChapterSettings(quick=quick, device=chosen, scale=scale, seed=seed)


def glue(name: str, value: Any) -> None:
    """Record ``value`` under ``name`` for the chapter's text.

    The book's prose writes ``{glue:text}`name`` (or ``{glue:text}`name:.1f``` with a
    format) where a number comes from the chapter's own computation; the book build inserts
    the value saved with the executed notebook and fails on a name no cell recorded, so
    re-executing a chapter updates its text and the two cannot drift. This is myst-nb's
    ``glue``, quiet (nothing is displayed, and nothing is returned, so a cell that ends with
    it shows no value); where myst-nb is not installed, or outside a notebook kernel (Colab,
    a script), it does nothing.
    """
    try:
        from IPython import get_ipython
        from myst_nb import glue as myst_glue  # type: ignore[import-untyped]
    except ImportError:
        return
    if get_ipython() is not None:
        myst_glue(name, value, display=False)
