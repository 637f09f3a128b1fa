"""Shared fixtures: an isolated cache, the real data folder, and writers of small fixtures
in the published layouts of Omniglot and of its one-shot runs."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# no progress bars in test output, nor in the notebooks nbval executes (its kernels inherit
# this process's environment)
os.environ.setdefault("METABOOK_PROGRESS", "0")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes caches to a temporary folder, never to ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "metabook-cache"
    monkeypatch.setenv("METABOOK_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared real data (METABOOK_DATA). CI always sets it; elsewhere tests needing it
    are skipped with a message saying how to run them."""
    value = os.environ.get("METABOOK_DATA")
    if not value:
        if os.environ.get("CI"):
            pytest.fail("CI must export METABOOK_DATA (the folder of the shared real data)")
        pytest.skip("set METABOOK_DATA to the shared data folder to run the real-data tests")
    root = Path(value)
    if not (root / "omniglot").is_dir():
        pytest.fail(f"METABOOK_DATA={value} has no omniglot/ folder")
    return root


def png_bytes(pixels: np.ndarray) -> bytes:
    """A 1-bit PNG like Omniglot's: True = paper (white), False = ink (black)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(bool)).convert("1").save(buffer, format="PNG")
    return buffer.getvalue()


def character_image(seed: int, size: int = 105) -> np.ndarray:
    """A white image with a black rectangle whose place depends on ``seed``."""
    pixels = np.ones((size, size), dtype=bool)
    rng = np.random.default_rng(seed)
    top, left = rng.integers(0, size // 2, size=2)
    pixels[top : top + size // 3, left : left + size // 4] = False
    return pixels


def write_omniglot_split(
    root: Path,
    split: str,
    alphabets: dict[str, int],
    drawers: int = 3,
    as_zip: bool = False,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> Path:
    """Write ``images_<split>/<Alphabet>/characterNN/<id>_<drawer>.png`` under ``root``.

    A folder stands in for an official split only if the manifest of complete copies says
    it is complete: with ``monkeypatch`` the manifest is made to expect this fixture."""
    if monkeypatch is not None:
        import metabook.data.omniglot as omniglot

        counts = (sum(alphabets.values()) * drawers, sum(alphabets.values()))
        monkeypatch.setitem(omniglot.OMNIGLOT_MANIFEST, split, counts)
    top = f"images_{split}"
    files = {}
    seed = 0
    for alphabet, characters in alphabets.items():
        for c in range(1, characters + 1):
            for d in range(1, drawers + 1):
                seed += 1
                name = f"{top}/{alphabet}/character{c:02d}/{1000 + c:04d}_{d:02d}.png"
                files[name] = png_bytes(character_image(seed))
    if as_zip:
        path = root / f"{top}.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in files.items():
                archive.writestr(name, data)
        return path
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root / top


def run_image(run: int, k: int, size: int = 105) -> np.ndarray:
    """Class ``k``'s image in run ``run``: a rectangle at a place no other class of the run
    has (a 5 x 4 grid), its size depending on the run."""
    pixels = np.ones((size, size), dtype=bool)
    top, left = 20 * ((k - 1) // 5), 20 * ((k - 1) % 5)
    extent = 8 + run % 8
    pixels[top : top + extent, left : left + extent] = False
    return pixels


def write_one_shot_runs(root: Path, runs: int = 20, ways: int = 20, as_zip: bool = True) -> dict:
    """Write ``all_runs`` in the published layout; return each run's answer key.

    The answer key maps item ``k`` (1-based) of run ``r`` to the class that the
    class_labels.txt file names for it: here ``class (k * 7) % ways + 1``.
    """
    files, keys = {}, {}
    for r in range(1, runs + 1):
        run = f"run{r:02d}"
        lines, key = [], {}
        for k in range(1, ways + 1):
            cls = (k * 7) % ways + 1
            key[k] = cls
            files[f"{run}/training/class{k:02d}.png"] = png_bytes(run_image(r, k))
            files[f"{run}/test/item{k:02d}.png"] = png_bytes(run_image(r, cls))
            lines.append(f"{run}/test/item{k:02d}.png {run}/training/class{cls:02d}.png")
        files[f"{run}/class_labels.txt"] = ("\n".join(lines) + "\n").encode()
        keys[r] = key
    root.mkdir(parents=True, exist_ok=True)
    if as_zip:
        with zipfile.ZipFile(root / "all_runs.zip", "w") as archive:
            for name, data in files.items():
                archive.writestr(name, data)
    else:
        for name, data in files.items():
            path = root / "all_runs" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return keys
