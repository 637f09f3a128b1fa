"""The meta-training loop shared by every learner (chapter "Core concepts")."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from metabook.checkpoints import Checkpoint
from metabook.config import RunConfig
from metabook.data.episodes import Episode, TaskSource
from metabook.evaluation import EvalResult, evaluate
from metabook.learners.base import FewShotLearner
from metabook.runtime import pick_device, progress_enabled

__all__ = ["TrainHistory", "meta_train"]

Scheduler = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


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
        }


class _Run:
    """The state of one :func:`meta_train` call: where to save, what is best so far."""

    def __init__(
        self,
        learner: FewShotLearner,
        folder: Path | None,
        config: RunConfig | None,
        val_episodes: list[Episode] | None,
        device: torch.device,
    ) -> None:
        self.learner, self.folder, self.config = learner, folder, config
        self.val_episodes, self.device = val_episodes, device
        self.history = TrainHistory()

    def save(self, name: str, step: int) -> None:
        if self.folder is None:
            return
        Checkpoint(
            state_dict=self.learner.state_dict(),
            step=step,
            history=self.history.as_dict(),
            config=self.config,
            learner=type(self.learner).__name__,
        ).save(self.folder / name)

    def validate(self, step: int) -> None:
        """Evaluate on the validation episodes; save ``best.pt`` when the score improves."""
        if not self.val_episodes:
            return
        result = evaluate(self.learner, self.val_episodes, device=self.device)
        best = self.history.best
        self.history.val_steps.append(step)
        self.history.val_results.append(result)
        if best is None or result.score > best[1].score:
            self.save("best.pt", step)


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
        raise FloatingPointError(
            f"the meta-training loss became {value} at step {step}; lower the learning "
            "rate or use grad_clip"
        )
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
) -> TrainHistory:
    """Meta-train ``learner`` for ``steps`` steps on batches of ``meta_batch`` episodes.

    Each step draws ``tasks.sample(meta_batch)``, computes ``learner.loss(batch)`` and takes
    one optimiser step (Adam with learning rate ``lr`` unless ``optimizer`` is given). Every
    ``val_every`` steps and at the end, the learner is evaluated on ``val_episodes``; with
    ``checkpoint_dir`` the weights are saved as ``last.pt`` and, when validation improves,
    ``best.pt``, together with ``config`` (the :class:`~metabook.config.RunConfig` from
    which :func:`~metabook.registry.load_learner` rebuilds the learner). A loss that is not
    finite stops training with :class:`FloatingPointError` naming the step.

    ``progress`` shows a progress bar (by default unless ``METABOOK_PROGRESS=0``, see
    :func:`~metabook.runtime.progress_enabled`). ``scheduler`` builds a learning-rate
    schedule from the optimiser (for example
    ``lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)``); it is stepped
    after every optimiser step.
    """
    _check_arguments(steps, meta_batch, val_every, config)
    target = pick_device(device)
    learner.to(target)
    optimizer, params = _optimizer(learner, optimizer, lr)
    schedule = scheduler(optimizer) if scheduler is not None else None
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    run = _Run(learner, folder, config, val_episodes, target)
    learner.train()
    bar = tqdm(range(1, steps + 1), desc="meta-train", disable=not progress_enabled(progress))
    for step in bar:
        value = _step(
            learner, tasks.sample(meta_batch).to(target), optimizer, params, grad_clip, step
        )
        if schedule is not None:
            schedule.step()
        run.history.losses.append(value)
        if step % val_every == 0 or step == steps:
            run.validate(step)
            learner.train()
            run.save("last.pt", step)
        postfix = {"loss": f"{value:.3f}"}
        if run.history.val_results:
            postfix["val"] = f"{run.history.val_results[-1].mean:.3f}"
        bar.set_postfix(postfix, refresh=False)
    return run.history
