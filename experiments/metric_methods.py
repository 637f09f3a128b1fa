"""Chapter 4's comparison of the metric methods, repeated over training seeds.

The chapter "Siamese networks and prototype losses" trains each method once (seed 0) on
the book's teaching protocol: 20-way 1-shot episodes (5 queries) of ``background_small1``
with rotated characters as new classes, Adam at 1e-3, a Conv4 backbone, and tests on fixed
episodes of the alphabets of ``background_small2`` that training never saw (5 and 20 ways,
1 and 5 shots, classes across the test alphabets or within one). This script runs the same
code for several seeds (seed ``s`` draws the initial weights, the training episodes and
the distortions from ``s``; the test episodes are the chapter's, fixed), so the chapter can
rank the methods on the spread over seeds, not on one run::

    python experiments/metric_methods.py --seeds 0 1 2                # the CPU settings
    python experiments/metric_methods.py --steps 20 --episodes 10 --name tiny --seeds 0 1

Each (method, seed) is saved as it finishes under ``--runs-dir`` and skipped when the
script is run again, so a stopped run resumes. The result, written atomically to
``metabook/_results/NAME.json`` (``metabook.results.load_result(NAME)``), holds for each
method and test setting every seed's accuracy with its per-episode 95% interval, the mean over
seeds with Student's t interval of the per-seed means, and the training seconds; with the
command, device, versions and date. An existing result is replaced only with
``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import metabook as mb
from metabook.data import EpisodeSampler, Omniglot
from metabook.data.augment import AugmentedTasks, RandomAffine
from metabook.files import atomic_write
from metabook.models import Conv4
from metabook.results import write_result

RESULTS = Path(__file__).resolve().parent.parent / "metabook" / "_results"
QUERIES = 5
ALL = [(ways, shots, within) for within in (False, True) for ways in (5, 20) for shots in (1, 5)]


def column(setting: tuple[int, int, bool]) -> str:
    """The chapter's name of a test setting, e.g. ``20-way 1-shot within``."""
    ways, shots, within = setting
    return f"{ways}-way {shots}-shot {'within' if within else 'across'}"


def entries(
    train_set: Omniglot,
) -> dict[str, tuple[Callable[[], mb.FewShotLearner], Callable[[int], Any], list]]:
    """The chapter's learners: name -> (make the learner, its training episodes for a seed,
    the test settings the chapter reports for it)."""

    def episodes(seed: int, groups: Any = None) -> EpisodeSampler:
        return EpisodeSampler(train_set, 20, 1, QUERIES, seed=seed, groups=groups)

    def distorted(seed: int) -> AugmentedTasks:
        return AugmentedTasks(
            episodes(seed), RandomAffine(generator=torch.Generator().manual_seed(seed))
        )

    recipe = [(20, 1, False), (20, 1, True)]
    return {
        "Siamese (Hadsell contrastive)": (lambda: mb.SiameseNetwork(Conv4()), episodes, ALL),
        "Matching Networks": (lambda: mb.MatchingNetwork(Conv4()), episodes, ALL),
        "ProtoNet": (lambda: mb.ProtoNet(Conv4()), episodes, ALL),
        "ProtoNet, Euclidean (article E)": (
            lambda: mb.ProtoNet(Conv4(), distance="euclidean"),
            episodes,
            [(20, 1, False), (20, 5, False), (20, 1, True)],
        ),
        "ProtoNet + distortions": (lambda: mb.ProtoNet(Conv4()), distorted, recipe),
        "ProtoNet + within-alphabet training": (
            lambda: mb.ProtoNet(Conv4()),
            lambda seed: episodes(seed, groups=train_set.class_alphabet),
            recipe,
        ),
    }


def over_seeds(values: list[float]) -> dict[str, float]:
    mean, ci95 = mb.mean_confidence_interval(torch.tensor(values))
    return {"mean": mean, "ci95": ci95}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1000, help="meta-training steps")
    parser.add_argument("--episodes", type=int, default=300, help="test episodes a setting")
    parser.add_argument("--methods", nargs="+", help="a subset of the chapter's names")
    parser.add_argument("--name", default="metric-methods")
    parser.add_argument("--runs-dir", default="runs/experiments")
    parser.add_argument("--results-dir", default=str(RESULTS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    out = Path(args.results_dir) / f"{args.name}.json"
    if out.exists() and not args.overwrite:
        raise SystemExit(f"{out} exists: give --overwrite to replace it, or another --name")
    device = mb.pick_device(args.device)
    train_set = Omniglot("background_small1", rotations=True)
    test_set = Omniglot("background_small2")
    test_classes = test_set.classes_outside(train_set.alphabets)
    table = entries(train_set)
    chosen = args.methods or list(table)
    unknown = sorted(set(chosen) - set(table))
    if unknown:
        raise SystemExit(f"unknown method {unknown[0]!r}: choose from {', '.join(table)}")
    tests: dict[tuple[int, int, bool], list[mb.data.Episode]] = {}

    def test_episodes(setting: tuple[int, int, bool]) -> list[mb.data.Episode]:
        if setting not in tests:  # the chapter's fixed test episodes
            ways, shots, within = setting
            groups = test_set.class_alphabet if within else None
            sampler = EpisodeSampler(
                test_set, ways, shots, QUERIES, classes=test_classes, groups=groups
            )
            tests[setting] = sampler.episodes(args.episodes, seed=1)
        return tests[setting]

    cache = Path(args.runs_dir) / args.name
    cache.mkdir(parents=True, exist_ok=True)
    methods: dict[str, Any] = {}
    for name in chosen:
        make, training, settings = table[name]
        per_seed = []
        for seed in args.seeds:
            done = cache / f"{name.replace(' ', '_').replace('/', '-')}_seed{seed}.json"
            if done.exists():
                record = json.loads(done.read_text())
            else:
                mb.seed_everything(seed)
                learner = make()
                tasks = training(seed)
                mb.seed_everything(seed)
                start = time.perf_counter()
                mb.meta_train(
                    learner, tasks, steps=args.steps, lr=1e-3, device=device, progress=False
                )
                seconds = time.perf_counter() - start
                scores = {}
                for setting in settings:
                    result = mb.evaluate(learner, test_episodes(setting), device=device)
                    scores[column(setting)] = {"mean": result.mean, "ci95": result.ci95}
                record = {"seed": seed, "train_seconds": round(seconds, 1), "test": scores}
                atomic_write(done, lambda tmp, r=record: tmp.write_text(json.dumps(r)))
            per_seed.append(record)
            print(json.dumps({"method": name, **record}), flush=True)
        columns = {}
        for setting in settings:
            key = column(setting)
            values = [r["test"][key] for r in per_seed]
            columns[key] = {
                **(over_seeds([v["mean"] for v in values]) if len(values) > 1 else {}),
                "episode_ci95": sum(v["ci95"] for v in values) / len(values),
                "seeds": [v["mean"] for v in values],
            }
        methods[name] = {
            "test": columns,
            "train_seconds": [r["train_seconds"] for r in per_seed],
        }

    result = {
        "name": args.name,
        "command": "python experiments/metric_methods.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "protocol": {
            "train": "omniglot:background_small1, rotations as new classes, 20-way 1-shot, "
            f"{QUERIES} queries, Adam lr 1e-3, Conv4",
            "test": "omniglot:background_small2, alphabets outside training; fixed "
            "episodes (seed 1); the book's teaching protocol, not the official runs",
            "steps": args.steps,
            "episodes": args.episodes,
        },
        "seeds": args.seeds,
        "methods": methods,
    }
    write_result(out, result, device)
    print(f"written {out}")


if __name__ == "__main__":
    main()
