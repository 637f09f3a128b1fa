"""experiments/omniglot_runs.py on a tiny recipe: what CI can afford of the real protocol."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

import metabook as mb
from tests.conftest import write_omniglot_split, write_one_shot_runs


def load_script(name: str):
    """A script of experiments/ as a module."""
    path = Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def minimal_splits(tmp_path, monkeypatch, train_alphabets) -> None:
    """Fixture minimal splits under METABOOK_DATA: background_small1 with
    ``train_alphabets`` (6 characters each) and background_small2 sharing Atlantean with it
    and adding Oriya, the alphabet that training never sees."""
    root = tmp_path / "data"
    write_omniglot_split(root / "omniglot", "background_small1",
                         dict.fromkeys(train_alphabets, 6), drawers=6,
                         monkeypatch=monkeypatch)  # fmt: skip
    write_omniglot_split(root / "omniglot", "background_small2", {"Atlantean": 6, "Oriya": 7},
                         drawers=6, monkeypatch=monkeypatch)  # fmt: skip
    monkeypatch.setenv("METABOOK_DATA", str(root))


@pytest.fixture
def experiments():
    return load_script("omniglot_runs")


def test_seeds_validation_and_the_official_runs_are_recorded(tmp_path, monkeypatch, experiments):
    root = tmp_path / "data"
    alphabets = {"Atlantean": 4, "Kannada": 4, "Oriya": 4}
    write_omniglot_split(root / "omniglot", "evaluation", alphabets, drawers=4,
                         monkeypatch=monkeypatch)  # fmt: skip
    write_one_shot_runs(root / "omniglot")
    monkeypatch.setenv("METABOOK_DATA", str(root))
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        'method = "protonet"\nways = 3\nqueries = 2\n[data]\ndataset = "omniglot:evaluation"\n'
        'val_alphabets = ["Kannada"]\n[train]\nsteps = 2\nval_every = 1\nval_episodes = 2\n'
    )
    results = tmp_path / "results"
    argv = [str(recipe), "--seeds", "0", "1", "--val-episodes", "4", "--test", "--ensemble",
            "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(results)]  # fmt: skip
    experiments.main(argv)
    result = json.loads((results / "tiny.json").read_text())
    assert [s["seed"] for s in result["seeds"]] == [0, 1]
    assert result["config"]["data"]["val_alphabets"] == ["Kannada"]
    for seed in result["seeds"]:
        assert seed["train_minutes"] is not None and seed["best_step"] in (1, 2)
        # the fixture's test items are copies of their class images: every run is right
        assert seed["test"] == 1.0
    values = torch.tensor([s["validation"] for s in result["seeds"]])
    mean, ci95 = mb.mean_confidence_interval(values)
    assert result["validation"] == {"mean": mean, "ci95": ci95}
    assert result["test"] == {"mean": 1.0, "ci95": 0.0} == result["test_inductive"]
    assert result["ensemble"]["test"] == 1.0 == result["ensemble"]["test_inductive"]
    assert 0 <= result["ensemble"]["validation"] <= 1
    assert result["command"].startswith("python experiments/omniglot_runs.py ")
    assert {"date", "device", "versions"} <= set(result)

    # an existing result is never silently replaced
    before = (results / "tiny.json").read_bytes()
    with pytest.raises(SystemExit, match="exists: give --overwrite"):
        experiments.main(argv)
    assert (results / "tiny.json").read_bytes() == before
    # with --overwrite, finished seeds are not trained again, and score the same
    checkpoints = sorted((tmp_path / "runs").rglob("last.pt"))
    written = [p.stat().st_mtime_ns for p in checkpoints]
    experiments.main([*argv, "--overwrite"])
    assert len(checkpoints) == 2 and [p.stat().st_mtime_ns for p in checkpoints] == written
    again = json.loads((results / "tiny.json").read_text())
    # the training time recorded before is kept
    assert [s["train_minutes"] for s in again["seeds"]] == [
        s["train_minutes"] for s in result["seeds"]
    ]
    assert again["validation"] == result["validation"]


@pytest.mark.parametrize("name", mb.results.result_names())
def test_each_recorded_result_agrees_with_its_own_seeds(name):
    """The aggregates a chapter binds are the t intervals of the recorded per-seed values,
    and every recorded result names its command, device, versions and date."""
    result = mb.results.load_result(name)
    assert result["name"] == name
    assert result["command"].startswith("python experiments/")
    assert {"date", "device", "versions"} <= set(result)
    if "methods" in result:  # a comparison of experiments/methods.py
        assert result["seeds"] == sorted(set(result["seeds"])) and len(result["seeds"]) >= 3
        for entry in result["methods"].values():
            assert len(entry["train_seconds"]) == len(result["seeds"])
            for column in entry["test"].values():
                assert len(column["seeds"]) == len(result["seeds"])
                mean, ci95 = mb.mean_confidence_interval(torch.tensor(column["seeds"]))
                assert column["mean"] == pytest.approx(mean, abs=1e-6)
                assert column["ci95"] == pytest.approx(ci95, abs=1e-6)
                assert 0 < column["episode_ci95"] < 0.1
        return
    if "curve" in result:  # a validation curve: best.pt is its maximum
        curve = result["curve"]
        assert best_of_curve(curve) == result["best_step"]
        assert curve["episodes"] == [result["protocol"]["meta_batch"] * s for s in curve["steps"]]
        assert curve["steps"][-1] == result["protocol"]["steps"]
        return
    if "grid" in result:  # a choice on validation: the best mean of each head's grid
        for head, setting in result["chosen"].items():
            best = max(result["grid"][head], key=lambda r: r["mean"])
            assert setting == {k: best[k] for k in setting}
        return
    assert "config" in result
    assert [s["seed"] for s in result["seeds"]] == sorted({s["seed"] for s in result["seeds"]})
    for key in ("validation", "test", "test_inductive"):
        if result.get(key) is None:
            continue
        mean, ci95 = mb.mean_confidence_interval(torch.tensor([s[key] for s in result["seeds"]]))
        assert result[key]["mean"] == pytest.approx(mean, abs=1e-6)
        assert result[key]["ci95"] == pytest.approx(ci95, abs=1e-6)
        # 20 runs of 20 queries: the accuracy is a whole number of queries out of 400
        if key != "validation":
            for seed in [*result["seeds"], result.get("ensemble") or {key: 0.0}]:
                assert seed[key] * 400 == pytest.approx(round(seed[key] * 400), abs=1e-3)


def best_of_curve(curve) -> int:
    """The step of a curve's highest validation mean (the first, on a tie)."""
    return curve["steps"][max(range(len(curve["steps"])), key=curve["val_mean"].__getitem__)]


def test_the_mann_curve_resumes_and_scores_its_best_checkpoint_once(tmp_path, monkeypatch):
    """experiments/mann_curve.py: a run stopped after 2 steps and resumed to 4 gives the
    curve of the uninterrupted run; the test figure is best.pt's, a count out of 75."""
    minimal_splits(tmp_path, monkeypatch, ["Atlantean", "Korean"])
    script = load_script("mann_curve")
    results, runs = tmp_path / "results", tmp_path / "runs"
    common = ["--val-every", "1", "--episodes", "3", "--runs-dir", str(runs),
              "--results-dir", str(results)]  # fmt: skip
    script.main(["--steps", "4", "--name", "whole", *common])
    script.main(["--steps", "2", "--name", "parts", *common])
    with pytest.raises(SystemExit, match="parts.json exists: give --overwrite"):
        script.main(["--steps", "4", "--name", "parts", *common])
    script.main(["--steps", "4", "--name", "parts", "--overwrite", *common])
    whole = json.loads((results / "whole.json").read_text())
    parts = json.loads((results / "parts.json").read_text())
    assert parts["resumed"] and not whole["resumed"]
    assert whole["curve"]["steps"] == [1, 2, 3, 4]
    assert whole["curve"]["episodes"] == [4, 8, 12, 16]
    assert parts["curve"] == whole["curve"]
    assert whole["best_step"] == best_of_curve(whole["curve"])
    assert parts["test"] == whole["test"]
    assert whole["test"]["mean"] * 75 == pytest.approx(round(whole["test"]["mean"] * 75), abs=1e-4)
    with pytest.raises(SystemExit, match="unknown alphabet 'Klingon': choose one of Atlantean"):
        script.main(["--val-alphabet", "Klingon", "--name", "k", *common])


def test_an_unknown_result_lists_the_recorded_ones():
    with pytest.raises(ValueError, match="no recorded result named 'nope'.*small1-base"):
        mb.results.load_result("nope")


def test_a_chapters_comparison_is_recorded_over_seeds_and_resumes(tmp_path, monkeypatch):
    """experiments/methods.py on fixture splits: every seed's figures, the t interval over
    seeds, a finished (method, seed) skipped when the script runs again, and no silent
    overwrite."""
    minimal_splits(tmp_path, monkeypatch, ["Atlantean", "Kannada"])
    script = load_script("methods")
    results, runs = tmp_path / "results", tmp_path / "runs"
    argv = ["optimisation", "--steps", "2", "--episodes", "3", "--seeds", "0", "1",
            "--methods", "MAML", "transfer (nearest centroid)", "--runs-dir", str(runs),
            "--results-dir", str(results)]  # fmt: skip
    script.main(argv)
    out = results / "optimisation-methods.json"
    result = json.loads(out.read_text())
    assert result["command"] == "python experiments/methods.py " + " ".join(argv)
    assert result["seeds"] == [0, 1] and result["protocol"]["meta_batch"] == 16
    assert list(result["methods"]) == ["MAML", "transfer (nearest centroid)"]
    maml = result["methods"]["MAML"]
    assert list(maml["test"]) == ["after 1 step", "after 10 steps"]
    assert maml["steps"] == 2  # the training steps of this method
    for column in maml["test"].values():
        seeds = torch.tensor(column["seeds"], dtype=torch.float64)
        mean, ci95 = mb.mean_confidence_interval(seeds)
        assert (column["mean"], column["ci95"]) == (mean, ci95)
        # 3 episodes of 5 ways x 5 queries: each seed's accuracy is a count out of 75
        for value in column["seeds"]:
            assert value * 75 == pytest.approx(round(value * 75), abs=1e-4)
    # the test episodes come from the alphabet that training never saw
    test = script.TestEpisodes(mb.data.Omniglot("background_small1"), 3, seed=1)
    assert {int(test.test_set.class_alphabet[c]) for c in test.classes} == {
        test.test_set.alphabets.index("Oriya")
    }

    # a second run reads the finished seeds instead of training them again
    finished = sorted(runs.rglob("*.json"))
    assert len(finished) == 4
    stamps = [p.stat().st_mtime_ns for p in finished]
    with pytest.raises(SystemExit, match="exists: give --overwrite"):
        script.main(argv)
    script.main([*argv, "--overwrite"])
    assert [p.stat().st_mtime_ns for p in finished] == stamps
    assert json.loads(out.read_text())["methods"] == result["methods"]
    with pytest.raises(SystemExit, match="unknown method 'MAMl': choose from MAML, "):
        script.main(["optimisation", "--methods", "MAMl", "--results-dir", str(tmp_path)])


def test_transfer_settings_are_chosen_on_validation_then_scored_once(tmp_path, monkeypatch):
    """transfer_validation.py scores its whole grid on an alphabet held out of training and
    chooses the best mean; methods.py transfer refuses to run without that choice and then
    scores the test alphabets with it."""
    minimal_splits(tmp_path, monkeypatch, ["Atlantean", "Korean"])
    results = tmp_path / "results"
    methods = load_script("methods")
    argv = ["transfer", "--steps", "2", "--episodes", "3", "--seeds", "0", "1",
            "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(results)]  # fmt: skip
    with pytest.raises(SystemExit, match="run python experiments/transfer_validation.py"):
        methods.main(argv)
    validation = load_script("transfer_validation")
    with pytest.raises(SystemExit, match="unknown alphabet 'Klingon': choose one of Atlantean"):
        validation.main(["--val-alphabet", "Klingon", "--results-dir", str(results)])
    validation.main(["--steps", "2", "--episodes", "3", "--results-dir", str(results)])
    chosen = json.loads((results / "transfer-validation.json").read_text())
    grid = chosen["grid"]
    assert [len(grid[h]) for h in ("centroid", "probe", "finetune")] == [1, 3, 9]
    for head in ("probe", "finetune"):
        best = max(grid[head], key=lambda r: r["mean"])
        assert chosen["chosen"][head] == {k: best[k] for k in chosen["chosen"][head]}
    methods.main(argv)
    result = json.loads((results / "transfer-methods.json").read_text())
    assert list(result["methods"]["transfer"]["test"]) == [
        "nearest centroid", "linear probe", "fine-tuned"
    ]  # fmt: skip
    assert str(chosen["chosen"]["finetune"]) in result["protocol"]["test"]


def test_comparison_table_shows_the_interval_over_seeds_and_one_seeds_interval():
    result = {
        "name": "toy",
        "methods": {
            "A": {"test": {"x": {"mean": 0.923, "ci95": 0.024, "episode_ci95": 0.0104}}},
            "B": {
                "test": {
                    "x": {"mean": 0.5, "ci95": 0.0, "episode_ci95": 0.02},
                    "y": {"mean": 0.12345, "ci95": 0.01, "episode_ci95": 0.03},
                }
            },
        },
    }
    assert mb.results.comparison_table(result) == (
        "| method | x | y |\n|---|---|---|\n"
        "| A | 92.3 ± 2.4 (1.0) | - |\n"
        "| B | 50.0 ± 0.0 (2.0) | 12.3 ± 1.0 (3.0) |"
    )
    assert mb.results.comparison_table(result, ["B"], ["y"]) == (
        "| method | y |\n|---|---|\n| B | 12.3 ± 1.0 (3.0) |"
    )
    with pytest.raises(ValueError, match="toy has no method 'C': it has A, B"):
        mb.results.comparison_table(result, ["C"])
