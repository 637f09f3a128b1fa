"""Every mistake a user can make on the command line is one line on the standard error,
exit status 2, no traceback, and nothing written; runs that fail or stop say what to do."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
import torch

import metabook as mb
import metabook.cli as cli
import metabook.training as training
from metabook.cli import main
from tests.conftest import write_omniglot_split, write_one_shot_runs

TRAIN = (
    "train --method protonet --dataset omniglot:evaluation --ways 3 --queries 1 "
    "--val-fraction 0.25 --device cpu"
)


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A data root with 12 classes of 3 alphabets and the runs, and a trained run."""
    monkeypatch.delenv("METABOOK_DATA", raising=False)
    alphabets = {"Atlantean": 4, "Kannada": 4, "Oriya": 4}
    write_omniglot_split(
        tmp_path / "omniglot", "evaluation", alphabets, drawers=4, monkeypatch=monkeypatch
    )
    write_one_shot_runs(tmp_path / "omniglot")
    return tmp_path


def metabook(capsys, command: str) -> tuple[int, str, str]:
    status = main(command.split())
    out = capsys.readouterr()
    return status, out.out, out.err


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and the hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_one_line_error(status: int, err: str, *phrases: str, code: int = 2) -> None:
    assert status == code, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in err, err


@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        ("--queries 0", "argument --queries: must be at least 1, got 0"),
        ("--steps 0", "argument --steps: must be at least 1, got 0"),
        ("--ways 1", "argument --ways: must be at least 2, got 1"),
        ("--ways three", "argument --ways: expected a whole number, got 'three'"),
        ("--val-episodes -3", "argument --val-episodes: must be at least 0, got -3"),
        ("--val-fraction 1", "argument --val-fraction: must be between 0 and 1"),
        ("--val-fraction 0", "argument --val-fraction: must be a finite number above 0"),
        ("--lr 0", "argument --lr: must be a finite number above 0, got 0"),
        ("--lr nan", "argument --lr: must be a finite number above 0, got nan"),
        ("--lr=-1e-3", "argument --lr: must be a finite number above 0"),
        ("--grad-clip inf", "argument --grad-clip: must be a finite number above 0"),
        ("--image-size 8", "argument --image-size: must be at least 16, got 8"),
        ("--seed -1", "argument --seed: must be at least 0, got -1"),
        ("--meta-batch 0", "argument --meta-batch: must be at least 1"),
        ("--shots 1.5", "argument --shots: expected a whole number"),
        ("--colour red", "unrecognized arguments: --colour red"),
        ("--method mamll", "argument --method: invalid choice: 'mamll'"),
    ],
)
def test_bad_training_values_are_refused_before_anything_is_read(root, capsys, options, phrase):
    out = root / "run"
    status, _, err = metabook(capsys, f"{TRAIN} --out {out} {options}")
    assert_one_line_error(status, err, phrase, "(see metabook")
    assert not out.exists()


@pytest.mark.parametrize(
    ("command", "phrase"),
    [
        ("eval --checkpoint x.pt --queries 0", "argument --queries: must be at least 1"),
        ("eval --checkpoint x.pt --episodes 0", "argument --episodes: must be at least 1"),
        ("eval --ways 5", "the following arguments are required: --checkpoint"),
        ("eval-runs --checkpoint x.pt --seed 3", "unrecognized arguments: --seed 3"),
        ("eval-runs --checkpoint x.pt --quiet", "unrecognized arguments: --quiet"),
        ("eval-runs", "give either --checkpoint FILE or --baseline mhd"),
        ("eval-runs --checkpoint x.pt --baseline mhd", "give either --checkpoint FILE or"),
        ("eval-runs --baseline knn", "argument --baseline: invalid choice: 'knn'"),
        ("tune --steps 3", "invalid choice: 'tune'"),
        ("", "the following arguments are required: COMMAND"),
    ],
)
def test_bad_evaluation_commands_are_one_line(capsys, command, phrase):
    status, _, err = metabook(capsys, command)
    assert_one_line_error(status, err, phrase)


def test_train_needs_a_method_and_a_folder_unless_it_resumes(root, capsys):
    status, _, err = metabook(capsys, f"train --ways 3 --data-root {root}")
    assert_one_line_error(
        status, err, "required: --method, --out (or --config RECIPE, or --resume FOLDER"
    )


def checkpoint_variants(tmp_path: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Unreadable checkpoints, each with a phrase its error must hold."""
    blob = good.read_bytes()
    tmp_path.mkdir()
    cases = {
        "folder": (tmp_path, "is a folder, not a checkpoint"),
        "missing": (tmp_path / "none.pt", "none.pt"),
        "empty": (tmp_path / "empty.pt", "empty.pt"),
        "truncated": (tmp_path / "truncated.pt", "truncated.pt"),
        "random": (tmp_path / "random.pt", "random.pt"),
    }
    cases["empty"][0].write_bytes(b"")
    cases["truncated"][0].write_bytes(blob[: len(blob) // 2])
    cases["random"][0].write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy())
    # the weights of a ProtoNet under a label that says MAML: the weights do not fit
    saved = torch.load(good, weights_only=True)
    saved["config"]["method"] = "maml"
    relabelled = tmp_path / "relabelled.pt"
    torch.save(saved, relabelled)
    cases["relabelled"] = (relabelled, "relabelled.pt")
    return cases


def test_unreadable_checkpoints_are_one_line_errors(root, capsys):
    run = root / "run"
    status, _, err = metabook(
        capsys, f"{TRAIN} --data-root {root} --steps 1 --val-episodes 0 --quiet --out {run}"
    )
    assert status == 0, err
    before = snapshot(root)
    for name, (path, phrase) in checkpoint_variants(root / "bad", run / "last.pt").items():
        for command in ("eval", "eval-runs"):
            status, _, err = metabook(
                capsys, f"{command} --checkpoint {path} --data-root {root} --device cpu"
            )
            assert_one_line_error(status, err, phrase)
            assert "weights_only=False" not in err, name
    after = snapshot(root)
    assert {k: v for k, v in after.items() if not k.startswith("bad/")} == before


def test_output_folders_are_never_silently_overwritten(root, capsys, monkeypatch):
    data = f"--data-root {root} --steps 2 --val-every 1 --val-fraction 0.25 --quiet"
    run = root / "run"
    status, _, err = metabook(capsys, f"{TRAIN} {data} --out {run}")
    assert status == 0, err
    before = snapshot(run)
    assert set(before) == {"last.pt", "best.pt"}

    status, _, err = metabook(capsys, f"{TRAIN} {data} --seed 1 --out {run}")
    assert_one_line_error(status, err, "already holds a run (last.pt, best.pt)")
    assert snapshot(run) == before

    a_file = root / "notes.txt"
    a_file.write_text("mine")
    status, _, err = metabook(capsys, f"{TRAIN} {data} --out {a_file}")
    assert_one_line_error(status, err, "is a file: give a folder for the checkpoints")
    status, _, err = metabook(capsys, f"{TRAIN} {data} --out {a_file / 'run'}")
    assert_one_line_error(status, err, f"cannot create {a_file / 'run'}: {a_file} is a file")
    assert a_file.read_text() == "mine"
    with monkeypatch.context() as patch:  # a read-only place (root can write anywhere)
        patch.setattr(training.os, "access", lambda path, mode: False)
        status, _, err = metabook(capsys, f"{TRAIN} {data} --out {root / 'new'}")
    assert_one_line_error(status, err, f"cannot write checkpoints into {root / 'new'}")
    assert "is read-only" in err and not (root / "new").exists()

    status, _, err = metabook(capsys, f"{TRAIN} {data} --seed 1 --overwrite --out {run}")
    assert status == 0, err
    assert set(snapshot(run)) == {"last.pt", "best.pt"} and snapshot(run) != before
    _, config = mb.load_run(run / "last.pt")
    assert config.train.seed == 1


def test_mistakes_found_in_the_data_write_nothing(root, capsys):
    data = f"--data-root {root} --steps 2 --quiet"
    out = root / "new" / "run"
    cases = {
        # 12 classes, a tenth held out: one validation class for 3-way episodes
        "--val-fraction 0.1": "the validation part has 1 classes, fewer than the 3 ways",
        "--dataset omniglot:background": "images_background.zip was not found",
        "--dataset mnist:train": "unknown dataset 'mnist:train'",
        "--device cuda:99": "device 'cuda:99' was asked for",
        "--train-ways 20": "20-way episodes need 20 classes but only 9 are available",
    }
    for options, phrase in cases.items():
        status, _, err = metabook(capsys, f"{TRAIN} {data} {options} --out {out}")
        assert_one_line_error(status, err, phrase)
        assert not (root / "new").exists(), options
    status, _, err = metabook(capsys, f"{TRAIN} --data-root {root / 'nowhere'} --out {out}")
    assert_one_line_error(status, err, "is not a folder (it should hold omniglot/)")


def test_a_diverging_run_stops_with_advice_and_leaves_nothing(root, capsys):
    out = root / "new" / "run"
    status, _, err = metabook(
        capsys, f"{TRAIN} --data-root {root} --steps 5 --lr 1e30 --quiet --out {out}"
    )
    assert_one_line_error(status, err, "the meta-training loss became nan", "--lr")
    assert "--grad-clip" in err
    assert not (root / "new").exists()


def test_the_runs_are_read_from_a_zip_with_a_top_folder(root, capsys):
    """A zip of the all_runs folder itself (every name starts with all_runs/) is read."""
    run = root / "run"
    status, _, err = metabook(
        capsys, f"{TRAIN} --data-root {root} --steps 1 --val-episodes 0 --quiet --out {run}"
    )
    assert status == 0, err
    plain = root / "omniglot" / "all_runs.zip"
    nested = root / "nested"
    nested.mkdir()
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(nested / "all_runs.zip", "w") as zf:
        for name in source.namelist():
            zf.writestr(f"all_runs/{name}", source.read(name))
    checkpoint = f"--checkpoint {run / 'last.pt'} --device cpu"
    results = []
    for folder in (root / "omniglot", nested):
        status, out, err = metabook(capsys, f"eval-runs {checkpoint} --runs {folder}")
        assert status == 0, err
        results.append(out)
    assert results[0] == results[1] and "over 20 runs" in results[0]


def test_resume_continues_the_run_exactly(root, capsys):
    data = f"--data-root {root} --val-every 1 --val-episodes 2 --val-fraction 0.25 --quiet"
    whole, part = root / "whole", root / "part"
    assert metabook(capsys, f"{TRAIN} {data} --steps 4 --out {whole}")[0] == 0
    assert metabook(capsys, f"{TRAIN} {data} --steps 2 --out {part}")[0] == 0
    status, out, err = metabook(
        capsys, f"train --resume {part} --steps 4 --data-root {root} --quiet"
    )
    assert status == 0, err
    assert f"checkpoints written to {part}/last.pt" in out
    a = torch.load(whole / "last.pt", weights_only=True)
    b = torch.load(part / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name
    assert a["history"]["losses"] == b["history"]["losses"]
    # the configuration is the original one, up to the new number of steps
    _, config = mb.load_run(part / "last.pt")
    assert config.train.steps == 4 and config.command.endswith(f"--out {part}")

    before = snapshot(part)
    cases = {
        f"train --resume {part} --steps 4": "already reached step 4 of 4: give --steps above 4",
        f"train --resume {part}": "already reached step 4 of 4",
        f"train --resume {part} --steps 6 --lr 0.1 --ways 5": "cannot change --lr, --ways",
        f"train --resume {part} --steps 6 --overwrite": "cannot change --overwrite",
        f"train --resume {root / 'nothing'}": "there is no run to resume",
    }
    for command, phrase in cases.items():
        status, _, err = metabook(capsys, command)
        assert_one_line_error(status, err, phrase)
    assert snapshot(part) == before


def test_ctrl_c_says_how_to_continue(root, capsys, monkeypatch):
    def interrupted(config, out, *args, **kwargs):
        raise mb.TrainingInterrupted(3, Path(out))

    monkeypatch.setattr(cli, "train_run", interrupted)
    status, _, err = metabook(capsys, f"{TRAIN} --data-root {root} --out {root / 'run'}")
    assert status == 130
    assert f"stopped at step 3; {root / 'run' / 'last.pt'} holds it" in err
    assert f"metabook train --resume {root / 'run'}" in err


def test_internal_errors_are_one_line_unless_debugging(root, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(cli, "train_run", broken)
    command = f"{TRAIN} --data-root {root} --out {root / 'run'}"
    status, _, err = metabook(capsys, command)
    assert_one_line_error(
        status, err, "internal error: RuntimeError: something inside broke", "--debug", code=1
    )
    with pytest.raises(RuntimeError, match="something inside broke"):
        main([*command.split(), "--debug"])


def test_version_and_help_show_what_a_user_needs(capsys):
    status, out, _ = metabook(capsys, "--version")
    assert status == 0 and out.strip() == f"metabook {mb.__version__}"
    status, out, _ = metabook(capsys, "train --help")
    assert status == 0
    text = " ".join(out.split())
    for shown in (
        "classes per episode (default: 5)",
        f"meta-training steps (default: {mb.TrainConfig.steps})",
        f"Adam's learning rate (default: {mb.TrainConfig.lr})",
        "--resume FOLDER",
        "omniglot:SPLIT[+SPLIT...]",
        "metabook train --resume runs/protonet --steps 4000",
    ):
        assert shown in text, shown
    status, out, _ = metabook(capsys, "methods")
    assert status == 0 and all(name in out for name in mb.LEARNERS)
