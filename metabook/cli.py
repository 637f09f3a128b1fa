"""The ``metabook`` command: train, evaluate, and run the official one-shot runs::

    metabook train --method protonet --dataset omniglot:background_small1+background_small2 \\
        --ways 20 --shots 1 --queries 5 --steps 2000 --out runs/protonet
    metabook eval --checkpoint runs/protonet/best.pt --dataset omniglot:background_small2 \\
        --ways 5 --shots 1 --episodes 600
    metabook eval-runs --checkpoint runs/protonet/best.pt [--runs PATH]

A checkpoint records the method, the backbone, the preprocessing and the command's
arguments, so ``eval`` rebuilds exactly the learner that was trained.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from metabook.data.augment import AugmentedTasks, RandomAffine
from metabook.data.episodes import EpisodeSampler, split_classes
from metabook.data.omniglot import Omniglot, OmniglotOneShotRuns
from metabook.devices import device as pick_device
from metabook.devices import seed_everything
from metabook.evaluation import evaluate
from metabook.learner import FewShotLearner
from metabook.maml import MAML, MetaSGD
from metabook.metric import MatchingNetwork, ProtoNet, SiameseNetwork
from metabook.models import Conv4
from metabook.reptile import Reptile
from metabook.training import TaskSource, load_checkpoint, meta_train

__all__ = ["build_learner", "main"]

METHODS = ("protonet", "matching", "siamese", "maml", "fomaml", "reptile", "metasgd")
GRADIENT_BASED = ("maml", "fomaml", "reptile", "metasgd")


def build_learner(method: str, ways: int, image_size: int = 28) -> FewShotLearner:
    """The learner of ``method`` on a Conv4 backbone, with the book's default settings.

    Gradient-based methods get a ``ways``-way linear head, so they can only be evaluated
    on episodes with that many classes; metric-based methods work for any number.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose from {', '.join(METHODS)}")
    if method == "protonet":
        return ProtoNet(Conv4(image_size=image_size))
    if method == "matching":
        return MatchingNetwork(Conv4(image_size=image_size))
    if method == "siamese":
        return SiameseNetwork(Conv4(image_size=image_size))
    head = Conv4(out_features=ways, image_size=image_size)
    if method == "reptile":
        return Reptile(head, inner_lr=0.1, inner_steps=5, test_steps=10)
    cls = MetaSGD if method == "metasgd" else MAML
    return cls(
        head,
        inner_lr=0.4,
        inner_steps=1,
        test_steps=3,
        first_order=method == "fomaml",
        loss_fn=F.cross_entropy,
    )


def load_dataset(spec: str, root: str | None, image_size: int, rotations: bool = False) -> Omniglot:
    """``omniglot:SPLIT[+SPLIT...]`` as a dataset."""
    name, _, split = spec.partition(":")
    if name != "omniglot" or not split:
        raise ValueError(
            f"unknown dataset {spec!r}: use omniglot:SPLIT, e.g. "
            "omniglot:background_small1+background_small2"
        )
    return Omniglot(split, root=root, image_size=image_size, rotations=rotations)


def _train(args: argparse.Namespace) -> None:
    seed_everything(args.seed)
    data = load_dataset(args.dataset, args.data_root, args.image_size, args.rotations)
    train_classes, val_classes = split_classes(
        len(data.classes), [1 - args.val_fraction, args.val_fraction], seed=args.seed
    )
    train_ways = args.train_ways or args.ways
    groups = data.class_alphabet if args.within_alphabet else None
    tasks: TaskSource = EpisodeSampler(
        data,
        train_ways,
        args.shots,
        args.queries,
        classes=train_classes,
        seed=args.seed,
        groups=groups,
    )
    if args.augment:
        distort = RandomAffine(generator=torch.Generator().manual_seed(args.seed))
        tasks = AugmentedTasks(tasks, distort)
    val_episodes = None
    if args.val_episodes and val_classes.numel() >= args.ways:
        largest = 0
        if groups is not None:
            largest = int(torch.bincount(groups[val_classes]).max())
            if largest < args.ways:
                print(
                    f"validation episodes are drawn across alphabets: no alphabet has "
                    f"{args.ways} validation characters (the largest has {largest})"
                )
        val = EpisodeSampler(
            data,
            args.ways,
            args.shots,
            args.queries,
            classes=val_classes,
            groups=groups if largest >= args.ways else None,
        )
        val_episodes = val.episodes(args.val_episodes, seed=args.seed)
    if args.method in GRADIENT_BASED and train_ways != args.ways:
        raise ValueError(f"{args.method} has a fixed {args.ways}-way head: drop --train-ways")
    learner = build_learner(args.method, args.ways, args.image_size)
    config = {
        "method": args.method,
        "backbone": "Conv4",
        "ways": args.ways,
        "preprocessing": {
            "image_size": args.image_size,
            "rotations": args.rotations,
            "augment": args.augment,
            "ink": 1.0,
            "dataset": args.dataset,
        },
        "args": {k: v for k, v in vars(args).items() if k != "func"},
        "command": "metabook " + " ".join(sys.argv[1:]),
    }
    history = meta_train(
        learner,
        tasks,
        steps=args.steps,
        meta_batch=args.meta_batch,
        lr=args.lr,
        val_episodes=val_episodes,
        val_every=args.val_every,
        checkpoint_dir=args.out,
        config=config,
        device=args.device,
        progress=not args.quiet,
    )
    best = history.best
    where = Path(args.out)
    if best is not None:
        print(f"best validation at step {best[0]}: {best[1]}")
    print(
        f"checkpoints written to {where / 'last.pt'}"
        + (f" and {where / 'best.pt'}" if best is not None else "")
    )


def restore(path: str) -> tuple[FewShotLearner, dict[str, Any]]:
    """The learner saved in a checkpoint written by ``metabook train``."""
    blob = load_checkpoint(path)
    config = blob.get("config") or {}
    if "method" not in config:
        raise ValueError(f"{path} was not written by `metabook train` (no method recorded)")
    learner = build_learner(config["method"], config["ways"], config["preprocessing"]["image_size"])
    learner.load_state_dict(blob["state_dict"])
    return learner, config


def _check_ways(config: dict[str, Any], ways: int) -> None:
    if config["method"] in GRADIENT_BASED and ways != config["ways"]:
        raise ValueError(
            f"this {config['method']} checkpoint has a {config['ways']}-way head and cannot "
            f"classify {ways}-way episodes; train it with --ways {ways}"
        )


def _eval(args: argparse.Namespace) -> None:
    learner, config = restore(args.checkpoint)
    _check_ways(config, args.ways)
    image_size = config["preprocessing"]["image_size"]
    data = load_dataset(args.dataset, args.data_root, image_size)
    classes = None
    if args.held_out:
        trained = load_dataset(config["preprocessing"]["dataset"], args.data_root, image_size)
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
    result = evaluate(
        learner,
        sampler.episodes(args.episodes, seed=args.seed),
        device=device,
        progress=not args.quiet,
    )
    protocol = "within one alphabet" if args.within_alphabet else "across alphabets"
    if args.held_out:
        protocol += ", alphabets not seen in training"
    print(f"{config['method']}, {args.ways}-way {args.shots}-shot ({protocol}): {result}")


def _eval_runs(args: argparse.Namespace) -> None:
    learner, config = restore(args.checkpoint)
    _check_ways(config, 20)
    runs = OmniglotOneShotRuns(root=args.runs, image_size=config["preprocessing"]["image_size"])
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


def parser() -> argparse.ArgumentParser:
    """The command-line interface of ``metabook``."""
    top = argparse.ArgumentParser(
        prog="metabook", description="Train and evaluate the few-shot learners of metabook."
    )
    sub = top.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
        p.add_argument("--data-root", default=None, help="folder of the data files")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    train = sub.add_parser("train", help="meta-train a learner and write checkpoints")
    train.add_argument("--method", required=True, choices=METHODS)
    train.add_argument("--dataset", default="omniglot:background_small1+background_small2")
    train.add_argument("--ways", type=int, default=5)
    train.add_argument(
        "--train-ways",
        type=int,
        default=None,
        help="more ways in training than in testing (ProtoNet's trick)",
    )
    train.add_argument("--shots", type=int, default=1)
    train.add_argument("--queries", type=int, default=5)
    train.add_argument("--steps", type=int, default=1000)
    train.add_argument("--meta-batch", type=int, default=1)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--image-size", type=int, default=28)
    train.add_argument("--rotations", action="store_true", help="add rotated copies as new classes")
    train.add_argument(
        "--augment",
        action="store_true",
        help="random affine distortions of every training image (metabook.data.augment)",
    )
    train.add_argument(
        "--within-alphabet",
        action="store_true",
        help="draw every training (and validation) episode's classes from one alphabet",
    )
    train.add_argument("--val-fraction", type=float, default=0.2)
    train.add_argument("--val-episodes", type=int, default=100)
    train.add_argument("--val-every", type=int, default=100)
    train.add_argument("--out", required=True, help="folder for last.pt and best.pt")
    common(train)
    train.set_defaults(func=_train)

    ev = sub.add_parser("eval", help="mean accuracy and 95%% interval on random episodes")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--dataset", default="omniglot:background_small2")
    ev.add_argument("--ways", type=int, default=5)
    ev.add_argument("--shots", type=int, default=1)
    ev.add_argument("--queries", type=int, default=15)
    ev.add_argument("--episodes", type=int, default=600)
    ev.add_argument(
        "--within-alphabet",
        action="store_true",
        help="draw every episode's classes from one alphabet",
    )
    ev.add_argument(
        "--held-out",
        action="store_true",
        help="only alphabets absent from the checkpoint's training dataset",
    )
    common(ev)
    ev.set_defaults(func=_eval)

    runs = sub.add_parser("eval-runs", help="the 20 official one-shot runs of Lake et al.")
    runs.add_argument("--checkpoint", required=True)
    runs.add_argument("--runs", default=None, help="folder holding all_runs.zip or all_runs/")
    common(runs)
    runs.set_defaults(func=_eval_runs)
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


if __name__ == "__main__":
    raise SystemExit(main())
