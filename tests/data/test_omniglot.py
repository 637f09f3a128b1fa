"""Omniglot and the one-shot runs: the real minimal splits, and fixtures in the published
layouts for the evaluation split and the runs (which are not in the shared data)."""

from __future__ import annotations

import shutil
import zipfile

import pytest
import torch

import metabook as mb
import metabook.data.omniglot as omniglot_module
from metabook.data import Omniglot, OmniglotOneShotRuns
from metabook.files import DataNotFoundError
from tests.conftest import write_omniglot_split, write_one_shot_runs


@pytest.fixture(scope="module")
def small1(data_root):
    return Omniglot("background_small1", root=data_root / "omniglot")


@pytest.fixture(scope="module")
def combined(data_root):
    return Omniglot("background_small1+background_small2", root=data_root / "omniglot")


def test_minimal_splits_have_the_published_sizes(small1, data_root):
    assert len(small1) == 136 * 20 and len(small1.classes) == 136
    assert small1.alphabets == ["Balinese", "Early_Aramaic", "Greek", "Korean", "Latin"]
    small2 = Omniglot("background_small2", root=data_root / "omniglot")
    assert len(small2) == 156 * 20 and len(small2.classes) == 156
    assert small1.images.shape == (2720, 1, 28, 28) and small1.images.dtype == torch.float32


def test_classes_outside_seen_alphabets(small1, data_root):
    small2 = Omniglot("background_small2", root=data_root / "omniglot")
    held_out = small2.classes_outside(small1.alphabets)
    # Greek and Latin are in both minimal splits; the other alphabets of small2 are new
    alphabets = {small2.classes[c].split("/")[0] for c in held_out}
    assert alphabets == set(small2.alphabets) - {"Greek", "Latin"}
    assert len(held_out) == sum(small2.classes[c].split("/")[0] in alphabets for c in range(156))
    with pytest.raises(ValueError, match="every alphabet"):
        small1.classes_outside(small1.alphabets)


def test_every_class_has_one_drawing_by_each_of_20_drawers(small1):
    for cls in range(len(small1.classes)):
        drawers = small1.drawers[small1.labels == cls]
        assert sorted(drawers.tolist()) == list(range(20))


def test_ink_is_one_and_paper_is_zero(data_root):
    full = Omniglot("background_small1", root=data_root / "omniglot", image_size=105)
    assert full.images.shape[-2:] == (105, 105)
    values = torch.unique(full.images)
    assert values.tolist() == [0.0, 1.0]  # binary originals stay binary at full size
    ink = full.images.mean().item()
    assert 0.02 < ink < 0.2  # strokes are thin: most of the page is paper


def test_combining_splits_keeps_shared_characters_once(small1, combined, data_root):
    assert len(combined.classes) == 136 + 156 - 24 - 26  # Greek (24) and Latin (26) are shared
    assert len(set(combined.classes)) == len(combined.classes)
    assert len(combined) == 20 * len(combined.classes)
    assert "Greek/character01" in combined.classes
    a = small1.images[small1.labels == small1.classes.index("Greek/character05")]
    b = combined.images[combined.labels == combined.classes.index("Greek/character05")]
    assert torch.equal(a, b)
    same = Omniglot(["background_small1", "background_small1"], root=data_root / "omniglot")
    assert len(same.classes) == 136


def test_rotations_add_three_rotated_copies_as_new_classes(small1, data_root):
    rotated = Omniglot("background_small1", root=data_root / "omniglot", rotations=True)
    assert len(rotated.classes) == 4 * 136 and len(rotated) == 4 * len(small1)
    cls = small1.classes.index("Korean/character03")
    name = rotated.classes.index("Korean/character03/rot90")
    original = small1.images[small1.labels == cls]
    turned = rotated.images[rotated.labels == name]
    assert torch.equal(turned, torch.rot90(original, 1, dims=(-2, -1)))
    assert rotated.class_alphabet[name] == rotated.alphabets.index("Korean")


def test_decoding_is_cached_once(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("METABOOK_CACHE", str(tmp_path))
    first = Omniglot("background_small1", root=data_root / "omniglot")
    cached = list((tmp_path / "omniglot").glob("images_background_small1-28px-*.pt"))
    assert len(cached) == 1

    def fail(*args, **kwargs):
        raise AssertionError("decoded again although a cache exists")

    monkeypatch.setattr(omniglot_module, "_decode_split", fail)
    second = Omniglot("background_small1", root=data_root / "omniglot")
    assert torch.equal(first.images, second.images) and first.classes == second.classes


def test_a_damaged_cache_is_rebuilt(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("METABOOK_CACHE", str(tmp_path))
    first = Omniglot("background_small1", root=data_root / "omniglot")
    (cached,) = (tmp_path / "omniglot").glob("*.pt")
    cached.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="rebuilding"):
        again = Omniglot("background_small1", root=data_root / "omniglot")
    assert torch.equal(first.images, again.images)


def test_truncated_or_foreign_zip_is_rejected(data_root, tmp_path):
    real = (data_root / "omniglot" / "images_background_small1.zip").read_bytes()
    (tmp_path / "images_background_small1.zip").write_bytes(real[: len(real) // 2])
    with pytest.raises(ValueError, match="not a valid zip|corrupt"):
        Omniglot("background_small1", root=tmp_path)
    (tmp_path / "images_background_small1.zip").write_bytes(b"<html>Not Found</html>")
    with pytest.raises(ValueError, match="corrupt"):
        Omniglot("background_small1", root=tmp_path)
    shutil.copy(
        data_root / "omniglot" / "images_background_small2.zip",
        tmp_path / "images_background_small1.zip",
    )
    with pytest.raises(ValueError, match="MD5 .* not the official"):
        Omniglot("background_small1", root=tmp_path)


def test_evaluation_split_from_an_extracted_folder(tmp_path, monkeypatch):
    write_omniglot_split(
        tmp_path, "evaluation", {"Atlantean": 3, "Kannada": 2}, drawers=4, monkeypatch=monkeypatch
    )
    data = Omniglot("evaluation", root=tmp_path, download=False, image_size=35)
    assert data.classes == [
        "Atlantean/character01",
        "Atlantean/character02",
        "Atlantean/character03",
        "Kannada/character01",
        "Kannada/character02",
    ]
    assert data.images.shape == (20, 1, 35, 35)
    assert torch.bincount(data.labels).tolist() == [4] * 5
    assert data.drawers[:4].tolist() == [0, 1, 2, 3]
    assert data.alphabets == ["Atlantean", "Kannada"]
    assert data.class_alphabet.tolist() == [0, 0, 0, 1, 1]
    # the fixture's black rectangle must come out as ink = 1 on paper = 0
    assert 0.03 < data.images.mean().item() < 0.2
    image, label = data[5]
    assert image.shape == (1, 35, 35) and label == 1


def test_a_zip_that_is_not_the_official_one_is_rejected(tmp_path):
    write_omniglot_split(tmp_path, "evaluation", {"Atlantean": 2}, as_zip=True)
    with pytest.raises(ValueError, match="not the official"):
        Omniglot("evaluation", root=tmp_path, download=False)


def test_missing_data_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("METABOOK_DATA", raising=False)
    monkeypatch.setenv("METABOOK_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError, match="images_evaluation.zip") as info:
        Omniglot("evaluation", root=tmp_path / "nowhere", download=False)
    assert "brendenlake/omniglot" in str(info.value)
    unreachable = mb.files.RemoteFile(
        "images_evaluation.zip", "http://127.0.0.1:9/images_evaluation.zip", md5="0" * 32
    )
    monkeypatch.setitem(omniglot_module.OMNIGLOT_FILES, "evaluation", unreachable)
    with pytest.raises(DataNotFoundError, match="could not be downloaded"):
        Omniglot("evaluation")
    folder = tmp_path / "cache" / "omniglot"
    assert not folder.exists() or list(folder.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "background_small3"}, "unknown Omniglot split"),
        ({"split": "background+"}, "unknown Omniglot split"),
        ({"split": "background_small1", "image_size": 2}, "image_size"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Omniglot(**kwargs)


@pytest.mark.parametrize("as_zip", [True, False])
def test_one_shot_runs_follow_the_answer_key(tmp_path, as_zip):
    keys = write_one_shot_runs(tmp_path, as_zip=as_zip)
    runs = OmniglotOneShotRuns(root=tmp_path, download=False)
    assert len(runs) == 20
    for r, episode in enumerate(runs, start=1):
        assert episode.support_x.shape == (20, 1, 28, 28)
        assert episode.query_x.shape == (20, 1, 28, 28)
        assert episode.support_y.tolist() == list(range(20))
        assert episode.query_y.tolist() == [keys[r][k] - 1 for k in range(1, 21)]
    # in the fixture each test item is a copy of its class image: 1-NN must be perfect
    result = mb.evaluate(mb.NearestNeighbour(), runs)
    assert result.mean == 1.0


def test_one_shot_runs_with_a_bad_answer_key(tmp_path):
    write_one_shot_runs(tmp_path, as_zip=False)
    labels = tmp_path / "all_runs" / "run01" / "class_labels.txt"
    labels.write_text("run01/test/item01.png run01/training/class99.png\n")
    with pytest.raises(ValueError, match="lacks run01/training/class99.png"):
        OmniglotOneShotRuns(root=tmp_path, download=False)
    labels.write_text("item01 -> class01\n")
    with pytest.raises(ValueError, match="malformed line"):
        OmniglotOneShotRuns(root=tmp_path, download=False)


def test_an_incomplete_copy_is_refused_with_what_is_missing(tmp_path, data_root):
    """A folder of a split, or of the runs, that lacks files is refused, not half-loaded."""
    with zipfile.ZipFile(data_root / "omniglot" / "images_background_small1.zip") as archive:
        archive.extractall(tmp_path)
    folder = tmp_path / "images_background_small1"
    for png in sorted(folder.rglob("*.png"))[:25]:
        png.unlink()
    with pytest.raises(ValueError, match="2695 images of 135 characters.*2720 of 136"):
        Omniglot("background_small1", root=tmp_path, download=False)
    write_one_shot_runs(tmp_path / "runs", runs=3)
    with pytest.raises(ValueError, match="holds 3 runs, but the official one-shot task has 20"):
        OmniglotOneShotRuns(root=tmp_path / "runs", download=False)


def test_the_runs_read_from_a_zip_of_their_folder(tmp_path, data_root):
    """A zip made of the extracted all_runs folder has it in every name: still the runs."""
    with (
        zipfile.ZipFile(data_root / "omniglot" / "all_runs.zip") as source,
        zipfile.ZipFile(tmp_path / "all_runs.zip", "w") as target,
    ):
        for name in source.namelist():
            target.writestr(f"all_runs/{name}", source.read(name))
    runs = OmniglotOneShotRuns(root=tmp_path, download=False)
    official = OmniglotOneShotRuns(root=data_root / "omniglot", download=False)
    assert len(runs) == 20
    assert torch.equal(runs[7].query_x, official[7].query_x)
    assert torch.equal(runs[7].query_y, official[7].query_y)
