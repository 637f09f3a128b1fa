"""Omniglot (Lake, Salakhutdinov and Tenenbaum, 2015), read from the official zips.

Defined in the chapter "Core concepts". The official files are the zips in the ``python/``
folder of the ``brendenlake/omniglot`` repository; each holds
``images_<split>/<Alphabet>/characterNN/<id>_<drawer>.png``: 105 x 105 binary images of
handwritten characters, each drawn once by 20 different people ("drawers").
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from metabook.data.episodes import Episode
from metabook.files import RemoteFile, atomic_write, cache_dir, find_or_download, md5sum

__all__ = ["Omniglot", "OmniglotOneShotRuns", "OMNIGLOT_FILES"]

_BASE_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"

#: The official zips, with their published MD5 sums (and sizes, where known).
OMNIGLOT_FILES: dict[str, RemoteFile] = {
    "background": RemoteFile(
        "images_background.zip",
        _BASE_URL + "images_background.zip",
        md5="68d2efa1b9178cc56df9314c21c6e718",
    ),
    "evaluation": RemoteFile(
        "images_evaluation.zip",
        _BASE_URL + "images_evaluation.zip",
        md5="6b91aef0f799c5bb55b94e3f2daec811",
    ),
    "background_small1": RemoteFile(
        "images_background_small1.zip",
        _BASE_URL + "images_background_small1.zip",
        md5="e704a628b5459e08445c13499850abc4",
        size=1319022,
    ),
    "background_small2": RemoteFile(
        "images_background_small2.zip",
        _BASE_URL + "images_background_small2.zip",
        md5="b75a71a51d3b13f821f212756fe481fd",
        size=1580917,
    ),
}

#: Images and characters of each official split, from the official zips' listings: an
#: extracted folder must hold all of them (a zip is checked by its MD5 instead).
OMNIGLOT_MANIFEST: dict[str, tuple[int, int]] = {
    "background": (19280, 964),
    "evaluation": (13180, 659),
    "background_small1": (2720, 136),
    "background_small2": (3120, 156),
}

#: The 20 one-shot runs; upstream publishes no checksum, so the content is checked instead.
ONE_SHOT_RUNS = RemoteFile(
    "all_runs.zip", _BASE_URL + "one-shot-classification/all_runs.zip", md5=None, size=None
)

_IMAGE_RE = re.compile(r"(?:^|/)([^/]+)/(character\d+)/(\d+)_(\d+)\.png$")
_CACHE_VERSION = 1


def _decode(data: bytes, image_size: int, name: str) -> np.ndarray:
    """Decode one Omniglot PNG to a ``uint8`` array with ink = 255, resized to ``image_size``."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            grey = img.convert("L")
            if grey.size != (image_size, image_size):
                grey = grey.resize((image_size, image_size), Image.Resampling.LANCZOS)
            return 255 - np.asarray(grey, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"{name} is not a readable PNG image ({err})") from err


class _Source:
    """A zip or an extracted folder, read the same way."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.is_zip = path.is_file()
        if self.is_zip:
            try:
                self._zip: zipfile.ZipFile | None = zipfile.ZipFile(path)
                bad = self._zip.testzip()
            except (zipfile.BadZipFile, OSError) as err:
                raise ValueError(
                    f"{path} is not a valid zip file ({err}); it is corrupt or truncated: "
                    "delete it and download it again"
                ) from err
            if bad is not None:
                raise ValueError(f"{path} is corrupt (member {bad} fails its CRC); delete it")
            self.names = [n for n in self._zip.namelist() if not n.endswith("/")]
        else:
            self._zip = None
            self.names = sorted(
                p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()
            )

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        return (self.path / name).read_bytes()

    def fingerprint(self) -> str:
        """A key that changes when the content changes (MD5 of a zip, listing of a folder)."""
        if self.is_zip:
            return md5sum(self.path)
        digest = hashlib.md5()
        for name in self.names:
            stat = (self.path / name).stat()
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        return digest.hexdigest()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


@dataclass
class _Decoded:
    images: torch.Tensor  # uint8 [N, H, W], ink = 255
    labels: torch.Tensor  # int64 [N]
    drawers: torch.Tensor  # int64 [N], 0..19
    classes: list[str]  # "Alphabet/characterNN"


def _decode_split(source: _Source, split: str, image_size: int) -> _Decoded:
    entries: list[tuple[str, str, int, str]] = []
    for name in source.names:
        match = _IMAGE_RE.search(name)
        if match:
            alphabet, character, _, drawer = match.groups()
            entries.append((f"{alphabet}/{character}", name, int(drawer) - 1, alphabet))
    if not entries:
        raise ValueError(
            f"{source.path} holds no Omniglot images (expected "
            f"images_{split}/<Alphabet>/characterNN/<id>_<drawer>.png); is it the right file?"
        )
    entries.sort()
    classes = sorted({entry[0] for entry in entries})
    expected = OMNIGLOT_MANIFEST.get(split)
    if not source.is_zip and expected and (len(entries), len(classes)) != expected:
        raise ValueError(
            f"{source.path} holds {len(entries)} images of {len(classes)} characters, but the "
            f"official images_{split} has {expected[0]} of {expected[1]}: the folder is an "
            "incomplete copy; extract the official zip again (or use the zip itself)"
        )
    index = {name: i for i, name in enumerate(classes)}
    images = np.stack([_decode(source.read(name), image_size, name) for _, name, _, _ in entries])
    return _Decoded(
        images=torch.from_numpy(images),
        labels=torch.tensor([index[entry[0]] for entry in entries], dtype=torch.int64),
        drawers=torch.tensor([entry[2] for entry in entries], dtype=torch.int64),
        classes=classes,
    )


def _load_split(
    split: str, root: str | os.PathLike[str] | None, download: bool, image_size: int
) -> _Decoded:
    remote = OMNIGLOT_FILES[split]
    folder_name = remote.name.removesuffix(".zip")
    path = find_or_download("omniglot", remote, root, download, also_accept=(folder_name,))
    source = _Source(path)
    try:
        fingerprint = source.fingerprint()  # a zip's MD5 was checked where it was found
        cached = cache_dir("omniglot") / (
            f"{folder_name}-{image_size}px-v{_CACHE_VERSION}-{fingerprint[:12]}.pt"
        )
        if cached.exists():
            try:
                blob = torch.load(cached, weights_only=True)
                return _Decoded(blob["images"], blob["labels"], blob["drawers"], blob["classes"])
            except Exception as err:  # a damaged cache is rebuilt, never trusted
                warnings.warn(f"rebuilding the damaged cache {cached}: {err}", stacklevel=3)
        decoded = _decode_split(source, split, image_size)
    finally:
        source.close()
    blob = {
        "images": decoded.images,
        "labels": decoded.labels,
        "drawers": decoded.drawers,
        "classes": decoded.classes,
    }
    try:
        atomic_write(cached, lambda tmp: torch.save(blob, tmp))
    except OSError as err:
        warnings.warn(f"could not cache decoded Omniglot at {cached}: {err}", stacklevel=3)
    return decoded


class Omniglot(torch.utils.data.Dataset):
    """Omniglot characters as tensors: ``.images``, ``.labels``, ``.classes``.

    Args:
        split: ``"background"``, ``"evaluation"``, ``"background_small1"`` or
            ``"background_small2"``, or several joined with ``+`` (or given as a list).
            Characters present in more than one of them (Greek and Latin are in both
            minimal splits) are kept once.
        root: a folder holding the official zip (or its extracted folder). When ``None``,
            ``$METABOOK_DATA/omniglot`` and then the user cache are searched.
        download: download a missing zip from the official repository (checked against
            its published MD5).
        image_size: side length in pixels after resizing (105 keeps the originals).
        rotations: add copies rotated by 90, 180 and 270 degrees as new classes, as in
            Vinyals et al. (2016); this multiplies the number of classes by four.

    Attributes:
        images: float tensor ``[N, 1, image_size, image_size]`` in ``[0, 1]``, ink = 1.
        labels: int64 tensor ``[N]`` indexing :attr:`classes`.
        classes: class names ``"Alphabet/characterNN"`` (with ``"/rot90"`` etc. for rotations).
        drawers: int64 tensor ``[N]``: which of the 20 people drew the image (0..19).
        alphabets: the alphabet names, and ``class_alphabet`` the alphabet index of
            each class, for splits and episodes by alphabet.

    The decoded images are cached (``$METABOOK_CACHE`` or ``~/.cache/metabook``), so only the
    first use of a split pays for decoding the PNG files.
    """

    def __init__(
        self,
        split: str | Sequence[str] = "background",
        root: str | os.PathLike[str] | None = None,
        download: bool = True,
        image_size: int = 28,
        rotations: bool = False,
    ) -> None:
        parts = split.split("+") if isinstance(split, str) else list(split)
        unknown = [part for part in parts if part not in OMNIGLOT_FILES]
        if not parts or unknown:
            raise ValueError(
                f"unknown Omniglot split {unknown or split!r}: choose from "
                f"{sorted(OMNIGLOT_FILES)} (join several with '+')"
            )
        if not isinstance(image_size, int) or not 4 <= image_size <= 105:
            raise ValueError(f"image_size must be an integer from 4 to 105, got {image_size!r}")
        self.split = "+".join(parts)
        self.image_size = image_size

        images: list[torch.Tensor] = []
        labels: list[torch.Tensor] = []
        drawers: list[torch.Tensor] = []
        classes: list[str] = []
        seen: set[str] = set()
        for part in dict.fromkeys(parts):
            decoded = _load_split(part, root, download, image_size)
            keep_classes = [i for i, name in enumerate(decoded.classes) if name not in seen]
            keep = torch.isin(decoded.labels, torch.tensor(keep_classes, dtype=torch.int64))
            remap = torch.full((len(decoded.classes),), -1, dtype=torch.int64)
            remap[keep_classes] = torch.arange(len(keep_classes)) + len(classes)
            images.append(decoded.images[keep])
            labels.append(remap[decoded.labels[keep]])
            drawers.append(decoded.drawers[keep])
            classes.extend(decoded.classes[i] for i in keep_classes)
            seen.update(decoded.classes)

        pixels = torch.cat(images)
        self.labels = torch.cat(labels)
        self.drawers = torch.cat(drawers)
        self.classes = classes
        if rotations:
            count = len(classes)
            pixels = torch.cat([torch.rot90(pixels, k, dims=(-2, -1)) for k in range(4)])
            self.labels = torch.cat([self.labels + k * count for k in range(4)])
            self.drawers = self.drawers.repeat(4)
            self.classes = classes + [f"{name}/rot{90 * k}" for k in (1, 2, 3) for name in classes]
        self.images = pixels.unsqueeze(1).float().div_(255.0)
        self.alphabets = sorted({name.split("/")[0] for name in self.classes})
        alphabet_index = {name: i for i, name in enumerate(self.alphabets)}
        self.class_alphabet = torch.tensor(
            [alphabet_index[name.split("/")[0]] for name in self.classes], dtype=torch.int64
        )

    def classes_outside(self, alphabets: Iterable[str]) -> list[int]:
        """The classes whose alphabet is not in ``alphabets``: for testing on alphabets a
        learner never saw, ``test.classes_outside(train.alphabets)``. Raises
        :class:`ValueError` when every alphabet is excluded."""
        excluded = set(alphabets)
        kept_alphabet = torch.tensor([name not in excluded for name in self.alphabets])
        keep = torch.nonzero(kept_alphabet[self.class_alphabet]).squeeze(1).tolist()
        if not keep:
            raise ValueError(f"every alphabet of Omniglot({self.split!r}) is excluded")
        return keep

    def __len__(self) -> int:
        return self.labels.numel()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def __repr__(self) -> str:
        return (
            f"Omniglot(split={self.split!r}, images={len(self)}, classes={len(self.classes)}, "
            f"alphabets={len(self.alphabets)}, image_size={self.image_size})"
        )


_RUN = re.compile(r"run\d+")
RUNS, RUN_WAYS = 20, 20  # the published task: 20 runs of 20-way 1-shot episodes
_RUN_LINE = re.compile(r"^(run\d+)/test/(item\d+)\.png\s+(run\d+)/training/(class\d+)\.png$")


class OmniglotOneShotRuns(Sequence[Episode]):
    """The 20 official one-shot classification runs of Lake et al. (2015).

    Each run is a 20-way 1-shot episode: 20 training images (one per class, the support
    set) and 20 test images (the queries), all drawn from one alphabet of the evaluation
    split. The answer key of each run is ``runNN/class_labels.txt`` whose lines read
    ``runNN/test/itemMM.png runNN/training/classKK.png``. Reads ``all_runs.zip`` or its
    extracted ``all_runs`` folder, found like :class:`Omniglot`'s files.

    Indexing gives an :class:`~metabook.data.episodes.Episode` whose support label ``k`` is
    ``classKK`` with ``KK = k + 1``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        download: bool = True,
        image_size: int = 28,
    ) -> None:
        path = find_or_download("omniglot", ONE_SHOT_RUNS, root, download, ("all_runs",))
        source = _Source(path)
        try:
            self.episodes = self._read(source, image_size)
        finally:
            source.close()
        self.path = path

    @staticmethod
    def _files(source: _Source) -> dict[str, str]:
        """``runNN/...`` -> the member's name, whatever folder holds the runs (a zip made
        of an ``all_runs`` folder has that folder in every name)."""
        by_name = {}
        for name in source.names:
            parts = PurePosixPath(name).parts
            if "__MACOSX" in parts:
                continue
            start = next((i for i, part in enumerate(parts) if _RUN.fullmatch(part)), None)
            if start is not None:
                by_name["/".join(parts[start:])] = name
        return by_name

    @staticmethod
    def _check_complete(source: _Source, by_name: dict[str, str]) -> list[str]:
        """The runs, checked against the published layout: 20 runs of 20 training images,
        20 test images and an answer key each."""
        runs = sorted({key.split("/")[0] for key in by_name})
        if not runs or not any(key.endswith("class_labels.txt") for key in by_name):
            raise ValueError(
                f"{source.path} holds no runNN/class_labels.txt: it is not the official "
                "all_runs.zip of the one-shot classification task"
            )
        problems = []
        for run in runs:
            training = sum(k.startswith(f"{run}/training/") for k in by_name)
            test = sum(k.startswith(f"{run}/test/") for k in by_name)
            if (training, test) != (RUN_WAYS, RUN_WAYS) or f"{run}/class_labels.txt" not in by_name:
                problems.append(f"{run} has {training} training and {test} test images")
        if len(runs) != RUNS or problems:
            found = f"{len(runs)} runs" + (f" ({'; '.join(problems[:3])})" if problems else "")
            raise ValueError(
                f"{source.path} holds {found}, but the official one-shot task has {RUNS} runs "
                f"of {RUN_WAYS} training images, {RUN_WAYS} test images and class_labels.txt "
                "each: the copy is incomplete; download all_runs.zip again"
            )
        return runs

    @classmethod
    def _read(cls, source: _Source, image_size: int) -> list[Episode]:
        by_name = cls._files(source)
        runs = cls._check_complete(source, by_name)

        def image(key: str) -> torch.Tensor:
            if key not in by_name:
                raise ValueError(f"{source.path} lacks {key}, which class_labels.txt names")
            pixels = _decode(source.read(by_name[key]), image_size, key)
            return torch.from_numpy(pixels).unsqueeze(0).float().div_(255.0)

        episodes = []
        for run in runs:
            text = source.read(by_name[f"{run}/class_labels.txt"]).decode("utf-8")
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            pairs = []
            for line in lines:
                match = _RUN_LINE.match(line)
                if not match or match.group(1) != run or match.group(3) != run:
                    raise ValueError(f"{run}/class_labels.txt has a malformed line: {line!r}")
                pairs.append((match.group(2), match.group(4)))
            classes = sorted(
                {cls for _, cls in pairs}
                | {
                    key.split("/")[2].removesuffix(".png")
                    for key in by_name
                    if key.startswith(f"{run}/training/")
                }
            )
            index = {name: i for i, name in enumerate(classes)}
            episodes.append(
                Episode(
                    support_x=torch.stack([image(f"{run}/training/{c}.png") for c in classes]),
                    support_y=torch.arange(len(classes)),
                    query_x=torch.stack([image(f"{run}/test/{item}.png") for item, _ in pairs]),
                    query_y=torch.tensor([index[cls] for _, cls in pairs]),
                )
            )
        return episodes

    def __len__(self) -> int:
        return len(self.episodes)

    def __getitem__(self, index: int) -> Episode:  # type: ignore[override]
        return self.episodes[index]
