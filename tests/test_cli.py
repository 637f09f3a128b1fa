"""The metabook command end to end, on fixtures in the published Omniglot layouts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import torch

import metabook as mb
from metabook.cli import main
from tests.conftest import write_omniglot_split, write_one_shot_runs


@pytest.fixture
def fixture_root(tmp_path, monkeypatch):
    """A data root like ``$METABOOK_DATA``: ``omniglot/`` holds a small split and the runs."""
    alphabets = {"Atlantean": 4, "Kannada": 4, "Oriya": 4}
    omniglot = tmp_path / "omniglot"
    write_omniglot_split(omniglot, "evaluation", alphabets, drawers=4, monkeypatch=monkeypatch)
    write_one_shot_runs(omniglot)
    return tmp_path


def run(capsys, command: str) -> tuple[int, str, str]:
    """Run ``metabook COMMAND`` in-process; the command is split on white space."""
    status = main(command.split())
    out = capsys.readouterr()
    return status, out.out, out.err


def test_train_eval_and_eval_runs(fixture_root, capsys):
    out_dir = fixture_root / "run"
    data = f"--dataset omniglot:evaluation --data-root {fixture_root} --device cpu --quiet"
    status, out, err = run(
        capsys,
        f"train --method protonet {data} --ways 3 --shots 1 --queries 1 --steps 4 "
        f"--val-fraction 0.25 --val-episodes 4 --val-every 2 --out {out_dir}",
    )
    assert status == 0, err
    assert (out_dir / "last.pt").exists() and (out_dir / "best.pt").exists()
    learner, config = mb.load_run(out_dir / "last.pt")
    assert config.method == "protonet" and config.backbone == mb.BackboneConfig("conv4", 64)
    assert config.data.image_size == 28 and config.data.dataset == "omniglot:evaluation"
    assert config.train.steps == 4 and config.ways == 3 and config.queries == 1
    assert config.command.startswith("metabook ")
    trained = torch.load(out_dir / "last.pt", weights_only=True)["state_dict"]
    for name, value in learner.state_dict().items():
        assert torch.equal(value, trained[name])

    checkpoint = f"--checkpoint {out_dir / 'last.pt'}"
    status, out, err = run(
        capsys,
        f"eval {checkpoint} {data} --ways 3 --shots 1 --queries 2 --episodes 5 --within-alphabet",
    )
    assert status == 0, err
    assert "protonet, 3-way 1-shot (within one alphabet):" in out and "(5 episodes)" in out
    # an ensemble of one checkpoint twice averages equal log-probabilities: the same result
    twice = f"--checkpoint {out_dir / 'last.pt'} {out_dir / 'last.pt'}"
    status, again, err = run(
        capsys,
        f"eval {twice} {data} --ways 3 --shots 1 --queries 2 --episodes 5 --within-alphabet",
    )
    assert status == 0, err
    assert again.startswith("ensemble of 2 (protonet), 3-way 1-shot")
    assert again.split("): ")[-1] == out.split("): ")[-1]

    # the training dataset's alphabets are all in the evaluation dataset: nothing is held out
    status, out, err = run(capsys, f"eval {checkpoint} {data} --ways 3 --held-out")
    assert status == 2 and "every alphabet of omniglot:evaluation was seen in training" in err

    # the runs are found in omniglot/ of the data root
    status, out, err = run(capsys, f"eval-runs {checkpoint} --data-root {fixture_root}")
    assert status == 0, err
    lines = out.strip().splitlines()
    assert [line.split("(")[0].strip() for line in lines[:3]] == ["run  1", "run  2", "run  3"]
    # in the fixture every test item is a copy of its class image: no errors
    assert lines[-1].startswith("protonet: average error 0.0% over 20 runs")
    status, out, err = run(capsys, f"eval-runs {checkpoint} --data-root {fixture_root} --inductive")
    assert status == 0, err
    assert "protonet (each query alone): average error 0.0% over 20 runs" in out


def test_bad_input_exits_with_a_one_line_error(fixture_root, capsys):
    out_dir = fixture_root / "maml"
    status, _, err = run(
        capsys,
        f"train --method maml --dataset omniglot:evaluation --data-root {fixture_root} "
        f"--ways 3 --queries 1 --steps 1 --val-episodes 0 --out {out_dir} --device cpu --quiet",
    )
    assert status == 0, err
    checkpoint = f"--checkpoint {out_dir / 'last.pt'}"
    runs = fixture_root / "omniglot"
    status, _, err = run(capsys, f"eval-runs {checkpoint} --runs {runs} --device cpu")
    assert status == 2 and "3-way head and cannot classify 20-way episodes" in err
    status, _, err = run(capsys, f"eval {checkpoint} {out_dir / 'last.pt'} --ways 3 "
                         f"--dataset omniglot:evaluation --data-root {fixture_root}")  # fmt: skip
    assert status == 2 and "MAML adapts at test time" in err
    small = fixture_root / "small"
    status, _, err = run(
        capsys,
        f"train --method protonet --dataset omniglot:evaluation --data-root {fixture_root} "
        f"--ways 3 --queries 1 --steps 1 --val-episodes 0 --image-size 16 --out {small} "
        "--device cpu --quiet",
    )
    assert status == 0, err
    status, _, err = run(capsys, f"eval-runs --checkpoint {small / 'last.pt'} "
                         f"{out_dir / 'last.pt'} --runs {runs}")  # fmt: skip
    assert status == 2 and "in its image size (28 vs 16)" in err
    status, _, err = run(capsys, f"eval {checkpoint} --dataset mnist:train --ways 3")
    assert status == 2 and "unknown dataset 'mnist:train'" in err
    status, _, err = run(capsys, f"eval --checkpoint {fixture_root / 'none.pt'}")
    assert status == 2 and "none.pt" in err


def test_the_console_script_is_declared_and_the_module_runs():
    root = Path(__file__).resolve().parents[1]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"metabook": "metabook.cli:main"}
    out = subprocess.run(
        [sys.executable, "-m", "metabook", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--method {" + ",".join(mb.LEARNERS) + "}" in out.stdout


def test_train_recipe_options_reach_the_sampler(fixture_root, capsys, monkeypatch):
    """--within-alphabet draws every training episode from one alphabet; --augment distorts
    the images; --val-alphabets holds an alphabet out of training and validates within it;
    all are recorded in the checkpoint's configuration."""
    import metabook.runs as runs

    seen = {}
    real_meta_train = runs.meta_train

    def spy(learner, tasks, **kwargs):
        seen["tasks"], seen["val"] = tasks, kwargs["val_episodes"]
        return real_meta_train(learner, tasks, **kwargs)

    monkeypatch.setattr(runs, "meta_train", spy)
    out_dir = fixture_root / "recipe"
    status, out, err = run(
        capsys,
        f"train --method protonet --dataset omniglot:evaluation --data-root {fixture_root} "
        "--ways 3 --shots 1 --queries 1 --steps 2 --val-alphabets Kannada --val-episodes 2 "
        f"--augment --within-alphabet --rotations --out {out_dir} --device cpu --quiet",
    )
    assert status == 0, err
    data = runs.load_dataset("omniglot:evaluation", str(fixture_root), 28, rotations=True)
    tasks = seen["tasks"]
    for _ in range(20):
        episode = tasks.sample(1)
        alphabets = data.class_alphabet[episode.info["classes"][0]]
        assert alphabets.unique().numel() == 1
        assert data.alphabets[int(alphabets[0])] != "Kannada"  # held out, rotations too
        # the images are distorted copies: no support image equals its dataset image
        originals = data.images[episode.info["indices"][0, :, 0]]
        assert not torch.allclose(episode.support_x[0], originals)
    for episode in seen["val"]:  # validation episodes are the data as it is, within alphabet
        originals = data.images[episode.info["indices"][:, 0]]
        assert torch.equal(episode.support_x, originals)
        names = {data.classes[c] for c in episode.info["classes"].tolist()}
        assert {name.split("/")[0] for name in names} == {"Kannada"}
        assert all(name.count("/") == 1 for name in names)  # unrotated characters
    _, config = mb.load_run(out_dir / "last.pt")
    assert config.data.augment is True and config.data.within_alphabet is True
    assert config.data.val_alphabets == ("Kannada",)


def test_eval_runs_baseline_reproduces_the_official_demo(data_root, capsys):
    """The official demo's modified Hausdorff baseline errs on 38.8% of the 400 queries of
    the 20 runs (Lake et al.'s one-shot-classification/demo_classification.py): the check
    that the runs' images, their orientation and the answer keys are read as the authors
    read them. 155 wrong of 400 is 38.75%."""
    status, out, err = run(capsys, f"eval-runs --baseline mhd --data-root {data_root}")
    assert status == 0, err
    errors = [float(line.split("error ")[1].rstrip("%)")) for line in out.splitlines()[:20]]
    assert len(errors) == 20 and all(e % 5 == 0 for e in errors)  # 20 queries per run
    assert sum(errors) / 20 == 38.75
    assert "average error 38.8% over 20 runs" in out


def test_a_transfer_baseline_is_sized_from_the_dataset(fixture_root, capsys):
    """metabook train sets the classifier's classes to the dataset's (12 characters here)
    and records them, so the checkpoint rebuilds it."""
    out_dir = fixture_root / "transfer"
    status, _, err = run(
        capsys,
        f"train --method transfer --dataset omniglot:evaluation --data-root {fixture_root} "
        f"--ways 3 --queries 1 --steps 2 --val-episodes 0 --out {out_dir} --device cpu --quiet",
    )
    assert status == 0, err
    learner, config = mb.load_run(out_dir / "last.pt")
    assert config.hyper["num_classes"] == 12 and learner.classifier.out_features == 12
