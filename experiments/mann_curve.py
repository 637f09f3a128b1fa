"""The MANN trained for as long as Santoro et al. trained theirs, with its validation curve.

Chapter 5's MANN (``experiments/methods.py model-based``: 2,000 steps of 4 five-way 1-shot
episodes, 8,000 episodes) ends far below the other learners, and Santoro et al. (2016)
trained theirs for about 100,000 episodes. This script trains the chapter's MANN, built and
optimised exactly as there (Conv4 with per-example normalisation, a 128-unit LSTM
controller, 32 memory slots of width 40, Adam at 1e-3, 4 episodes a step), for ``--steps``
steps on ``background_small1`` with one alphabet (``--val-alphabet``, default Korean, as in
``experiments/transfer_validation.py``) held out of training; every ``--val-every`` steps it
scores the same 5-way 1-shot validation episodes drawn inside that alphabet. The curve says
whether, and when, the MANN learns; ``best.pt`` (the validation maximum) is then scored once
on the chapter's test episodes (300, seed 1, the alphabets of ``background_small2`` that
training never saw; each query alone equals the queries together for the MANN, whose queries
never meet).

::

    python experiments/mann_curve.py --seed 0     # 25,000 steps: about 80 minutes on 2 cores
    python experiments/mann_curve.py --steps 4 --val-every 2 --episodes 4 --name tiny

The run is checkpointed under ``--runs-dir``: run the command again and it resumes where it
stopped (the same weights as an uninterrupted run). The result, written atomically to
``metabook/_results/NAME.json`` (default ``mann-curve``), holds the curve, the training
loss averaged over each validation interval, the test result, the command, device, versions
and date; an existing result is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import metabook as mb
from metabook.checkpoints import load_checkpoint
from metabook.data import EpisodeSampler, Omniglot
from metabook.results import write_result

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the chapter's MANN, its test episodes and the held-out alphabet of the transfer validation
from methods import QUERIES, TestEpisodes, chapter5_mann, held_out_alphabet  # noqa: E402

RESULTS = Path(__file__).resolve().parent.parent / "metabook" / "_results"
META_BATCH = 4


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25_000, help="steps of 4 episodes")
    parser.add_argument("--val-every", type=int, default=1_250)
    parser.add_argument("--val-alphabet", default="Korean")
    parser.add_argument("--episodes", type=int, default=300, help="validation and test episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="mann-curve")
    parser.add_argument("--runs-dir", default="runs/experiments")
    parser.add_argument("--results-dir", default=str(RESULTS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    out = Path(args.results_dir) / f"{args.name}.json"
    if out.exists() and not args.overwrite:
        raise SystemExit(f"{out} exists: give --overwrite to replace it, or another --name")
    train_set = Omniglot("background_small1", rotations=True)
    train_classes, val_episodes = held_out_alphabet(train_set, args.val_alphabet, args.episodes)

    folder = Path(args.runs_dir) / args.name / f"seed{args.seed}"
    resume = (folder / "last.pt").exists()
    device = mb.pick_device(args.device)
    mb.seed_everything(args.seed)
    learner = chapter5_mann()
    tasks = EpisodeSampler(train_set, 5, 1, QUERIES, classes=train_classes, seed=args.seed)
    mb.seed_everything(args.seed)
    start = time.perf_counter()
    history = mb.meta_train(
        learner,
        tasks,
        steps=args.steps,
        meta_batch=META_BATCH,
        lr=1e-3,
        val_episodes=val_episodes,
        val_every=args.val_every,
        checkpoint_dir=folder,
        device=device,
        progress=False,
        resume=resume,
    )
    seconds = time.perf_counter() - start

    best = history.best
    assert best is not None  # validation ran at least at the end
    load_checkpoint(folder / "best.pt", learner)
    mb.seed_everything(0)  # the MANN presents the support set in a random order
    test = mb.evaluate(learner.to(device), TestEpisodes(train_set, args.episodes, seed=1)(5, 1))
    losses = torch.tensor(history.losses)
    result = {
        "name": args.name,
        "command": " ".join(
            ["python experiments/mann_curve.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "protocol": {
            "train": "omniglot:background_small1 without the validation alphabet, rotations "
            f"as new classes, 5-way 1-shot, {QUERIES} queries, {META_BATCH} episodes a step, "
            "Adam lr 1e-3; chapter 5's MANN (Conv4 with layer normalisation, LSTM "
            "controller of 128, 32 slots of width 40)",
            "validation": f"omniglot:background_small1, the {args.val_alphabet} characters "
            f"(held out of training) as drawn; 5-way 1-shot, {QUERIES} queries, "
            f"{args.episodes} episodes (seed 3)",
            "test": "omniglot:background_small2, alphabets outside training; 5-way 1-shot, "
            f"{QUERIES} queries, {args.episodes} fixed episodes (seed 1), chapter 5's; the "
            "book's teaching protocol, not the official runs",
            "seed": args.seed,
            "steps": args.steps,
            "meta_batch": META_BATCH,
        },
        "curve": {
            "steps": history.val_steps,
            "episodes": [META_BATCH * s for s in history.val_steps],
            "val_mean": [r.mean for r in history.val_results],
            "val_ci95": [r.ci95 for r in history.val_results],
            # the mean training loss of the steps since the previous validation
            "train_loss": [
                float(losses[a:b].mean())
                for a, b in zip([0, *history.val_steps[:-1]], history.val_steps, strict=True)
            ],
        },
        "best_step": best[0],
        "test": {"mean": test.mean, "ci95": test.ci95},
        "train_seconds_this_call": round(seconds, 1),
        "resumed": resume,
    }
    write_result(out, result, device)
    print(f"best validation {100 * best[1].mean:.1f} at step {best[0]}; test {test}")
    print(f"written {out}")


if __name__ == "__main__":
    main()
