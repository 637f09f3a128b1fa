"""Reptile (Nichol, Achiam and Schulman, 2018), chapter "MAML and Reptile: the mathematics".

For each task, run ``k`` steps of plain SGD from the meta-parameters ``theta`` to get
``theta_i'``; then move ``theta`` towards the adapted parameters::

    theta <- theta + epsilon * mean_i (theta_i' - theta)          (batched version)

The serial version visits the tasks one after another, updating ``theta`` after each. No
second derivatives are needed: Reptile only ever differentiates the inner loss.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metabook._compat import renamed_arguments
from metabook.data.episodes import Episode
from metabook.learners.base import FewShotLearner, _each_query_of_adapted, per_task
from metabook.learners.optimisation.maml import _check_batchnorm
from metabook.learners.sgd import LossFn, Params, inner_loop

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

    needs_head: ClassVar[bool] = True

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

    @renamed_arguments(steps="inner_steps")
    def adapt(
        self, support_x: torch.Tensor, support_y: torch.Tensor, inner_steps: int | None = None
    ) -> Params:
        """``theta_i'``: the parameters after ``inner_steps`` SGD steps on one task (by
        default ``inner_steps`` in training mode, ``test_steps`` in eval mode), with no graph
        to ``theta``."""
        if inner_steps is None:
            inner_steps = self.inner_steps if self.training else self.test_steps

        def support_loss(params: Params, step: int) -> torch.Tensor:
            return self.loss_fn(functional_call(self.model, params, (support_x,)), support_y)

        theta = {n: p.detach() for n, p in self.model.named_parameters()}
        adapted = inner_loop(support_loss, theta, inner_steps, self.inner_lr)
        return {n: p.detach() for n, p in adapted.items()}

    def _tasks(self, episode: Episode) -> list[Episode]:
        if episode.batched:
            return [episode.task(i) for i in range(episode.num_tasks)]
        return [episode]

    def _mean_adapted(self, tasks: list[Episode]) -> Params:
        """``mean_i theta_i'`` over tasks, each adapted from the current ``theta``."""
        adapted = [self.adapt(t.support_x, t.support_y) for t in tasks]
        return {name: torch.stack([a[name] for a in adapted]).mean(0) for name in adapted[0]}

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        ways: int | None = None,
    ) -> torch.Tensor:
        """Fine-tune on each task's support set and predict its queries."""
        return per_task(
            lambda sx, sy, qx: functional_call(self.model, self.adapt(sx, sy), (qx,)),
            support_x,
            support_y,
            query_x,
        )

    def predict_each(self, episode: Episode) -> torch.Tensor:
        """Each query on its own: adapt once to the support set, then predict the queries
        one at a time, each in one batch with the support set
        (:func:`~metabook.learners.base.each_query_after`)."""
        return _each_query_of_adapted(self.model, self.adapt, episode)

    def loss(self, episode: Episode) -> torch.Tensor:
        """``0.5 * ||theta - mean_i theta_i'||^2``: its gradient is the Reptile direction."""
        target = self._mean_adapted(self._tasks(episode))
        squares = [
            (theta - target[name]).pow(2).sum() for name, theta in self.model.named_parameters()
        ]
        return 0.5 * torch.stack(squares).sum()

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
