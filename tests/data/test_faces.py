"""The ORL faces loader on the real files and on fixtures in the published layout."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import sys
import threading
from pathlib import Path

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
    with pytest.raises(
        DataNotFoundError, match=r"incomplete: 1 of the 400 images are missing \(s7/3"
    ):
        ORLFaces(root=tmp_path / "a", download=False)
    # a folder without s1 is still an ORL folder, and an incomplete one: never ignored
    write_orl(tmp_path / "c")
    shutil.rmtree(tmp_path / "c" / "s1")
    with pytest.raises(DataNotFoundError, match=r"10 of the 400 images are missing \(s1/1"):
        ORLFaces(root=tmp_path / "c", download=True)
    write_orl(tmp_path / "b", corrupt=(2, 9))
    with pytest.raises(ValueError, match=r"s2/9\.pgm is not a readable image"):
        ORLFaces(root=tmp_path / "b", download=False)
    # no folder, download allowed but SciPy missing: say how to fix it
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(DataNotFoundError, match=r"metabook-ml\[applications\]"):
        ORLFaces(root=tmp_path / "nowhere", download=True)


def test_the_olivetti_copy_is_downloaded_checked_and_read(tmp_path, monkeypatch):
    """Without an ORL folder, the faces come from the Olivetti file: here a stand-in served
    on the loopback, with its SHA-256; a wrong checksum leaves nothing behind."""
    from scipy.io import savemat

    import metabook.data.faces as faces_module

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(400, 64, 64)).astype(np.float64)
    pixels[:, 0, 0] = np.repeat(np.arange(40), 10)  # person p's images start with p
    mat = tmp_path / "faces.mat"
    # the published file stores each image transposed and flattened, one per column
    savemat(mat, {"faces": pixels.transpose(0, 2, 1).reshape(400, -1).T})
    body = mat.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/faces.mat"
    monkeypatch.delenv("METABOOK_DATA", raising=False)
    try:
        wrong = faces_module.RemoteFile("olivettifaces.mat", url, sha256="0" * 64)
        monkeypatch.setattr(faces_module, "OLIVETTI", wrong)
        with pytest.raises(DataNotFoundError, match="SHA-256"):
            ORLFaces(root=tmp_path / "nowhere", download=True)
        cache = Path(os.environ["METABOOK_CACHE"]) / "olivetti"
        assert not cache.exists() or not list(cache.iterdir())  # nothing left behind
        right = faces_module.RemoteFile(
            "olivettifaces.mat", url, sha256=hashlib.sha256(body).hexdigest()
        )
        monkeypatch.setattr(faces_module, "OLIVETTI", right)
        faces = ORLFaces(root=tmp_path / "nowhere", download=True, image_size=64)
    finally:
        server.shutdown()
    assert faces.images.shape == (400, 1, 64, 64) and faces.source == url
    first = faces.images[::10, 0, 0, 0] * 255  # the corner pixel of each person's first image
    expected = (pixels[::10, 0, 0] - pixels.min()) / (pixels.max() - pixels.min()) * 255
    assert np.allclose(first.numpy(), np.round(expected), atol=1)
