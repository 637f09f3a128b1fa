"""The meta-training loop shared by every learner (chapter "Core concepts").

A run can be stopped and resumed exactly: ``last.pt`` holds, besides the weights, the
optimiser's and the scheduler's state, the step, the history, the task source's generator
and the global random generators, so that a run stopped at step ``k`` and resumed gives the
same weights as the uninterrupted run (bit for bit on the CPU with
``torch.use_deterministic_algorithms(True)`` and the same number of threads). Validation
draws nothing from the training's random generators, so how often a run validates does not
change its training. Ctrl-C stops a run cleanly at the end of a step: ``last.pt`` is written
and :class:`TrainingInterrupted` says where.
"""

from __future__ import annotations

import math
import os
import random
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from metabook.checkpoints import Checkpoint, load_weights
from metabook.config import RunConfig
from metabook.data.episodes import Episode, TaskSource
from metabook.evaluation import EvalResult, evaluate
from metabook.learners.base import FewShotLearner
from metabook.runtime import pick_device, progress_enabled

__all__ = [
    "TrainHistory",
    "TrainingDiverged",
    "TrainingInterrupted",
    "check_folder",
    "meta_train",
    "prepare_folder",
]

Scheduler = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]
RUN_FILES = ("last.pt", "best.pt")


class TrainingDiverged(FloatingPointError):
    """The meta-training loss became ``value`` (not finite) at step ``step``."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(
            f"the meta-training loss became {value} at step {step}: lower the learning rate, "
            "or clip the gradients (grad_clip)"
        )
        self.step, self.value = step, value


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`meta_train` at the end of step ``step``; ``last.pt`` holds it
    (when there is a checkpoint folder) and ``meta_train(..., resume=True)`` continues."""

    def __init__(self, step: int, checkpoint: Path | None) -> None:
        super().__init__(f"meta-training stopped at step {step}")
        self.step, self.checkpoint = step, checkpoint


@dataclass
class TrainHistory:
    """What :func:`meta_train` measured: the loss of every step and each validation."""

    losses: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_results: list[EvalResult] = field(default_factory=list)

    @property
    def best(self) -> tuple[int, EvalResult] | None:
        """The step and result of the best validation (the highest
        :attr:`~metabook.evaluation.EvalResult.score`)."""
        if not self.val_results:
            return None
        i = max(range(len(self.val_results)), key=lambda k: self.val_results[k].score)
        return self.val_steps[i], self.val_results[i]

    def as_dict(self) -> dict[str, Any]:
        """Plain data, as a checkpoint stores it."""
        return {
            "losses": self.losses,
            "val_steps": self.val_steps,
            "val_mean": [r.mean for r in self.val_results],
            "val_ci95": [r.ci95 for r in self.val_results],
            "val_metric": [r.metric for r in self.val_results],
            "val_higher_is_better": [r.higher_is_better for r in self.val_results],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainHistory:
        """The history :meth:`as_dict` wrote (per-episode values are not kept)."""
        count = len(data.get("val_steps", []))
        results = [
            EvalResult(
                mean=data["val_mean"][i],
                ci95=data["val_ci95"][i],
                values=torch.empty(0),
                metric=data.get("val_metric", ["accuracy"] * count)[i],
                higher_is_better=data.get("val_higher_is_better", [True] * count)[i],
            )
            for i in range(count)
        ]
        return cls(list(data.get("losses", [])), list(data.get("val_steps", [])), results)


def _random_state() -> dict[str, Any]:
    """The global random generators (torch's, CUDA's, NumPy's and Python's) as plain data."""
    kind, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)  # noqa: NPY002
    version, python, python_gauss = random.getstate()
    numpy_keys = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": [kind, numpy_keys, position, has_gauss, gauss],
        "python": [version, list(python), python_gauss],
    }


def _set_random_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))  # noqa: NPY002
    version, python, python_gauss = state["python"]
    random.setstate((version, tuple(python), python_gauss))


class _Run:
    """One :func:`meta_train` call: what it trains, where it saves, what is best so far."""

    def __init__(
        self,
        learner: FewShotLearner,
        tasks: TaskSource,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler | None,
        folder: Path | None,
        config: RunConfig | None,
        device: torch.device,
    ) -> None:
        self.learner, self.tasks, self.optimizer, self.schedule = (
            learner,
            tasks,
            optimizer,
            schedule,
        )
        self.folder, self.config, self.device = folder, config, device
        self.history = TrainHistory()
        self.step = 0

    def save(self, name: str) -> None:
        if self.folder is None:
            return
        training = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.schedule is None else self.schedule.state_dict(),
            "random": _random_state(),
            "tasks": self.tasks.state_dict(),
        }
        Checkpoint(
            state_dict=self.learner.state_dict(),
            step=self.step,
            history=self.history.as_dict(),
            config=self.config,
            learner=type(self.learner).__name__,
            training=training,
        ).save(self.folder / name)

    def resume(self) -> None:
        """Continue from ``last.pt`` of the folder: weights, optimiser, step, history,
        generators."""
        assert self.folder is not None
        path = self.folder / "last.pt"
        checkpoint = Checkpoint.read(path)
        if checkpoint.training is None:
            raise ValueError(f"{path} holds no training state (written by metabook 0.1)")
        saved, wanted = checkpoint.config, self.config
        if wanted is not None and saved is not None and saved.replace(train=wanted.train) != wanted:
            raise ValueError(f"{path} was written by a run with another configuration")
        load_weights(self.learner, checkpoint, path)
        self.learner.to(self.device)
        self.optimizer.load_state_dict(checkpoint.training["optimizer"])
        if self.schedule is not None and checkpoint.training["scheduler"] is not None:
            self.schedule.load_state_dict(checkpoint.training["scheduler"])
        self.tasks.load_state_dict(checkpoint.training["tasks"])
        _set_random_state(checkpoint.training["random"])
        self.history = TrainHistory.from_dict(checkpoint.history)
        self.step = checkpoint.step

    def validate(self, val_episodes: list[Episode] | None) -> None:
        """Evaluate on the validation episodes (without touching the training's random
        generators); save ``best.pt`` when the score improves."""
        if not val_episodes:
            return
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            state = random.getstate(), np.random.get_state()  # noqa: NPY002
            result = evaluate(self.learner, val_episodes, device=self.device)
            random.setstate(state[0])
            np.random.set_state(state[1])  # noqa: NPY002
        best = self.history.best
        self.history.val_steps.append(self.step)
        self.history.val_results.append(result)
        if best is None or result.score > best[1].score:
            self.save("best.pt")


def _optimizer(
    learner: FewShotLearner, optimizer: torch.optim.Optimizer | None, lr: float
) -> tuple[torch.optim.Optimizer, list[torch.nn.Parameter]]:
    params = [p for p in learner.parameters() if p.requires_grad]
    if optimizer is None:
        if not params:
            raise ValueError(f"{type(learner).__name__} has no trainable parameters to train")
        optimizer = torch.optim.Adam(params, lr=lr)
    return optimizer, params


def _step(
    learner: FewShotLearner,
    batch: Episode,
    optimizer: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    grad_clip: float | None,
    step: int,
) -> float:
    """One optimiser step on the meta-training loss of ``batch``; returns the loss."""
    loss = learner.loss(batch)
    value = float(loss.detach())
    if not math.isfinite(value):
        raise TrainingDiverged(step, value)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return value


def _check_arguments(steps: int, meta_batch: int, val_every: int, config: object) -> None:
    if steps < 0 or meta_batch < 1 or val_every < 1:
        raise ValueError(
            f"need steps >= 0, meta_batch >= 1 and val_every >= 1; got {steps}, {meta_batch}, "
            f"{val_every}"
        )
    if config is not None and not isinstance(config, RunConfig):
        raise TypeError(f"config must be a metabook.RunConfig, got {type(config).__name__}")


def check_folder(folder: Path, resume: bool, overwrite: bool) -> list[Path]:
    """Check, without writing anything, that a run can use ``folder``; return the run files
    it already holds. A file, a folder holding another run (unless ``resume`` or
    ``overwrite``), a missing ``last.pt`` to resume and a place that cannot be written are
    :class:`OSError` s with one line that says what to do."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file: give a folder for the checkpoints")
    existing = [folder / name for name in RUN_FILES if (folder / name).exists()]
    if resume:
        if not (folder / "last.pt").exists():
            raise FileNotFoundError(f"there is no run to resume in {folder} (no last.pt)")
        return existing
    if existing and not overwrite:
        raise FileExistsError(
            f"{folder} already holds a run ({', '.join(p.name for p in existing)}): resume it, "
            "overwrite it, or choose another folder"
        )
    ancestor = folder
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(f"cannot create {folder}: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write checkpoints into {folder}: {ancestor} is read-only")
    return existing


def prepare_folder(folder: Path, resume: bool, overwrite: bool) -> None:
    """Make sure a run can write into ``folder`` before it trains (see
    :func:`check_folder`): the folder is created, and with ``overwrite`` the files of the
    run it holds are removed, so the new run never mixes its ``last.pt`` with the old
    ``best.pt``."""
    existing = check_folder(folder, resume, overwrite)
    if resume:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OSError(f"cannot write checkpoints into {folder}: {err.strerror or err}") from err
    for path in existing:
        path.unlink()


@contextmanager
def _stop_on_ctrl_c() -> Iterator[threading.Event]:
    """A flag Ctrl-C sets, so that the loop stops between steps; a second Ctrl-C
    interrupts at once. Outside the main thread nothing is installed."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, previous)  # a second Ctrl-C: the default behaviour

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def meta_train(
    learner: FewShotLearner,
    tasks: TaskSource,
    steps: int,
    meta_batch: int = 1,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    val_episodes: list[Episode] | None = None,
    val_every: int = 100,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    config: RunConfig | None = None,
    device: torch.device | str = "auto",
    grad_clip: float | None = None,
    progress: bool | None = None,
    scheduler: Scheduler | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> TrainHistory:
    """Meta-train ``learner`` for ``steps`` steps on batches of ``meta_batch`` episodes.

    Each step draws ``tasks.sample(meta_batch)``, computes ``learner.loss(batch)`` and takes
    one optimiser step (Adam with learning rate ``lr`` unless ``optimizer`` is given). Every
    ``val_every`` steps and at the end, the learner is evaluated on ``val_episodes``; with
    ``checkpoint_dir`` the run is saved as ``last.pt`` and, when validation improves,
    ``best.pt``, together with ``config`` (the :class:`~metabook.config.RunConfig` from
    which :func:`~metabook.registry.load_learner` rebuilds the learner). A folder that
    already holds a run is refused unless ``overwrite``; ``resume`` continues the run of
    ``last.pt`` up to ``steps`` (see the module docstring). A loss that is not finite stops
    training with :class:`FloatingPointError` naming the step; Ctrl-C stops it with
    :class:`TrainingInterrupted` after saving ``last.pt``.

    ``progress`` shows a progress bar (by default unless ``METABOOK_PROGRESS=0``, see
    :func:`~metabook.runtime.progress_enabled`). ``scheduler`` builds a learning-rate
    schedule from the optimiser (for example
    ``lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)``); it is stepped
    after every optimiser step.
    """
    _check_arguments(steps, meta_batch, val_every, config)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if folder is not None:
        prepare_folder(folder, resume, overwrite)
    elif resume:
        raise ValueError("resume=True needs the checkpoint_dir of the run to continue")
    target = pick_device(device)
    learner.to(target)
    optimizer, params = _optimizer(learner, optimizer, lr)
    schedule = scheduler(optimizer) if scheduler is not None else None
    run = _Run(learner, tasks, optimizer, schedule, folder, config, target)
    if resume:
        run.resume()
    _loop(run, steps, meta_batch, params, grad_clip, val_episodes, val_every, progress)
    return run.history


def _loop(
    run: _Run,
    steps: int,
    meta_batch: int,
    params: list[torch.nn.Parameter],
    grad_clip: float | None,
    val_episodes: list[Episode] | None,
    val_every: int,
    progress: bool | None,
) -> None:
    learner = run.learner
    learner.train()
    shown = progress_enabled(progress)
    bar = tqdm(total=steps, initial=run.step, desc="meta-train", disable=not shown)
    with _stop_on_ctrl_c() as stop, bar:
        while run.step < steps:
            batch = run.tasks.sample(meta_batch).to(run.device)
            step = run.step + 1
            value = _step(learner, batch, run.optimizer, params, grad_clip, step)
            if run.schedule is not None:
                run.schedule.step()
            run.history.losses.append(value)
            run.step = step
            if step % val_every == 0 or step == steps:
                run.validate(val_episodes)
                learner.train()
                run.save("last.pt")
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}", refresh=False)
            if stop.is_set() and step < steps:
                run.save("last.pt")
                raise TrainingInterrupted(step, None if run.folder is None else run.folder)
