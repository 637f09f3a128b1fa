"""Reptile (Nichol, Achiam and Schulman, 2018), chapter "MAML and Reptile: the mathematics".

For each task, run ``k`` steps of plain SGD from the meta-parameters ``theta`` to get
``theta_i'``; then move ``theta`` towards the adapted parameters::

    theta <- theta + epsilon * mean_i (theta_i' - theta)          (batched version)

The serial version visits the tasks one after another, updating ``theta`` after each. No
second derivatives are needed: Reptile only ever differentiates the inner loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metabook.data.episodes import Episode
from metabook.learner import FewShotLearner, per_task
from metabook.maml import LossFn, Params, _check_batchnorm

__all__ = ["Reptile"]


class Reptile(FewShotLearner):
    """Reptile around any ``nn.Module``.

    Args:
        model: the network; its parameters are the meta-parameters ``theta``.
        inner_lr: the step size of the inner SGD steps.
        inner_steps: SGD steps on a task's support set during meta-training ``k``.
        test_steps: SGD steps at test time (default: ``inner_steps``).
        loss_fn: the inner loss, e.g. ``F.cross_entropy`` or ``F.mse_loss``.

    Use :meth:`outer_step` (batched or serial) with the outer step size ``epsilon``, or the
    shared training loop: :meth:`loss` returns ``0.5 * ||theta - mean_i theta_i'||^2`` with
    the adapted parameters held constant, whose gradient is exactly
    ``theta - mean_i theta_i'``, so one SGD step of size ``epsilon`` on it is the batched
    Reptile update (and Adam on it is Reptile with Adam as the outer optimiser).
    """

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.1,
        inner_steps: int = 5,
        test_steps: int | None = None,
        loss_fn: LossFn = F.cross_entropy,
    ) -> None:
        super().__init__()
        if inner_steps < 1:
            raise ValueError(f"Reptile needs inner_steps >= 1, got {inner_steps}")
        _check_batchnorm(model)
        self.model = model
        self.inner_lr, self.inner_steps = float(inner_lr), inner_steps
        self.test_steps = inner_steps if test_steps is None else test_steps
        self.loss_fn = loss_fn

    def adapt(
        self, support_x: torch.Tensor, support_y: torch.Tensor, steps: int | None = None
    ) -> Params:
        """``theta_i'``: the parameters after ``steps`` SGD steps on one task (no graph)."""
        steps = (self.inner_steps if self.training else self.test_steps) if steps is None else steps
        params = {n: p.detach() for n, p in self.model.named_parameters()}
        names = list(params)
        with torch.enable_grad():
            for _ in range(steps):
                leaves = {n: p.requires_grad_() for n, p in params.items()}
                loss = self.loss_fn(functional_call(self.model, leaves, (support_x,)), support_y)
                grads = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
                params = {
                    n: (leaves[n] - self.inner_lr * g if g is not None else leaves[n]).detach()
                    for n, g in zip(names, grads, strict=True)
                }
        return params

    def _tasks(self, episode: Episode) -> list[Episode]:
        if episode.batched:
            return [episode.task(i) for i in range(episode.num_tasks)]
        return [episode]

    def _mean_adapted(self, tasks: list[Episode]) -> Params:
        """``mean_i theta_i'`` over tasks, each adapted from the current ``theta``."""
        adapted = [self.adapt(t.support_x, t.support_y) for t in tasks]
        return {name: torch.stack([a[name] for a in adapted]).mean(0) for name in adapted[0]}

    def forward(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """Fine-tune on each task's support set and predict its queries."""
        return per_task(
            lambda sx, sy, qx: functional_call(self.model, self.adapt(sx, sy), (qx,)),
            support_x,
            support_y,
            query_x,
        )

    def predict(self, episode: Episode) -> torch.Tensor:
        with torch.no_grad():
            out = self(episode.support_x, episode.support_y, episode.query_x)
        return out if episode.regression else out.argmax(-1)

    def loss(self, episode: Episode) -> torch.Tensor:
        """``0.5 * ||theta - mean_i theta_i'||^2``: its gradient is the Reptile direction."""
        target = self._mean_adapted(self._tasks(episode))
        return sum(
            0.5 * (theta - target[name]).pow(2).sum()
            for name, theta in self.model.named_parameters()
        )

    @torch.no_grad()
    def outer_step(self, episode: Episode, epsilon: float, serial: bool = False) -> None:
        """Apply the Reptile update for a batch of tasks in place.

        Batched: ``theta <- theta + epsilon * mean_i (theta_i' - theta)``, every
        ``theta_i'`` adapted from the same ``theta``. Serial: for each task in turn,
        ``theta <- theta + epsilon * (theta_i' - theta)``.
        """
        tasks = self._tasks(episode)
        params = dict(self.model.named_parameters())
        if serial:
            for task in tasks:
                adapted = self.adapt(task.support_x, task.support_y)
                for name, theta in params.items():
                    theta.add_(adapted[name] - theta, alpha=epsilon)
            return
        mean = self._mean_adapted(tasks)
        for name, theta in params.items():
            theta.add_(mean[name] - theta, alpha=epsilon)
