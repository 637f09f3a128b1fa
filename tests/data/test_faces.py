"""The ORL faces loader on the real files and on fixtures in the published layout."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from metabook.data import split_classes
from metabook.data.faces import ORLFaces
from metabook.files import DataNotFoundError


def test_the_real_orl_faces(data_root):
    faces = ORLFaces(root=data_root / "orl_faces", download=False)
    assert faces.images.shape == (400, 1, 64, 64) and faces.labels.shape == (400,)
    assert faces.images.min() >= 0 and faces.images.max() <= 1 and faces.images.std() > 0.1
    assert torch.equal(faces.labels.bincount(), torch.full((40,), 10))
    assert faces.classes[0] == "s1" and faces.classes[-1] == "s40"
    # images of one person are closer to each other than to other people's, on average
    flat = faces.images.flatten(1)
    d = torch.cdist(flat, flat)
    same = faces.labels[:, None] == faces.labels[None, :]
    assert d[same & (d > 0)].mean() < 0.8 * d[~same].mean()


def test_people_are_split_by_split_classes(data_root):
    test, train = (part.tolist() for part in split_classes(40, [10, 30], seed=3))
    assert len(train) == 30 and len(test) == 10 and not set(train) & set(test)
    assert sorted(train + test) == list(range(40))
    faces = ORLFaces(root=data_root / "orl_faces", download=False, people=test, image_size=32)
    assert set(faces.labels.tolist()) == set(test) and faces.images.shape == (100, 1, 32, 32)
    # the deprecated helper of 0.1 gives the same split
    with pytest.warns(DeprecationWarning, match="split_people"):
        assert ORLFaces.split_people(10, seed=3) == (train, test)
    with pytest.raises(ValueError, match="between 2 and 38"), pytest.warns(DeprecationWarning):
        ORLFaces.split_people(test=39)


def write_orl(folder, corrupt=None, missing=None):
    for person in range(1, 41):
        (folder / f"s{person}").mkdir(parents=True)
        for shot in range(1, 11):
            path = folder / f"s{person}" / f"{shot}.pgm"
            if (person, shot) == missing:
                continue
            if (person, shot) == corrupt:
                path.write_bytes(b"P5 not an image")
                continue
            pixels = np.full((112, 92), person * 5 + shot, dtype=np.uint8)
            Image.fromarray(pixels).save(path)


def test_a_fixture_in_the_published_layout_reads_back(tmp_path):
    write_orl(tmp_path)
    faces = ORLFaces(root=tmp_path, download=False, image_size=16)
    # a constant image stays constant after resizing: person p, shot s has value 5p + s
    assert faces.images[13, 0, 0, 0].item() == pytest.approx((2 * 5 + 4) / 255)


def test_bad_folders_say_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.delenv("METABOOK_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match="download=False"):
        ORLFaces(root=tmp_path / "nowhere", download=False)
    write_orl(tmp_path / "a", missing=(7, 3))
    with pytest.raises(DataNotFoundError, match=r"s7/3\.pgm is missing"):
        ORLFaces(root=tmp_path / "a", download=False)
    write_orl(tmp_path / "b", corrupt=(2, 9))
    with pytest.raises(ValueError, match=r"s2/9\.pgm is not a readable image"):
        ORLFaces(root=tmp_path / "b", download=False)
    # no folder, download allowed but scikit-learn missing: say how to fix it
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DataNotFoundError, match=r"metabook\[applications\]"):
        ORLFaces(root=tmp_path / "nowhere", download=True)
