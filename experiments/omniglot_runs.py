"""Train a recipe with several seeds, score it on validation, and (once) on the official runs.

The protocol of the book's Omniglot experiments (chapter "Siamese networks and prototype
losses"): a recipe (a packaged name such as ``omniglot_small1`` or a ``.toml`` file) is
trained once per seed with ``metabook.runs.train_run``; each ``best.pt`` (chosen by the
recipe's own validation) is scored on ``--val-episodes`` 20-way 1-shot episodes drawn
inside the recipe's held-out validation alphabets (the figure every choice is made on);
``--test`` also scores the 20 official one-shot runs of Lake et al. (2015), the test set,
which is done once for a finished recipe and never used to choose: with all 20 queries of
a run at once (``test``: the backbone's batch statistics see them together) and with each
query alone beside the support set (``test_inductive``). ``--ensemble`` scores the
:class:`metabook.Ensemble` of the seeds' models the same way::

    python experiments/omniglot_runs.py omniglot_small1 --seeds 0 1 2            # choose
    python experiments/omniglot_runs.py omniglot_small1 --seeds 0 1 2 --test     # report
    python experiments/omniglot_runs.py omniglot_small1 --set data.image_size=56 --name small1-56px

Training is resumable: a seed whose ``last.pt`` reached its steps is not retrained, one
that stopped is resumed. The result is written atomically to ``metabook/_results/NAME.json``
(the package's recorded results, read back by ``metabook.results.load_result(NAME)``)
with the command, the configuration, the seeds, each seed's figures, the mean over seeds with
Student's t interval of the per-seed means, the device, the versions and the date; an
existing result is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

import metabook as mb
from metabook import recipes
from metabook.data.omniglot import OmniglotOneShotRuns
from metabook.results import write_result
from metabook.runs import (
    load_dataset,
    train_and_validation_classes,
    train_run,
    validation_episodes,
)

RESULTS = Path(__file__).resolve().parent.parent / "metabook" / "_results"


def _value(text: str) -> Any:
    """A ``--set`` value: TOML's syntax for numbers, booleans, strings and lists."""
    return recipes.tomllib.loads(f"v = {text}")["v"]


def configure(recipe: str, sets: list[str]) -> mb.RunConfig:
    """The recipe with ``--set section.field=value`` changes."""
    values = {}
    for item in sets:
        key, _, text = item.partition("=")
        values[key] = _value(text)
    return recipes.load(recipe, values)


def validation_accuracy(
    learner: mb.FewShotLearner, config: mb.RunConfig, episodes: int, device: torch.device
) -> mb.EvalResult:
    """Accuracy on ``episodes`` of the recipe's validation episodes (20-way 1-shot inside a
    held-out alphabet, the data as it is), seeded apart from those of training."""
    if not config.data.val_alphabets:
        raise SystemExit("the recipe names no validation alphabets (data.val_alphabets)")
    data = load_dataset(config.data.dataset, None, config.data.image_size)
    _, classes = train_and_validation_classes(config, data)
    fresh = config.replace(train=replace(config.train, val_episodes=episodes, seed=10_000))
    chosen, _ = validation_episodes(fresh, data, classes)
    assert chosen is not None  # episodes > 0
    return mb.evaluate(learner, chosen, device=device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="a packaged recipe name or a .toml file")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--name", help="name of the result (default: the recipe's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--val-episodes", type=int, default=600)
    parser.add_argument("--test", action="store_true", help="also score the official runs")
    parser.add_argument("--runs-dir", default="runs/experiments", help="where checkpoints go")
    parser.add_argument("--results-dir", default=str(RESULTS), help="where JSON goes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--ensemble", action="store_true", help="also score the ensemble of the seeds' models"
    )
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    name = args.name or Path(args.recipe).stem
    out = Path(args.results_dir) / f"{name}.json"
    if out.exists() and not args.overwrite:
        raise SystemExit(f"{out} exists: give --overwrite to replace it, or another --name")
    # a seed that is not trained again keeps the training time its result recorded
    minutes_before = (
        {s["seed"]: s["train_minutes"] for s in json.loads(out.read_text())["seeds"]}
        if out.exists()
        else {}
    )
    base = configure(args.recipe, args.set)
    device = mb.pick_device(args.device)
    runs = OmniglotOneShotRuns(image_size=base.data.image_size) if args.test else None

    def scores(learner: mb.FewShotLearner) -> dict[str, float]:
        """Validation (the same episodes for every seed) and, with --test, the runs in
        both regimes."""
        val = validation_accuracy(learner, base, args.val_episodes, device)
        out = {"validation": val.mean, "validation_ci95": val.ci95}
        if runs is not None:
            test = mb.evaluate(learner, runs, device=device)
            alone = mb.evaluate(learner, runs, device=device, transductive=False)
            out.update(test=test.mean, test_ci95_runs=test.ci95, test_inductive=alone.mean)
        return out

    seeds, members = [], []
    for seed in args.seeds:
        config = base.replace(train=replace(base.train, seed=seed))
        folder = Path(args.runs_dir) / name / f"seed{seed}"
        last = folder / "last.pt"
        done = last.exists() and mb.Checkpoint.read(last).step >= config.train.steps
        started = time.perf_counter()
        if not done:
            train_run(config, folder, device=device, progress=False, resume=last.exists())
        minutes = (time.perf_counter() - started) / 60
        learner, _ = mb.load_run(folder / "best.pt")
        learner.to(device)
        record: dict[str, Any] = {
            "seed": seed,
            "best_step": mb.Checkpoint.read(folder / "best.pt").step,
            "train_minutes": round(minutes, 2) if not done else minutes_before.get(seed),
            **scores(learner),
        }
        seeds.append(record)
        print(json.dumps(record), flush=True)
        members.append(learner)

    ensemble: dict[str, Any] | None = None
    if args.ensemble and len(members) > 1:
        ensemble = scores(mb.Ensemble(members))
        print(json.dumps({"ensemble": ensemble}), flush=True)

    def over_seeds(key: str) -> dict[str, float]:
        mean, ci95 = mb.mean_confidence_interval(torch.tensor([s[key] for s in seeds]))
        return {"mean": mean, "ci95": ci95}

    result = {
        "name": name,
        "command": "python experiments/omniglot_runs.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "config": base.replace(command="").to_dict(),
        "seeds": seeds,
        "validation": over_seeds("validation") if len(seeds) > 1 else None,
        "test": over_seeds("test") if runs is not None and len(seeds) > 1 else None,
        "test_inductive": over_seeds("test_inductive")
        if runs is not None and len(seeds) > 1
        else None,
        "ensemble": ensemble,
    }
    write_result(out, result, device)
    print(f"written {out}")


if __name__ == "__main__":
    main()
