"""The transfer baseline's test-time settings, chosen on validation characters.

Chapter 3 compares MAML with a classifier trained on every training class and solving an
episode on its features. The nearest-centroid head has no setting to choose; the linear
probe (its step size) and fine-tuning (step size and number of steps) do, and Chen et al.
(2019) tune them. This script chooses them as the book chooses everything: on characters of
an alphabet of the training split held out of training (``--val-alphabet``, default Korean,
as in chapter 5's architecture search), never on the test alphabets. It trains the
chapter's transfer baseline (the ``transfer`` row of ``experiments/methods.py
optimisation``: Conv4, 300 steps of 16 five-way episodes of rotated characters, Adam at
1e-3) on the other alphabets, scores every setting of the grid on the same 5-way 1-shot
validation episodes, and records each score and the choice (the highest mean; the first
in the grid's order on a tie) in ``metabook/_results/transfer-validation.json``, which
``experiments/methods.py transfer`` reads before it scores the test alphabets once.

::

    python experiments/transfer_validation.py                 # about 10 minutes on 2 cores
    python experiments/transfer_validation.py --steps 5 --episodes 4 --name tiny
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import metabook as mb
from metabook.data import EpisodeSampler, Omniglot
from metabook.models import Conv4
from metabook.results import write_result

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import QUERIES, held_out_alphabet  # noqa: E402

RESULTS = Path(__file__).resolve().parent.parent / "metabook" / "_results"
GRID: dict[str, dict[str, tuple[float | int, ...]]] = {
    "probe": {"probe_lr": (0.01, 0.1, 1.0)},
    "finetune": {"finetune_lr": (0.01, 0.1, 1.0), "finetune_steps": (5, 20, 50)},
}


def settings(head: str) -> list[dict[str, Any]]:
    """Every setting of a head's grid, in order."""
    names = list(GRID[head])
    return [
        dict(zip(names, values, strict=True)) for values in itertools.product(*GRID[head].values())
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--val-alphabet", default="Korean")
    parser.add_argument("--steps", type=int, default=300, help="training steps of 16 episodes")
    parser.add_argument("--episodes", type=int, default=200, help="validation episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="transfer-validation")
    parser.add_argument("--results-dir", default=str(RESULTS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    out = Path(args.results_dir) / f"{args.name}.json"
    if out.exists() and not args.overwrite:
        raise SystemExit(f"{out} exists: give --overwrite to replace it, or another --name")
    train_set = Omniglot("background_small1", rotations=True)
    train_classes, episodes = held_out_alphabet(train_set, args.val_alphabet, args.episodes)

    device = mb.pick_device(args.device)
    mb.seed_everything(args.seed)
    learner = mb.TransferBaseline(Conv4(), num_classes=len(train_set.classes))
    tasks = EpisodeSampler(train_set, 5, 1, QUERIES, classes=train_classes, seed=args.seed)
    mb.seed_everything(args.seed)
    start = time.perf_counter()
    mb.meta_train(
        learner, tasks, steps=args.steps, meta_batch=16, lr=1e-3, device=device, progress=False
    )
    train_seconds = time.perf_counter() - start

    grid: dict[str, list[dict[str, Any]]] = {}
    for head in ("centroid", *GRID):
        grid[head] = []
        for setting in settings(head) if head in GRID else [{}]:
            result = mb.evaluate(learner.use_head(head, **setting), episodes)
            grid[head].append({**setting, "mean": result.mean, "ci95": result.ci95})
            print(head, setting, f"{100 * result.mean:.1f} ± {100 * result.ci95:.1f}", flush=True)
    chosen = {
        head: {k: v for k, v in max(grid[head], key=lambda r: r["mean"]).items() if k in GRID[head]}
        for head in GRID
    }
    result = {
        "name": args.name,
        "command": " ".join(
            ["python experiments/transfer_validation.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "protocol": {
            "train": "omniglot:background_small1 without the validation alphabet, rotations "
            f"as new classes, {args.steps} steps of 16 five-way 1-shot episodes, Adam lr "
            "1e-3, Conv4: the transfer baseline of experiments/methods.py optimisation",
            "validation": f"omniglot:background_small1, the {args.val_alphabet} characters "
            f"(held out of training) as drawn; 5-way 1-shot, {QUERIES} queries, "
            f"{args.episodes} episodes (seed 3), the queries together",
            "seed": args.seed,
        },
        "train_seconds": round(train_seconds, 1),
        "grid": grid,
        "chosen": chosen,
    }
    write_result(out, result, device)
    print(f"chosen: {chosen}; written {out}")


if __name__ == "__main__":
    main()
