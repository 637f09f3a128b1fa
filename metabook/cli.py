"""The ``metabook`` command: train, evaluate, run the official one-shot runs, list methods::

    metabook train --method protonet --dataset omniglot:background_small1+background_small2 \\
        --ways 20 --shots 1 --queries 5 --steps 2000 --out runs/protonet
    metabook eval --checkpoint runs/protonet/best.pt --dataset omniglot:background_small2 \\
        --ways 5 --shots 1 --episodes 600
    metabook eval-runs --checkpoint runs/protonet/best.pt [--runs PATH]
    metabook methods

A checkpoint records the run's configuration (:class:`~metabook.config.RunConfig`: the
method and its hyper-parameters, the backbone, the preprocessing and the command), so
``eval`` rebuilds exactly the learner that was trained. The methods are those of
:data:`metabook.registry.LEARNERS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from metabook.config import DataConfig, RunConfig, TrainConfig
from metabook.data.episodes import EpisodeSampler
from metabook.data.omniglot import OmniglotOneShotRuns
from metabook.evaluation import evaluate
from metabook.registry import LEARNERS, load_run
from metabook.runs import DATASET_FORMAT, load_dataset, train_run
from metabook.runtime import pick_device

__all__ = ["main", "parser"]


def _config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run configuration of ``metabook train``'s arguments."""
    return RunConfig(
        method=args.method,
        ways=args.ways,
        shots=args.shots,
        queries=args.queries,
        train_ways=args.train_ways,
        data=DataConfig(
            dataset=args.dataset,
            image_size=args.image_size,
            rotations=args.rotations,
            augment=args.augment,
            within_alphabet=args.within_alphabet,
            val_fraction=args.val_fraction,
        ),
        train=TrainConfig(
            steps=args.steps,
            meta_batch=args.meta_batch,
            lr=args.lr,
            val_episodes=args.val_episodes,
            val_every=args.val_every,
            seed=args.seed,
        ),
        command="metabook " + " ".join(sys.argv[1:]),
    )


def _train(args: argparse.Namespace) -> None:
    history = train_run(
        _config_from_args(args), args.out, args.data_root, args.device, _progress(args)
    )
    best = history.best
    if best is not None:
        print(f"best validation at step {best[0]}: {best[1]}")
    where = f"{args.out}/last.pt" + (f" and {args.out}/best.pt" if best is not None else "")
    print(f"checkpoints written to {where}")


def _progress(args: argparse.Namespace) -> bool | None:
    """``--quiet`` turns progress bars off; otherwise ``METABOOK_PROGRESS`` decides."""
    return False if args.quiet else None


def _check_ways(config: RunConfig, ways: int) -> None:
    if LEARNERS[config.method].learner.needs_head and ways != config.ways:
        raise ValueError(
            f"this {config.method} checkpoint has a {config.ways}-way head and cannot "
            f"classify {ways}-way episodes; train it with --ways {ways}"
        )


def _eval(args: argparse.Namespace) -> None:
    learner, config = load_run(args.checkpoint)
    _check_ways(config, args.ways)
    image_size = config.data.image_size
    data = load_dataset(args.dataset, args.data_root, image_size)
    classes = None
    if args.held_out:
        trained = load_dataset(config.data.dataset, args.data_root, image_size)
        try:
            classes = data.classes_outside(trained.alphabets)
        except ValueError as err:
            raise ValueError(f"every alphabet of {args.dataset} was seen in training") from err
    groups = data.class_alphabet if args.within_alphabet else None
    sampler = EpisodeSampler(
        data, args.ways, args.shots, args.queries, classes=classes, groups=groups
    )
    device = pick_device(args.device)
    learner.to(device)
    episodes = sampler.episodes(args.episodes, seed=args.seed)
    result = evaluate(learner, episodes, device=device, progress=_progress(args))
    protocol = "within one alphabet" if args.within_alphabet else "across alphabets"
    if args.held_out:
        protocol += ", alphabets not seen in training"
    print(f"{config.method}, {args.ways}-way {args.shots}-shot ({protocol}): {result}")


def _eval_runs(args: argparse.Namespace) -> None:
    learner, config = load_run(args.checkpoint)
    _check_ways(config, 20)
    runs = OmniglotOneShotRuns(root=args.runs, image_size=config.data.image_size)
    device = pick_device(args.device)
    learner.to(device)
    errors = []
    for number, episode in enumerate(runs, start=1):
        accuracy = evaluate(learner, [episode], device=device).mean
        errors.append(100 * (1 - accuracy))
        print(f" run {number:2d} (error {errors[-1]:.1f}%)")
    mean = sum(errors) / len(errors)
    print(
        f"average error {mean:.1f}% over {len(errors)} runs "
        "(the official demo's modified Hausdorff distance makes 38.8%)"
    )


def _methods(args: argparse.Namespace) -> None:
    for name, method in LEARNERS.items():
        defaults = ", ".join(f"{k}={v}" for k, v in method.hyper.items()) or "-"
        print(f"{name:12s} {method.family:13s} {method.summary}")
        print(f"{'':12s} {'':13s} defaults: {defaults}")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--data-root", default=None, help="folder of the data files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="meta-train a learner and write checkpoints")
    train.add_argument("--method", required=True, choices=list(LEARNERS))
    train.add_argument("--dataset", default=DataConfig.dataset, help=DATASET_FORMAT)
    train.add_argument("--ways", type=int, default=5)
    train.add_argument(
        "--train-ways", type=int, default=None, help="more ways in training than in testing"
    )
    train.add_argument("--shots", type=int, default=1)
    train.add_argument("--queries", type=int, default=5)
    train.add_argument("--steps", type=int, default=TrainConfig.steps)
    train.add_argument("--meta-batch", type=int, default=TrainConfig.meta_batch)
    train.add_argument("--lr", type=float, default=TrainConfig.lr)
    train.add_argument("--image-size", type=int, default=DataConfig.image_size)
    train.add_argument("--rotations", action="store_true", help="add rotated copies as new classes")
    train.add_argument(
        "--augment", action="store_true", help="random affine distortions of training images"
    )
    train.add_argument(
        "--within-alphabet",
        action="store_true",
        help="draw every training (and validation) episode's classes from one alphabet",
    )
    train.add_argument("--val-fraction", type=float, default=DataConfig.val_fraction)
    train.add_argument("--val-episodes", type=int, default=TrainConfig.val_episodes)
    train.add_argument("--val-every", type=int, default=TrainConfig.val_every)
    train.add_argument("--out", required=True, help="folder for last.pt and best.pt")
    _add_common(train)
    train.set_defaults(func=_train)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="mean accuracy and 95%% interval on random episodes")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--dataset", default="omniglot:background_small2", help=DATASET_FORMAT)
    ev.add_argument("--ways", type=int, default=5)
    ev.add_argument("--shots", type=int, default=1)
    ev.add_argument("--queries", type=int, default=15)
    ev.add_argument("--episodes", type=int, default=600)
    ev.add_argument(
        "--within-alphabet", action="store_true", help="draw each episode within one alphabet"
    )
    ev.add_argument(
        "--held-out",
        action="store_true",
        help="only alphabets absent from the checkpoint's training dataset",
    )
    _add_common(ev)
    ev.set_defaults(func=_eval)


def parser() -> argparse.ArgumentParser:
    """The command-line interface of ``metabook``."""
    top = argparse.ArgumentParser(
        prog="metabook", description="Train and evaluate the few-shot learners of metabook."
    )
    sub = top.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_eval(sub)
    runs = sub.add_parser("eval-runs", help="the 20 official one-shot runs of Lake et al.")
    runs.add_argument("--checkpoint", required=True)
    runs.add_argument("--runs", default=None, help="folder holding all_runs.zip or all_runs/")
    _add_common(runs)
    runs.set_defaults(func=_eval_runs)
    methods = sub.add_parser("methods", help="list the methods, their family and defaults")
    methods.set_defaults(func=_methods)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors in the input are reported in one line, exit status 2."""
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"metabook {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0
