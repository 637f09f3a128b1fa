"""A chapter's comparison of methods, repeated over training seeds.

Each chapter that ranks methods trains each one once (seed 0) in its execution, on the
book's teaching protocol: meta-training on ``background_small1`` with rotated characters
as new classes, Adam at 1e-3, a Conv4 backbone, and fixed test episodes of the alphabets
of ``background_small2`` that training never saw. This script runs the same code for
several seeds (seed ``s`` draws the initial weights, the training episodes and any
distortions from ``s``; the test episodes are the chapter's, fixed), so that the chapter
ranks the methods on the spread over seeds, not on one run. One table per chapter:

- ``metric``: chapter 4 (Siamese, Matching, ProtoNet and its variants; 20-way 1-shot
  training, test at 5 and 20 ways, 1 and 5 shots, across and within alphabets);
- ``optimisation``: chapter 3 (MAML, first-order MAML, Meta-SGD, Reptile and the transfer
  baseline on the same episodes; 5-way 1-shot, test after 1 and 10 gradient steps);
- ``applications``: chapter 6's Omniglot table (the metric learners and MAML, 5-way 1-shot
  training, test at 5 and 20 ways);
- ``transfer``: chapter 3's transfer baseline with three heads (nearest centroid, a
  linear probe, fine-tuning; the last two as chosen on validation by
  ``experiments/transfer_validation.py``);
- ``model-based``: chapter 5 (ProtoNet, MAML, the Meta-LSTM, the MANN and the in-context
  Transformer; 5-way 1-shot, the queries together and each query alone).

::

    python experiments/methods.py metric --seeds 0 1 2          # the chapters' CPU settings
    python experiments/methods.py optimisation --seeds 0 1 2
    python experiments/methods.py optimisation --steps 5 --episodes 4 --name tiny --seeds 0 1

Each (method, seed) is saved as it finishes under ``--runs-dir`` and skipped when the
script is run again, so a stopped run resumes. The result, written atomically to
``metabook/_results/NAME.json`` (``metabook.results.load_result(NAME)``; NAME defaults to
``TABLE-methods``), holds for each method its training steps and seconds, and for each
column every seed's accuracy, the mean over seeds with Student's t interval of the per-seed
means and the per-episode 95% interval (``metabook.over_seeds``); with the command, device,
versions and date. An existing result is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

import torch

import metabook as mb
from metabook.data import Episode, EpisodeSampler, Omniglot
from metabook.data.augment import AugmentedTasks, RandomAffine
from metabook.files import atomic_write
from metabook.models import Conv4
from metabook.results import write_result

RESULTS = Path(__file__).resolve().parent.parent / "metabook" / "_results"
QUERIES = 5


class Entry(NamedTuple):
    """One row of a table: how to build the learner, its training episodes for a seed, and
    the columns it is scored in (name -> score a trained learner)."""

    make: Callable[[], mb.FewShotLearner]
    tasks: Callable[[int], Any]
    columns: dict[str, Callable[[mb.FewShotLearner], mb.EvalResult]]
    step_factor: int = 1  # this row trains for step_factor times the table's steps


class Table(NamedTuple):
    """A chapter's comparison: its rows, the meta-batch, and the protocol in words."""

    entries: dict[str, Entry]
    meta_batch: int
    protocol: dict[str, Any]


def held_out_alphabet(
    train_set: Omniglot, alphabet: str, episodes: int
) -> tuple[list[int], list[Episode]]:
    """The training classes of ``train_set`` without ``alphabet``, and ``episodes`` 5-way
    1-shot validation episodes (seed 3) of that alphabet's characters as drawn (unrotated,
    as at test time): the validation of ``transfer_validation.py`` and ``mann_curve.py``."""
    if alphabet not in train_set.alphabets:
        raise SystemExit(
            f"unknown alphabet {alphabet!r}: choose one of " + ", ".join(train_set.alphabets)
        )
    held_out = train_set.alphabets.index(alphabet)
    train_classes = [
        c for c in range(len(train_set.classes)) if train_set.class_alphabet[c] != held_out
    ]
    val_set = Omniglot(train_set.split)
    val_classes = [c for c in range(len(val_set.classes)) if val_set.class_alphabet[c] == held_out]
    sampler = EpisodeSampler(val_set, 5, 1, QUERIES, classes=val_classes)
    return train_classes, sampler.episodes(episodes, seed=3)


def chapter5_mann() -> mb.MANN:
    """Chapter 5's MANN: Conv4 with per-example normalisation, a 128-unit LSTM controller,
    32 memory slots of width 40."""
    return mb.MANN(
        Conv4(norm="layer"), embedding_dim=64, max_ways=5, controller_size=128, slots=32, width=40
    )


class TestEpisodes:
    """The chapter's fixed test episodes of the held-out alphabets (drawn once a setting)."""

    def __init__(self, train_set: Omniglot, episodes: int, seed: int) -> None:
        self.test_set = Omniglot("background_small2")
        self.classes = self.test_set.classes_outside(train_set.alphabets)
        self.count, self.seed = episodes, seed
        self._drawn: dict[tuple[int, int, bool], list[Episode]] = {}

    def __call__(self, ways: int, shots: int, within: bool = False) -> list[Episode]:
        key = (ways, shots, within)
        if key not in self._drawn:
            groups = self.test_set.class_alphabet if within else None
            sampler = EpisodeSampler(
                self.test_set, ways, shots, QUERIES, classes=self.classes, groups=groups
            )
            self._drawn[key] = sampler.episodes(self.count, seed=self.seed)
        return self._drawn[key]


def metric_table(train_set: Omniglot, episodes: int, results: Path) -> Table:
    """Chapter 4, "Siamese networks and prototype losses"."""
    test = TestEpisodes(train_set, episodes, seed=1)

    def training(seed: int, groups: Any = None) -> EpisodeSampler:
        return EpisodeSampler(train_set, 20, 1, QUERIES, seed=seed, groups=groups)

    def distorted(seed: int) -> AugmentedTasks:
        return AugmentedTasks(
            training(seed), RandomAffine(generator=torch.Generator().manual_seed(seed))
        )

    def columns(*settings: tuple[int, int, bool]) -> dict[str, Callable[..., mb.EvalResult]]:
        return {
            f"{ways}-way {shots}-shot {'within' if within else 'across'}": (
                lambda learner, s=(ways, shots, within): mb.evaluate(learner, test(*s))
            )
            for ways, shots, within in settings
        }

    every = columns(*[(w, s, within) for within in (False, True) for w in (5, 20) for s in (1, 5)])
    recipe = columns((20, 1, False), (20, 1, True))
    return Table(
        {
            "Siamese (Hadsell contrastive)": Entry(
                lambda: mb.SiameseNetwork(Conv4()), training, every
            ),
            "Matching Networks": Entry(lambda: mb.MatchingNetwork(Conv4()), training, every),
            "ProtoNet": Entry(lambda: mb.ProtoNet(Conv4()), training, every),
            "ProtoNet, Euclidean (article E)": Entry(
                lambda: mb.ProtoNet(Conv4(), distance="euclidean"),
                training,
                columns((20, 1, False), (20, 5, False), (20, 1, True)),
            ),
            "ProtoNet + distortions": Entry(lambda: mb.ProtoNet(Conv4()), distorted, recipe),
            "ProtoNet + within-alphabet training": Entry(
                lambda: mb.ProtoNet(Conv4()),
                lambda seed: training(seed, groups=train_set.class_alphabet),
                recipe,
            ),
        },
        meta_batch=1,
        protocol={
            "train": "omniglot:background_small1, rotations as new classes, 20-way 1-shot, "
            f"{QUERIES} queries, Adam lr 1e-3, Conv4",
            "test": "omniglot:background_small2, alphabets outside training; fixed "
            "episodes (seed 1); the book's teaching protocol, not the official runs",
        },
    )


#: Test-time gradient steps of the optimisation table's columns.
TEST_STEPS = (1, 10)


def optimisation_table(train_set: Omniglot, episodes: int, results: Path) -> Table:
    """Chapter 3, "MAML and Reptile": the chapter's MAML (Conv4 with a 5-way head, one
    inner step of 0.4) and its variants, and the transfer baseline fed the same episodes."""
    test = TestEpisodes(train_set, episodes, seed=1)

    def training(seed: int) -> EpisodeSampler:
        return EpisodeSampler(train_set, 5, 1, QUERIES, seed=seed)

    def after(steps: int) -> Callable[[mb.FewShotLearner], mb.EvalResult]:
        def score(learner: mb.FewShotLearner) -> mb.EvalResult:
            learner.test_steps = steps  # type: ignore[assignment]
            return mb.evaluate(learner, test(5, 1))

        return score

    adapted = {f"after {s} step{'s' * (s > 1)}": after(s) for s in TEST_STEPS}

    def head() -> Conv4:
        return Conv4(out_features=5)

    return Table(
        {
            "MAML": Entry(lambda: mb.MAML(head(), inner_lr=0.4, inner_steps=1), training, adapted),
            "first-order MAML": Entry(
                lambda: mb.MAML(head(), inner_lr=0.4, inner_steps=1, first_order=True),
                training,
                adapted,
            ),
            "Meta-SGD": Entry(
                lambda: mb.MetaSGD(head(), inner_lr=0.4, inner_steps=1), training, adapted
            ),
            "Reptile": Entry(
                lambda: mb.Reptile(head(), inner_lr=0.1, inner_steps=5), training, adapted
            ),
            "transfer (nearest centroid)": Entry(
                lambda: mb.TransferBaseline(Conv4(), num_classes=len(train_set.classes)),
                training,
                {"no gradient step": lambda learner: mb.evaluate(learner, test(5, 1))},
            ),
        },
        meta_batch=16,
        protocol={
            "train": "omniglot:background_small1, rotations as new classes, 5-way 1-shot, "
            f"{QUERIES} queries, meta-batch 16, Adam lr 1e-3, Conv4 (5-way head); MAML, "
            "first-order MAML and Meta-SGD: one inner step of 0.4; Reptile: 5 SGD steps of "
            "0.1; transfer: a classifier over every training class, fed the same episodes",
            "test": "omniglot:background_small2, alphabets outside training; 5-way 1-shot, "
            f"{QUERIES} queries, fixed episodes (seed 1), after "
            f"{' and '.join(map(str, TEST_STEPS))} gradient steps; "
            "the book's teaching protocol, not the official runs",
        },
    )


def transfer_table(train_set: Omniglot, episodes: int, results: Path) -> Table:
    """Chapter 3's transfer baselines: the classifier of the ``optimisation`` table's
    transfer row, trained the same way, scored with three heads (nearest centroid, a
    linear probe, fine-tuning), the probe's and fine-tuning's settings read from their
    choice on validation characters (``experiments/transfer_validation.py``)."""
    validation = results / "transfer-validation.json"
    if not validation.is_file():
        raise SystemExit(
            f"the transfer table needs the settings chosen on validation ({validation}): "
            "run python experiments/transfer_validation.py first"
        )
    chosen = json.loads(validation.read_text())["chosen"]
    test = TestEpisodes(train_set, episodes, seed=1)

    def training(seed: int) -> EpisodeSampler:
        return EpisodeSampler(train_set, 5, 1, QUERIES, seed=seed)

    def head(name: str, **hyper: Any) -> Callable[[mb.FewShotLearner], mb.EvalResult]:
        def score(learner: mb.FewShotLearner) -> mb.EvalResult:
            assert isinstance(learner, mb.TransferBaseline)
            return mb.evaluate(learner.use_head(name, **hyper), test(5, 1))

        return score

    return Table(
        {
            "transfer": Entry(
                lambda: mb.TransferBaseline(Conv4(), num_classes=len(train_set.classes)),
                training,
                {
                    "nearest centroid": head("centroid"),
                    "linear probe": head("probe", **chosen["probe"]),
                    "fine-tuned": head("finetune", **chosen["finetune"]),
                },
            ),
        },
        meta_batch=16,
        protocol={
            "train": "omniglot:background_small1, rotations as new classes, 5-way 1-shot, "
            f"{QUERIES} queries, meta-batch 16, Adam lr 1e-3, Conv4: a classifier over "
            "every training class, fed the episodes of the optimisation table",
            "test": "omniglot:background_small2, alphabets outside training; 5-way 1-shot, "
            f"{QUERIES} queries, fixed episodes (seed 1); probe {chosen['probe']} and "
            f"fine-tuning {chosen['finetune']} as chosen on validation "
            "(transfer-validation); the book's teaching protocol, not the official runs",
        },
    )


def applications_table(train_set: Omniglot, episodes: int, results: Path) -> Table:
    """Chapter 6, "Applications": the learners of the earlier chapters on 5-way 1-shot
    training episodes (4 a step), tested at 5 and 20 ways; MAML's head has one output per
    way, so it is trained once for each width."""
    test = TestEpisodes(train_set, episodes, seed=1)

    def training(ways: int) -> Callable[[int], EpisodeSampler]:
        return lambda seed: EpisodeSampler(train_set, ways, 1, QUERIES, seed=seed)

    def at(*widths: int) -> dict[str, Callable[[mb.FewShotLearner], mb.EvalResult]]:
        return {
            f"{ways}-way 1-shot": lambda learner, w=ways: mb.evaluate(learner, test(w, 1))
            for ways in widths
        }

    def maml(ways: int) -> Entry:
        return Entry(
            lambda: mb.MAML(Conv4(out_features=ways), inner_lr=0.4, inner_steps=1, test_steps=3),
            training(ways),
            at(ways),
        )

    return Table(
        {
            "Siamese (contrastive)": Entry(
                lambda: mb.SiameseNetwork(Conv4()), training(5), at(5, 20)
            ),
            "Matching Network": Entry(lambda: mb.MatchingNetwork(Conv4()), training(5), at(5, 20)),
            "ProtoNet": Entry(lambda: mb.ProtoNet(Conv4()), training(5), at(5, 20)),
            "MAML, 5-way head": maml(5),
            "MAML, 20-way head": maml(20),
        },
        meta_batch=4,
        protocol={
            "train": "omniglot:background_small1, rotations as new classes, 1-shot, "
            f"{QUERIES} queries, 4 episodes a step, Adam lr 1e-3, Conv4; metric learners on "
            "5-way episodes; MAML (one inner step of 0.4, three at test) on episodes of its "
            "head's width",
            "test": "omniglot:background_small2, alphabets outside training; 5- and 20-way "
            f"1-shot, {QUERIES} queries, fixed episodes (seed 1); the book's teaching "
            "protocol, not the official runs",
        },
    )


def model_based_table(train_set: Omniglot, episodes: int, results: Path) -> Table:
    """Chapter 5, "Model-based meta-learning": the Meta-LSTM, the MANN and the in-context
    Transformer beside ProtoNet and MAML, on 5-way 1-shot episodes (4 a step; the MANN
    trains four times as long), scored with the queries together and each query alone."""
    test = TestEpisodes(train_set, episodes, seed=1)

    def training(seed: int) -> EpisodeSampler:
        return EpisodeSampler(train_set, 5, 1, QUERIES, seed=seed)

    def scored(learner: mb.FewShotLearner, transductive: bool) -> mb.EvalResult:
        mb.seed_everything(0)  # the MANN presents the support set in a random order
        return mb.evaluate(learner, test(5, 1), transductive=transductive)

    regimes = {
        "queries together": lambda learner: scored(learner, True),
        "each query alone": lambda learner: scored(learner, False),
    }
    return Table(
        {
            "ProtoNet": Entry(lambda: mb.ProtoNet(Conv4()), training, regimes),
            "MAML": Entry(
                lambda: mb.MAML(Conv4(out_features=5), inner_lr=0.4, test_steps=3),
                training,
                regimes,
            ),
            "Meta-LSTM": Entry(
                lambda: mb.MetaLSTM(Conv4(out_features=5, channels=32), inner_steps=5),
                training,
                regimes,
            ),
            "MANN": Entry(
                chapter5_mann,
                training,
                regimes,
                step_factor=4,
            ),
            "In-context Transformer": Entry(
                lambda: mb.InContextTransformer(Conv4(norm="layer"), embedding_dim=64, max_ways=5),
                training,
                regimes,
            ),
        },
        meta_batch=4,
        protocol={
            "train": "omniglot:background_small1, rotations as new classes, 5-way 1-shot, "
            f"{QUERIES} queries, 4 episodes a step (the MANN 4 times the steps), Adam lr "
            "1e-3; ProtoNet and MAML (one inner step of 0.4, three at test) on Conv4, the "
            "Meta-LSTM (5 steps) on a 32-channel Conv4, the MANN and the Transformer on a "
            "Conv4 with per-example (layer) normalisation",
            "test": "omniglot:background_small2, alphabets outside training; 5-way 1-shot, "
            f"{QUERIES} queries, fixed episodes (seed 1), the queries together "
            "(transductive) and each query alone (inductive); the book's teaching "
            "protocol, not the official runs",
        },
    )


TABLES = {
    "metric": (metric_table, 1000),
    "optimisation": (optimisation_table, 300),
    "applications": (applications_table, 300),
    "transfer": (transfer_table, 300),
    "model-based": (model_based_table, 500),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=sorted(TABLES), help="the chapter's comparison")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help="meta-training steps (the chapter's)")
    parser.add_argument("--episodes", type=int, default=300, help="test episodes a column")
    parser.add_argument("--methods", nargs="+", help="a subset of the table's rows")
    parser.add_argument("--name", help="the result's name (default: TABLE-methods)")
    parser.add_argument("--runs-dir", default="runs/experiments")
    parser.add_argument("--results-dir", default=str(RESULTS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    build, default_steps = TABLES[args.table]
    steps = args.steps or default_steps
    name = args.name or f"{args.table}-methods"

    out = Path(args.results_dir) / f"{name}.json"
    if out.exists() and not args.overwrite:
        raise SystemExit(f"{out} exists: give --overwrite to replace it, or another --name")
    device = mb.pick_device(args.device)
    train_set = Omniglot("background_small1", rotations=True)
    table = build(train_set, args.episodes, Path(args.results_dir))
    chosen = args.methods or list(table.entries)
    unknown = sorted(set(chosen) - set(table.entries))
    if unknown:
        raise SystemExit(f"unknown method {unknown[0]!r}: choose from {', '.join(table.entries)}")

    cache = Path(args.runs_dir) / name
    cache.mkdir(parents=True, exist_ok=True)
    methods: dict[str, Any] = {}
    for method in chosen:
        entry = table.entries[method]
        per_seed = []
        for seed in args.seeds:
            done = cache / f"{method.replace(' ', '_').replace('/', '-')}_seed{seed}.json"
            if done.exists():
                record = json.loads(done.read_text())
            else:
                mb.seed_everything(seed)
                learner = entry.make()
                tasks = entry.tasks(seed)
                mb.seed_everything(seed)
                start = time.perf_counter()
                mb.meta_train(
                    learner,
                    tasks,
                    steps=steps * entry.step_factor,
                    meta_batch=table.meta_batch,
                    lr=1e-3,
                    device=device,
                    progress=False,
                )
                seconds = time.perf_counter() - start
                scores = {}
                for column, score in entry.columns.items():
                    result = score(learner.to(device))
                    scores[column] = {"mean": result.mean, "ci95": result.ci95}
                record = {"seed": seed, "train_seconds": round(seconds, 1), "test": scores}
                atomic_write(done, lambda tmp, r=record: tmp.write_text(json.dumps(r)))
            per_seed.append(record)
            print(json.dumps({"method": method, **record}), flush=True)
        columns = {
            column: asdict(mb.over_seeds([r["test"][column] for r in per_seed]))
            for column in entry.columns
        }
        methods[method] = {
            "test": columns,
            "steps": steps * entry.step_factor,
            "train_seconds": [r["train_seconds"] for r in per_seed],
        }

    result = {
        "name": name,
        "command": "python experiments/methods.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "protocol": {
            **table.protocol,
            "steps": steps,
            "meta_batch": table.meta_batch,
            "episodes": args.episodes,
        },
        "seeds": args.seeds,
        "methods": methods,
    }
    write_result(out, result, device)
    print(f"written {out}")


if __name__ == "__main__":
    main()
