"""A learned optimiser: the Meta-LSTM of Ravi and Larochelle (2017), an optimisation-based
meta-learner (taught in the chapter "Model-based meta-learning").

The update of gradient descent, ``theta_t = theta_{t-1} - alpha * grad_t``, looks like the
cell-state update of an LSTM, ``c_t = f_t * c_{t-1} + i_t * c~_t``, with the cell state
``c_t = theta_t``, the candidate ``c~_t = -grad_t``, the forget gate ``f_t = 1`` and the
input gate ``i_t = alpha``. The Meta-LSTM *learns* the two gates, per parameter and per
step, from the gradient, the loss, the current parameter and the previous gate:

    i_t = sigmoid(W_I [h_t, theta_{t-1}, i_{t-1}] + b_I)      (a learned learning rate)
    f_t = sigmoid(W_F [h_t, theta_{t-1}, f_{t-1}] + b_F)      (a learned weight decay)

where ``h_t`` is the hidden state of an ordinary LSTM that reads the preprocessed gradient
and loss. As in the paper the meta-learner is *coordinate-wise*: the same small network
runs on every parameter of the learner independently (a batch of one row per parameter),
so its size does not depend on the learner's (2,126 weights with ``lstm_size=20``), and
the learner's initial parameters (the initial cell state ``c_0``) are meta-learned too. Gradients
flowing into the meta-learner through the learner's gradients are ignored (the paper's
simplification): ``grad_t`` and the loss are inputs, not functions to differentiate.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metabook._compat import renamed_arguments, warn_deprecated
from metabook.data.episodes import Episode
from metabook.learners.base import FewShotLearner, _each_query_of_adapted, per_task
from metabook.learners.optimisation.maml import _check_batchnorm
from metabook.learners.sgd import LossFn, gradients

__all__ = ["MetaLSTM", "MetaLSTMCell", "preprocess"]


def preprocess(x: torch.Tensor, p: float = 10.0) -> torch.Tensor:
    """The gradient preprocessing of Andrychowicz et al. (2016): ``x [...]`` to ``[..., 2]``.

    ``(log|x| / p, sign x)`` when ``|x| >= exp(-p)``, else ``(-1, exp(p) x)``: magnitudes
    spanning many orders become inputs of order one, and the sign survives.
    """
    big = x.abs() >= math.exp(-p)
    first = torch.where(big, x.abs().clamp_min(1e-38).log() / p, torch.full_like(x, -1.0))
    second = torch.where(big, torch.sign(x), x * math.exp(p))
    return torch.stack([first, second], dim=-1)


class MetaLSTMCell(nn.Module):
    """The coordinate-wise update rule: one step maps ``(theta, grad, loss)`` to new
    parameters through learned input and forget gates.

    Args:
        lstm_size: hidden size of the first-layer LSTM that reads the preprocessed gradient
            and loss.
        input_bias, forget_bias: ranges of the initial gate biases (the paper starts with a
            forget gate near one and a small input gate, that is plain gradient descent with
            a small learning rate).
    """

    @renamed_arguments(hidden="lstm_size")
    def __init__(
        self,
        lstm_size: int = 20,
        input_bias: tuple[float, float] = (-5.0, -4.0),
        forget_bias: tuple[float, float] = (4.0, 6.0),
    ) -> None:
        super().__init__()
        self.lstm_size = lstm_size
        self.lstm = nn.LSTMCell(4, lstm_size)
        self.input_gate = nn.Linear(lstm_size + 2, 1)
        self.forget_gate = nn.Linear(lstm_size + 2, 1)
        with torch.no_grad():
            for gate in (self.input_gate, self.forget_gate):
                gate.weight.uniform_(-0.01, 0.01)
            self.input_gate.bias.uniform_(*input_bias)
            self.forget_gate.bias.uniform_(*forget_bias)

    def initial_state(self, theta: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(h, c, i, f)`` for parameters ``theta [P]``: zeros, as in the paper."""
        n = theta.shape[0]
        zeros = theta.new_zeros(n, self.lstm_size)
        return zeros, zeros.clone(), theta.new_zeros(n, 1), theta.new_zeros(n, 1)

    def forward(
        self,
        theta: torch.Tensor,
        grad: torch.Tensor,
        loss: torch.Tensor,
        state: tuple[torch.Tensor, ...],
        gates: tuple[float, float] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One update of the flat parameters ``theta [P]`` given their gradient ``[P]`` and
        the scalar loss. ``gates=(i, f)`` fixes the gates (``(lr, 1)`` is plain SGD).
        Returns the new parameters and state ``(h, c, i, f)``."""
        h, c, i_prev, f_prev = state
        inputs = torch.cat(
            [preprocess(grad), preprocess(loss.reshape(1)).expand(grad.shape[0], 2)], dim=-1
        )
        h, c = self.lstm(inputs, (h, c))
        if gates is None:
            column = theta.unsqueeze(-1)
            i = torch.sigmoid(self.input_gate(torch.cat([h, column, i_prev], dim=-1)))
            f = torch.sigmoid(self.forget_gate(torch.cat([h, column, f_prev], dim=-1)))
        else:
            i, f = (torch.full_like(i_prev, float(g)) for g in gates)
        new_theta = f.squeeze(-1) * theta - i.squeeze(-1) * grad
        return new_theta, (h, c, i, f)


class MetaLSTM(FewShotLearner):
    """Optimisation as a model for few-shot learning (Ravi and Larochelle, 2017).

    Args:
        model: the learner network, ending in a ``ways``-way head (e.g.
            ``Conv4(out_features=5, channels=32)``); its parameters are the meta-learned
            initial cell state. BatchNorm layers must keep no running statistics.
        inner_steps: updates of the learner on the support set per episode.
        lstm_size: hidden size of the coordinate-wise LSTM.
        loss_fn: the learner's loss (cross-entropy by default).

    After each forward, ``last_gates`` holds, for every update step, the mean input
    and forget gate of each parameter tensor of the learner (the learned learning rates and
    decays), for plots.
    """

    needs_head: ClassVar[bool] = True

    @renamed_arguments(steps="inner_steps", hidden="lstm_size")
    def __init__(
        self,
        model: nn.Module,
        inner_steps: int = 5,
        lstm_size: int = 20,
        loss_fn: LossFn = F.cross_entropy,
    ) -> None:
        super().__init__()
        if inner_steps < 1:
            raise ValueError(f"inner_steps must be at least 1, got {inner_steps}")
        _check_batchnorm(model)
        self.model, self.inner_steps, self.loss_fn = model, inner_steps, loss_fn
        self.cell = MetaLSTMCell(lstm_size)
        self._gate_means: list[torch.Tensor] = []  # per step, [tensors, 2], on the device

    @property
    def steps(self) -> int:
        """Deprecated name of ``inner_steps``."""
        warn_deprecated("MetaLSTM.steps", "MetaLSTM.inner_steps")
        return self.inner_steps

    @property
    def last_gates(self) -> list[dict[str, tuple[float, float]]]:
        """The mean (input, forget) gate of each parameter tensor, one dict per update step
        of the last forward pass.

        Built on demand, so training never waits for the device to report the gates.
        """
        names = [name for name, _ in self.model.named_parameters()]
        return [
            {n: (float(i), float(f)) for n, (i, f) in zip(names, step.tolist(), strict=True)}
            for step in self._gate_means
        ]

    def _unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        params, start = {}, 0
        for name, p in self.model.named_parameters():
            params[name] = theta[start : start + p.numel()].view_as(p)
            start += p.numel()
        return params

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        gates: tuple[float, float] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The learner's parameters after ``inner_steps`` updates on one task's support set.

        ``gates=(i, f)`` replaces the learned gates by constants: ``(lr, 1.0)`` is exactly
        ``inner_steps`` steps of gradient descent with learning rate ``lr``.
        """
        theta = torch.cat([p.reshape(-1) for p in self.model.parameters()])
        state = self.cell.initial_state(theta)
        sizes = [p.numel() for p in self.model.parameters()]
        self._gate_means = []
        for _ in range(self.inner_steps):
            with torch.enable_grad():
                leaf = {"theta": theta.detach().requires_grad_(True)}
                out = functional_call(self.model, self._unflatten(leaf["theta"]), (support_x,))
                loss = self.loss_fn(out, support_y)
                grad = gradients(loss, leaf, ["theta"])["theta"]
            theta, state = self.cell(theta, grad, loss.detach(), state, gates)
            i, f = (g.detach().squeeze(-1).split(sizes) for g in state[2:])
            self._gate_means.append(
                torch.stack([torch.stack([a.mean(), b.mean()]) for a, b in zip(i, f, strict=True)])
            )
        return self._unflatten(theta)

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        ways: int | None = None,
    ) -> torch.Tensor:
        """Adapt to each task's support set with the learned update and predict its queries."""

        def task(sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor) -> torch.Tensor:
            return functional_call(self.model, self.adapt(sx, sy), (qx,))

        return per_task(task, support_x, support_y, query_x)

    def predict_each(self, episode: Episode) -> torch.Tensor:
        """Each query on its own: adapt once to the support set, then predict the queries
        one at a time, each in one batch with the support set
        (:func:`~metabook.learners.base.each_query_after`)."""
        return _each_query_of_adapted(self.model, self.adapt, episode)
