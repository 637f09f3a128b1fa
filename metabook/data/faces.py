"""The ORL (AT&T) face database, for face verification and one-shot identification
(chapter "Applications").

40 people photographed 10 times each (Olivetti Research Laboratory, Cambridge, 1992-94),
92 x 112 grey PGM images in folders ``s1`` .. ``s40``. The loader reads that folder from the
usual places (``root``, ``$METABOOK_DATA/orl_faces``, the user cache) and refuses an
incomplete one. Where it is missing and there is a network, the same 400 faces come from
their Olivetti copy (64 x 64, the 40 people in the same order), the file scikit-learn
publishes, downloaded with its SHA-256 checked and read with SciPy (both in the
``applications`` extra).

Split by *person*, never by image, so that the people of a test set are never seen in
training: ``test, train = split_classes(40, [10, 30], seed)`` and ``ORLFaces(people=train)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from metabook._compat import warn_deprecated
from metabook.data.episodes import split_classes
from metabook.files import DataNotFoundError, RemoteFile, candidate_roots, find_or_download

__all__ = ["ORLFaces"]

PEOPLE, IMAGES_PER_PERSON = 40, 10


def _read_orl(folder: Path, image_size: int) -> torch.Tensor:
    missing = [
        f"s{person}/{shot}.pgm"
        for person in range(1, PEOPLE + 1)
        for shot in range(1, IMAGES_PER_PERSON + 1)
        if not (folder / f"s{person}" / f"{shot}.pgm").is_file()
    ]
    if missing:
        raise DataNotFoundError(
            f"the ORL folder {folder} is incomplete: {len(missing)} of the "
            f"{PEOPLE * IMAGES_PER_PERSON} images are missing ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}); it needs s1..s{PEOPLE} with "
            f"1.pgm..{IMAGES_PER_PERSON}.pgm each"
        )
    images = []
    for person in range(1, PEOPLE + 1):
        for shot in range(1, IMAGES_PER_PERSON + 1):
            path = folder / f"s{person}" / f"{shot}.pgm"
            try:
                with Image.open(path) as image:
                    grey = image.convert("L").resize(
                        (image_size, image_size), Image.Resampling.BILINEAR
                    )
            except (OSError, ValueError, SyntaxError) as err:  # what PIL raises on bad files
                raise ValueError(f"{path} is not a readable image: {err}") from err
            images.append(np.asarray(grey, dtype=np.uint8))
    return torch.from_numpy(np.stack(images))


#: The Olivetti copy of the ORL faces (64 x 64), as scikit-learn publishes it.
OLIVETTI = RemoteFile(
    "olivettifaces.mat",
    "https://ndownloader.figshare.com/files/5976027",
    sha256="b612fb967f2dc77c9c62d3e1266e0c73d5fca46a4b8906c18e454d41af987794",
)


def _fetch_olivetti(image_size: int, download: bool) -> torch.Tensor:
    """The 400 faces of the Olivetti copy, downloaded (checked, with a deadline) into the
    user cache and read with SciPy (in the ``applications`` extra)."""
    try:
        from scipy.io import loadmat
    except ImportError as err:
        raise DataNotFoundError(
            "the ORL faces were not found and SciPy, which reads their Olivetti copy, is not "
            "installed: pip install 'metabook-ml[applications]', or put the ORL folder "
            "(s1..s40) in $METABOOK_DATA/orl_faces"
        ) from err
    path = find_or_download("olivetti", OLIVETTI, None, download)
    try:
        faces = np.asarray(loadmat(str(path))["faces"], dtype=np.float32).T
    except (ValueError, KeyError, OSError) as err:
        raise ValueError(f"{path} is not the Olivetti faces file ({err}); delete it") from err
    faces = (faces - faces.min()) / (faces.max() - faces.min())
    tensor = torch.from_numpy(faces.reshape(400, 64, 64).transpose(0, 2, 1).copy())
    tensor = tensor.unsqueeze(1)  # [400, 1, 64, 64] in [0, 1], the people in order
    if image_size != tensor.shape[-1]:
        tensor = torch.nn.functional.interpolate(
            tensor, size=(image_size, image_size), mode="bilinear", align_corners=False
        )
    return (tensor.squeeze(1).clamp(0, 1) * 255).round().to(torch.uint8)


def _orl_folders(root: str | os.PathLike[str] | None) -> list[Path]:
    """The candidate places that hold an ORL folder (any of ``s1`` .. ``s40``)."""
    return [
        folder
        for folder in candidate_roots("orl_faces", root)
        if any((folder / f"s{person}").is_dir() for person in range(1, PEOPLE + 1))
    ]


class ORLFaces(torch.utils.data.Dataset):
    """The 400 ORL faces as tensors: ``.images [400, 1, size, size]`` in ``[0, 1]``,
    ``.labels [400]`` (the person, 0..39) and ``.classes`` (``"s1"`` .. ``"s40"``).

    Args:
        root: a folder holding ``s1`` .. ``s40``; when ``None`` the usual places are searched
            (see :mod:`metabook.files`).
        download: where the folder is missing, download the same faces' Olivetti copy
            (needs a network and SciPy).
        image_size: side of the square images after resizing (the originals are 92 x 112,
            so the faces are slightly squeezed sideways, as in the Olivetti version).
        people: keep only these people (indices 0..39), e.g. one part of
            :func:`~metabook.data.episodes.split_classes` ``(40, [10, 30])``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        download: bool = True,
        image_size: int = 64,
        people: Sequence[int] | None = None,
    ) -> None:
        if not isinstance(image_size, int) or not 8 <= image_size <= 112:
            raise ValueError(f"image_size must be an integer from 8 to 112, got {image_size!r}")
        folders = _orl_folders(root)
        if folders:
            pixels = _read_orl(folders[0], image_size)
            self.source = str(folders[0])
        elif download:
            pixels = _fetch_olivetti(image_size, download)
            self.source = OLIVETTI.url
        else:
            looked = "\n".join(f"  - {f}" for f in candidate_roots("orl_faces", root))
            raise DataNotFoundError(
                f"the ORL faces (folders s1..s{PEOPLE}) were not found (download=False). "
                f"Looked in:\n{looked}\nSet METABOOK_DATA to a folder holding orl_faces/."
            )
        labels = torch.arange(PEOPLE).repeat_interleave(IMAGES_PER_PERSON)
        keep = torch.ones_like(labels, dtype=torch.bool)
        if people is not None:
            chosen = torch.as_tensor(list(people), dtype=torch.int64)
            if chosen.numel() == 0 or chosen.min() < 0 or chosen.max() >= PEOPLE:
                raise ValueError(f"people must be indices from 0 to {PEOPLE - 1}, got {people}")
            keep = torch.isin(labels, chosen)
        self.images = pixels[keep].unsqueeze(1).float().div_(255.0)
        self.labels = labels[keep]
        self.classes = [f"s{i + 1}" for i in range(PEOPLE)]
        self.image_size = image_size

    @staticmethod
    def split_people(test: int = 10, seed: int = 0) -> tuple[list[int], list[int]]:
        """Deprecated: ``test, train = split_classes(40, [test, 40 - test], seed)`` gives
        the same split."""
        warn_deprecated("ORLFaces.split_people", "metabook.data.split_classes")
        if not 2 <= test <= PEOPLE - 2:
            raise ValueError(f"test must be between 2 and {PEOPLE - 2} people, got {test}")
        tested, trained = split_classes(PEOPLE, [test, PEOPLE - test], seed)
        return trained.tolist(), tested.tolist()

    def __len__(self) -> int:
        return self.labels.numel()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def __repr__(self) -> str:
        people = self.labels.unique().numel()
        return f"ORLFaces(images={len(self)}, people={people}, image_size={self.image_size})"
