"""The ``metabook`` command: train, resume, evaluate, run the official one-shot runs, list
methods::

    metabook train --method protonet --dataset omniglot:background_small1+background_small2 \\
        --ways 20 --shots 1 --queries 5 --steps 2000 --out runs/protonet
    metabook train --config omniglot_small1 --out runs/small1
    metabook train --resume runs/protonet [--steps 4000]
    metabook eval --checkpoint runs/protonet/best.pt --dataset omniglot:background_small2 \\
        --ways 5 --shots 1 --episodes 600
    metabook eval-runs --checkpoint runs/protonet/best.pt
    metabook eval-runs --checkpoint runs/seed0/best.pt runs/seed1/best.pt   # an ensemble
    metabook eval-runs --baseline mhd
    metabook methods

A checkpoint records the run's configuration (:class:`~metabook.config.RunConfig`: the
method and its hyper-parameters, the backbone, the preprocessing and the command), so
``eval`` rebuilds exactly the learner that was trained and ``--resume`` continues exactly
the run that stopped. The methods are those of :data:`metabook.registry.LEARNERS`.

Every mistake in the input (a bad value, a missing or unreadable file, a folder that
already holds a run) is one line on the standard error and exit status 2, before anything
is written, as is a run that diverges (a learning rate too high: the message says which
options help); an unexpected error exits with 1, a run that Ctrl-C stops with 130 after
saving ``last.pt``. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, NoReturn

from metabook import recipes
from metabook._version import __version__
from metabook.checkpoints import Checkpoint
from metabook.config import SCHEMA_VERSION, DataConfig, RunConfig, TrainConfig
from metabook.data.episodes import EpisodeSampler
from metabook.data.omniglot import OmniglotOneShotRuns
from metabook.evaluation import evaluate
from metabook.learners import Ensemble, FewShotLearner, ModifiedHausdorff
from metabook.registry import LEARNERS, load_run
from metabook.runs import DATASET_FORMAT, load_dataset, train_run
from metabook.runtime import pick_device
from metabook.training import TrainingDiverged, TrainingInterrupted

__all__ = ["main", "parser"]

ISSUES = "https://github.com/metabook/metabook/issues"
RESUME_OPTIONS = {"steps", "device", "quiet", "data_root", "debug"}
EXAMPLES = """examples:
  metabook train --method protonet --ways 20 --queries 5 --steps 2000 --out runs/protonet
  metabook train --config omniglot_small1 --out runs/small1
  metabook train --resume runs/protonet --steps 4000
  metabook eval --checkpoint runs/protonet/best.pt --ways 5 --shots 1
  metabook eval-runs --checkpoint runs/protonet/best.pt
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on the standard error (status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _InputError(ValueError):
    """A mistake in the command line found after parsing (status 2)."""


# ---------------------------------------------------------------------------- values


def _whole(low: int) -> Callable[[str], int]:
    """A parser of whole numbers of at least ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _positive(text: str) -> float:
    """A finite number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def _fraction(text: str) -> float:
    """A number strictly between 0 and 1."""
    value = _positive(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def _names(text: str) -> tuple[str, ...]:
    """Comma-separated names."""
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected names separated by commas, got {text!r}")
    return names


def _option(
    p: argparse.ArgumentParser,
    defaults: dict[str, Any],
    flag: str,
    default: Any,
    help: str,
    **kwargs: Any,
) -> None:
    """An option whose absence is visible after parsing (its default is filled in later),
    so that ``--resume`` can refuse the options it would ignore."""
    defaults[flag.lstrip("-").replace("-", "_")] = default
    if default not in (None, False):
        help += f" (default: {default})"
    p.add_argument(flag, default=argparse.SUPPRESS, help=help, **kwargs)


def _add_common(p: argparse.ArgumentParser, defaults: dict[str, Any], seeded: bool) -> None:
    _option(p, defaults, "--device", "auto", "auto, cpu, cuda, cuda:N or mps")
    _option(
        p,
        defaults,
        "--data-root",
        None,
        "folder holding omniglot/ (default: $METABOOK_DATA, then the user cache)",
    )
    if seeded:
        _option(p, defaults, "--seed", 0, "seed of the episodes (and weights)", type=_whole(0))
        _option(p, defaults, "--quiet", False, "no progress bar", action="store_true")
    _option(p, defaults, "--debug", False, "show the traceback of an error", action="store_true")


# ---------------------------------------------------------------------------- commands


def _progress(args: argparse.Namespace) -> bool | None:
    """``--quiet`` turns progress bars off; otherwise ``METABOOK_PROGRESS`` decides."""
    return False if args.quiet else None


def _config_from_args(args: argparse.Namespace, argv: Sequence[str]) -> RunConfig:
    """The run configuration of ``metabook train``'s arguments: the ``--config`` recipe, if
    any, with the options given on the command line replacing its values (an option is
    named after the field it sets in :class:`RunConfig`, :class:`DataConfig` or
    :class:`TrainConfig`)."""
    values = {
        prefix + f.name: getattr(args, f.name)
        for prefix, section in (("", RunConfig), ("data.", DataConfig), ("train.", TrainConfig))
        for f in fields(section)
        if f.name in args.given
    }
    table = recipes.read(args.config) if "config" in args.given else {}
    table = recipes.with_values(table, values)
    if "method" not in table:
        raise _InputError(f"the recipe {args.config} names no method: give --method")
    table.update(command="metabook " + " ".join(argv), schema=SCHEMA_VERSION)
    return RunConfig.from_dict(table)


def _resumed_config(args: argparse.Namespace) -> RunConfig:
    """The configuration of the run in ``--resume``'s folder, up to ``--steps``."""
    extra = sorted(args.given - RESUME_OPTIONS - {"resume"})
    if extra:
        names = ", ".join("--" + name.replace("_", "-") for name in extra)
        raise _InputError(
            f"--resume continues the run as it was configured and cannot change {names}; "
            "only --steps, --device, --data-root and --quiet apply (start a new run with --out)"
        )
    path = Path(args.resume) / "last.pt"
    if not path.exists():
        raise _InputError(f"there is no run to resume in {args.resume} (no last.pt)")
    checkpoint = Checkpoint.read(path)
    if checkpoint.config is None:
        raise _InputError(f"{path} holds no run configuration: it was not written by a run")
    config = checkpoint.config
    steps = args.steps if "steps" in args.given else config.train.steps
    if steps <= checkpoint.step:
        raise _InputError(
            f"the run in {args.resume} already reached step {checkpoint.step} of {steps}: "
            f"give --steps above {checkpoint.step} to train further"
        )
    return config.replace(train=replace(config.train, steps=steps))


def _train(args: argparse.Namespace, argv: Sequence[str]) -> None:
    if "resume" in args.given:
        config, out = _resumed_config(args), Path(args.resume)
    else:
        needed = ("out",) if "config" in args.given else ("method", "out")
        missing = [flag for flag in needed if flag not in args.given]
        if missing:
            raise _InputError(
                "the following arguments are required: "
                + ", ".join("--" + flag for flag in missing)
                + " (or --config RECIPE, or --resume FOLDER to continue a run)"
            )
        config, out = _config_from_args(args, argv), Path(args.out)
    resume = "resume" in args.given
    try:
        history = train_run(
            config, out, args.data_root, args.device, _progress(args), resume, args.overwrite
        )
    except TrainingDiverged as err:
        last = out / "last.pt"
        saved = f"; {last} holds the run up to its last save" if last.exists() else ""
        raise _InputError(
            f"the meta-training loss became {err.value} at step {err.step}: lower --lr (now "
            f"{config.train.lr:g}) or clip the gradients with --grad-clip, e.g. --grad-clip 1"
            + saved
        ) from err
    except TrainingInterrupted as err:
        print(
            f"stopped at step {err.step}; {out / 'last.pt'} holds it. Continue with: "
            f"metabook train --resume {out}",
            file=sys.stderr,
        )
        raise
    best = history.best
    if best is not None:
        print(f"best validation at step {best[0]}: {best[1]}")
    where = f"{out}/last.pt" + (f" and {out}/best.pt" if best is not None else "")
    print(f"checkpoints written to {where}")


def _check_ways(config: RunConfig, ways: int) -> None:
    if LEARNERS[config.method].learner.needs_head and ways != config.ways:
        raise ValueError(
            f"this {config.method} checkpoint has a {config.ways}-way head and cannot "
            f"classify {ways}-way episodes; train it with --ways {ways}"
        )


def _load(path: str) -> tuple[Any, RunConfig]:
    learner, config = load_run(path)
    if config is None:
        raise _InputError(f"{path} holds no run configuration: it was not written by a run")
    return learner, config


def _load_all(paths: Sequence[str], ways: int) -> tuple[FewShotLearner, RunConfig, str]:
    """The learner of one checkpoint, or the :class:`Ensemble` of several (which must read
    the same images and come from the same training data); its configuration (the first
    one's) and its name."""
    loaded = [_load(path) for path in paths]
    config = loaded[0][1]
    for path, (_, other) in zip(paths[1:], loaded[1:], strict=True):
        for field, what in (("dataset", "training data"), ("image_size", "image size")):
            if getattr(other.data, field) != getattr(config.data, field):
                raise _InputError(
                    f"{path} differs from {paths[0]} in its {what} "
                    f"({getattr(other.data, field)} vs {getattr(config.data, field)}): an "
                    "ensemble's checkpoints must share it"
                )
    for _, member in loaded:
        _check_ways(member, ways)
    if len(loaded) == 1:
        return loaded[0][0], config, config.method
    methods = sorted({member.method for _, member in loaded})
    try:
        ensemble = Ensemble(learner for learner, _ in loaded)
    except ValueError as err:
        raise _InputError(str(err)) from err
    return ensemble, config, f"ensemble of {len(loaded)} ({', '.join(methods)})"


def _eval(args: argparse.Namespace, argv: Sequence[str]) -> None:
    learner, config, name = _load_all(args.checkpoint, args.ways)
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
    result = evaluate(
        learner, episodes, device=device, progress=_progress(args), transductive=not args.inductive
    )
    protocol = "within one alphabet" if args.within_alphabet else "across alphabets"
    if args.held_out:
        protocol += ", alphabets not seen in training"
    if args.inductive:
        protocol += ", each query alone"
    print(f"{name}, {args.ways}-way {args.shots}-shot ({protocol}): {result}")


def _eval_runs(args: argparse.Namespace, argv: Sequence[str]) -> None:
    if ("checkpoint" in args.given) == ("baseline" in args.given):
        raise _InputError("give either --checkpoint FILE or --baseline mhd")
    learner: FewShotLearner
    if "baseline" in args.given:
        learner, name, image_size = ModifiedHausdorff(), "modified Hausdorff distance", 105
    else:
        learner, config, name = _load_all(args.checkpoint, 20)
        image_size = config.data.image_size
    if args.runs is not None:
        root: Path | None = Path(args.runs)
    else:
        root = None if args.data_root is None else Path(args.data_root) / "omniglot"
    runs = OmniglotOneShotRuns(root=root, image_size=image_size)
    device = pick_device(args.device)
    learner.to(device)
    result = evaluate(learner, runs, device=device, transductive=not args.inductive)
    errors = 100 * (1 - result.values)
    for number, error in enumerate(errors.tolist(), start=1):
        print(f" run {number:2d} (error {error:.1f}%)")
    if args.inductive:
        name += " (each query alone)"
    print(
        f"{name}: average error {float(errors.mean()):.1f}% over {len(errors)} runs "
        f"(accuracy {100 - float(errors.mean()):.1f}%; the official demo's modified "
        "Hausdorff distance errs on 38.8%)"
    )


def _methods(args: argparse.Namespace, argv: Sequence[str]) -> None:
    for name, method in LEARNERS.items():
        defaults = ", ".join(f"{k}={v}" for k, v in method.hyper.items()) or "-"
        print(f"{name:12s} {method.family:13s} {method.summary}")
        print(f"{'':12s} {'':13s} defaults: {defaults}")


# ---------------------------------------------------------------------------- parsers


def _add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train",
        help="meta-train a learner and write checkpoints, or resume a run",
        description="Meta-train a learner; last.pt (every --val-every steps) and best.pt "
        "(best validation score) are written into --out. --resume FOLDER continues a run "
        "that stopped (or trains it further with a larger --steps).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d: dict[str, Any] = {}
    _option(
        train, d, "--method", None, "the method (see: metabook methods)", choices=list(LEARNERS)
    )
    _option(
        train,
        d,
        "--config",
        None,
        "a recipe: a packaged one by name (" + ", ".join(recipes.names()) + ") or a .toml "
        "file; the options given here replace its values",
        metavar="RECIPE",
    )
    _option(train, d, "--out", None, "new folder for last.pt and best.pt")
    _option(train, d, "--resume", None, "continue the run in this folder", metavar="FOLDER")
    _option(train, d, "--overwrite", False, "replace the run --out holds", action="store_true")
    _option(train, d, "--dataset", DataConfig.dataset, f"training data, {DATASET_FORMAT}")
    _option(train, d, "--ways", 5, "classes per episode", type=_whole(2))
    _option(train, d, "--train-ways", None, "more ways in training than in testing", type=_whole(2))
    _option(train, d, "--shots", 1, "support examples per class", type=_whole(1))
    _option(train, d, "--queries", 5, "query examples per class", type=_whole(1))
    _option(train, d, "--steps", TrainConfig.steps, "meta-training steps", type=_whole(1))
    _option(train, d, "--meta-batch", TrainConfig.meta_batch, "episodes per step", type=_whole(1))
    _option(train, d, "--lr", TrainConfig.lr, "Adam's learning rate", type=_positive)
    _option(train, d, "--grad-clip", None, "clip the gradient norm to this value", type=_positive)
    _add_train_data(train, d)
    _add_common(train, d, seeded=True)
    train.set_defaults(run=_train, fill=d)


def _add_train_data(train: argparse.ArgumentParser, d: dict[str, Any]) -> None:
    """The options of ``metabook train`` about its data and its validation."""
    _option(train, d, "--image-size", DataConfig.image_size, "side of the images", type=_whole(16))
    _option(
        train, d, "--rotations", False, "add rotated copies as new classes", action="store_true"
    )
    _option(
        train,
        d,
        "--augment",
        False,
        "random affine distortions of training images",
        action="store_true",
    )
    _option(
        train,
        d,
        "--within-alphabet",
        False,
        "draw every training (and validation) episode's classes from one alphabet",
        action="store_true",
    )
    _option(
        train,
        d,
        "--val-fraction",
        DataConfig.val_fraction,
        "fraction of the classes held out for validation",
        type=_fraction,
    )
    _option(
        train,
        d,
        "--val-alphabets",
        None,
        "validate on these alphabets (comma-separated), held out of training, with "
        "episodes inside one alphabet as in the official runs (instead of --val-fraction)",
        type=_names,
        metavar="NAMES",
    )
    _option(
        train,
        d,
        "--val-episodes",
        TrainConfig.val_episodes,
        "validation episodes (0: no validation, no best.pt)",
        type=_whole(0),
    )
    _option(
        train, d, "--val-every", TrainConfig.val_every, "steps between validations", type=_whole(1)
    )


def _add_inductive(p: argparse.ArgumentParser, d: dict[str, Any]) -> None:
    """The option of ``eval`` and ``eval-runs`` that scores each query alone."""
    _option(
        p,
        d,
        "--inductive",
        False,
        "classify each query alone with the support set (no query sees the others)",
        action="store_true",
    )


CHECKPOINTS = (
    "a checkpoint written by metabook train; several make an ensemble (the mean of their "
    "log-probabilities)"
)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser(
        "eval",
        help="mean accuracy and 95%% interval on random episodes",
        description="Mean accuracy and its 95%% interval on random episodes of a dataset.",
    )
    d: dict[str, Any] = {}
    _option(ev, d, "--checkpoint", None, CHECKPOINTS, required=True, nargs="+")
    _option(ev, d, "--dataset", "omniglot:background_small2", f"test data, {DATASET_FORMAT}")
    _option(ev, d, "--ways", 5, "classes per episode", type=_whole(2))
    _option(ev, d, "--shots", 1, "support examples per class", type=_whole(1))
    _option(ev, d, "--queries", 15, "query examples per class", type=_whole(1))
    _option(ev, d, "--episodes", 600, "episodes to average over", type=_whole(1))
    _option(
        ev, d, "--within-alphabet", False, "draw each episode in one alphabet", action="store_true"
    )
    _option(
        ev,
        d,
        "--held-out",
        False,
        "only alphabets absent from the checkpoint's training dataset",
        action="store_true",
    )
    _add_inductive(ev, d)
    _add_common(ev, d, seeded=True)
    ev.set_defaults(run=_eval, fill=d)


def _add_eval_runs(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser(
        "eval-runs",
        help="the 20 official one-shot runs of Lake et al. (the test set: evaluate once)",
        description="Error rate on the 20 official 20-way one-shot runs of Lake et al. "
        "(2015). They are a test set: choose everything on validation first.",
    )
    d: dict[str, Any] = {}
    _option(runs, d, "--checkpoint", None, CHECKPOINTS, nargs="+")
    _option(
        runs,
        d,
        "--baseline",
        None,
        "instead of a checkpoint, the official demo's baseline (modified Hausdorff "
        "distance between inked pixels, on the original 105 x 105 images)",
        choices=["mhd"],
    )
    _option(
        runs,
        d,
        "--runs",
        None,
        "folder holding all_runs.zip or all_runs/ (default: omniglot/ of the data root)",
    )
    _add_inductive(runs, d)
    _add_common(runs, d, seeded=False)
    runs.set_defaults(run=_eval_runs, fill=d)


def parser() -> argparse.ArgumentParser:
    """The command-line interface of ``metabook``."""
    top = _Parser(
        prog="metabook",
        description="Train and evaluate the few-shot learners of metabook.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"metabook {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_eval(sub)
    _add_eval_runs(sub)
    methods = sub.add_parser("methods", help="list the methods, their family and defaults")
    methods.set_defaults(run=_methods, fill={"debug": False})
    return top


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    args = parser().parse_args(argv)
    args.given = set(vars(args)) - {"command", "run", "fill"}
    for name, value in args.fill.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    return args


def _describe(err: BaseException) -> str:
    """One line for an error: an OSError names its file."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        return f"{err.filename}: {err.strerror}"
    return " ".join(str(err).split()) or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line. A mistake in the input (or a run it makes diverge) is one line
    on the standard error and exit status 2; an unexpected error is status 1, a run stopped
    by Ctrl-C 130; ``--debug`` raises instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parse(argv)
    except SystemExit as done:  # --help, --version, or a one-line parsing error
        return done.code if isinstance(done.code, int) else 2
    name = f"metabook {args.command}"
    try:
        root = getattr(args, "data_root", None)
        if root is not None and not Path(root).is_dir():
            raise _InputError(f"--data-root {root} is not a folder (it should hold omniglot/)")
        args.run(args, argv)
    except Exception as err:
        if args.debug:
            raise
        if isinstance(err, (ValueError, OSError)):
            print(f"{name}: error: {_describe(err)}", file=sys.stderr)
            return 2
        print(
            f"{name}: internal error: {type(err).__name__}: {_describe(err)} (run it again "
            f"with --debug for the traceback and report it at {ISSUES})",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt as err:
        if args.debug:
            raise
        if not isinstance(err, TrainingInterrupted):
            print(f"{name}: interrupted", file=sys.stderr)
        return 130
    return 0
