"""The meta-training loop shared by every learner (chapter "Core concepts")."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

from metabook.data.episodes import Episode
from metabook.data.files import atomic_write
from metabook.devices import device as pick_device
from metabook.evaluation import EvalResult, evaluate
from metabook.learner import FewShotLearner

__all__ = ["TaskSource", "TrainHistory", "meta_train", "load_checkpoint"]


class TaskSource(Protocol):
    """Anything with ``sample(batch_size)`` returning a batch of episodes."""

    def sample(self, batch_size: int | None = None) -> Episode: ...


@dataclass
class TrainHistory:
    """What :func:`meta_train` measured: the loss of every step and each validation."""

    losses: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_results: list[EvalResult] = field(default_factory=list)

    @property
    def best(self) -> tuple[int, EvalResult] | None:
        """The step and result of the best validation (highest accuracy, lowest error)."""
        if not self.val_results:
            return None
        sign = 1.0 if self.val_results[0].metric == "accuracy" else -1.0
        i = max(range(len(self.val_results)), key=lambda k: sign * self.val_results[k].mean)
        return self.val_steps[i], self.val_results[i]

    def as_dict(self) -> dict[str, Any]:
        return {
            "losses": self.losses,
            "val_steps": self.val_steps,
            "val_mean": [r.mean for r in self.val_results],
            "val_ci95": [r.ci95 for r in self.val_results],
        }


def _save(
    path: Path,
    learner: FewShotLearner,
    step: int,
    history: TrainHistory,
    config: dict[str, Any] | None,
) -> None:
    blob = {
        "state_dict": learner.state_dict(),
        "step": step,
        "history": history.as_dict(),
        "config": config or {},
        "learner": type(learner).__name__,
    }
    atomic_write(path, lambda tmp: torch.save(blob, tmp))


def load_checkpoint(
    path: str | os.PathLike[str], learner: FewShotLearner | None = None
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`meta_train` (safely: tensors and plain data only).

    With ``learner`` given, its weights are loaded from the checkpoint.
    """
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise ValueError(f"{path} is not a metabook checkpoint")
    if learner is not None:
        learner.load_state_dict(blob["state_dict"])
    return blob


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
    config: dict[str, Any] | None = None,
    device: torch.device | str = "auto",
    grad_clip: float | None = None,
    progress: bool = True,
    scheduler: Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]
    | None = None,
) -> TrainHistory:
    """Meta-train ``learner`` for ``steps`` steps on batches of ``meta_batch`` episodes.

    Each step draws ``tasks.sample(meta_batch)``, computes ``learner.loss(batch)`` and takes
    one optimiser step (Adam with learning rate ``lr`` unless ``optimizer`` is given). Every
    ``val_every`` steps and at the end, the learner is evaluated on ``val_episodes``; with
    ``checkpoint_dir`` the weights are saved as ``last.pt`` and, when validation improves,
    ``best.pt``, together with ``config`` (whatever describes the run). A loss that is
    not finite stops training with :class:`FloatingPointError` naming the step.

    ``scheduler`` builds a learning-rate schedule from the optimiser (for example
    ``lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)``); it is stepped
    after every optimiser step.
    """
    if steps < 0 or meta_batch < 1 or val_every < 1:
        raise ValueError(
            f"need steps >= 0, meta_batch >= 1 and val_every >= 1; got {steps}, {meta_batch}, "
            f"{val_every}"
        )
    target = pick_device(device)
    learner.to(target)
    params = [p for p in learner.parameters() if p.requires_grad]
    if optimizer is None:
        if not params:
            raise ValueError(f"{type(learner).__name__} has no trainable parameters to train")
        optimizer = torch.optim.Adam(params, lr=lr)
    schedule = scheduler(optimizer) if scheduler is not None else None
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    history = TrainHistory()

    best: float | None = None

    def validate(step: int) -> None:
        nonlocal best
        if not val_episodes:
            return
        result = evaluate(learner, val_episodes, device=target)
        history.val_steps.append(step)
        history.val_results.append(result)
        score = result.mean if result.metric == "accuracy" else -result.mean
        if best is None or score > best:
            best = score
            if folder is not None:
                _save(folder / "best.pt", learner, step, history, config)

    learner.train()
    bar = tqdm(range(1, steps + 1), desc="meta-train", disable=not progress)
    for step in bar:
        batch = tasks.sample(meta_batch).to(target)
        loss = learner.loss(batch)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(
                f"the meta-training loss became {value} at step {step}; lower the learning "
                "rate or use grad_clip"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        if schedule is not None:
            schedule.step()
        history.losses.append(value)
        if step % val_every == 0 or step == steps:
            validate(step)
            learner.train()
            if folder is not None:
                _save(folder / "last.pt", learner, step, history, config)
        postfix = {"loss": f"{value:.3f}"}
        if history.val_results:
            postfix["val"] = f"{history.val_results[-1].mean:.3f}"
        bar.set_postfix(postfix, refresh=False)
    return history
