"""MAML, first-order MAML and Meta-SGD (chapter "MAML and Reptile: the mathematics").

MAML (Finn et al., 2017) meta-learns an initialisation ``theta`` such that a few gradient
steps on a task's support set give good parameters for that task::

    theta_i' = theta - alpha * grad L_support_i(theta)          (inner loop, per task)
    min_theta  sum_i L_query_i(theta_i')                         (outer loop)

The meta-gradient of ``L_query_i(theta_i')`` with respect to ``theta`` is
``(I - alpha * H_i) grad L_query_i(theta_i')`` with ``H_i`` the Hessian of the support loss:
autograd computes it (through Hessian-vector products) when the inner gradient is taken
with ``create_graph=True``. First-order MAML drops the Hessian term.

The implementation is functional: the wrapped model is never modified; the inner loop
(:func:`metabook.learners.sgd.inner_loop`, shared with Reptile and MAML for policies)
runs :func:`torch.func.functional_call` with adapted copies of its parameters.

BatchNorm policy: every BatchNorm layer must normalise with the statistics of the batch it
sees (``track_running_stats=False``, as in :class:`metabook.models.Conv4`). In the inner
loop that is the support set of the task at that step, in the outer loop the query set,
and the same at test time, as in the MAML paper. No running statistics exist, so none can
be shared or mutated across tasks. A model with running statistics is refused with an
error; :func:`without_running_stats` converts a copy.

The option ``batch_norm="per_step"`` (the "per-step batch normalisation running statistics"
of MAML++, Antoniou et al., 2019) instead keeps one set of running statistics per inner step
(and one for the query pass), owned by the learner, never by the model: during
meta-training each step normalises with the batch's statistics and updates its own running
averages; at test time (``eval()``) step ``s`` normalises with the averages of step ``s``,
so predictions no longer depend on the other queries of the episode. The model must then
keep running statistics (``track_running_stats=True``); its own buffers are never touched.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metabook._compat import renamed_arguments
from metabook.data.episodes import Episode, is_batched
from metabook.learners.base import FewShotLearner, each_query_after, per_task
from metabook.learners.sgd import LossFn, Params, StepSizes, inner_loop

__all__ = ["MAML", "MetaSGD", "without_running_stats"]

BATCHINGS = ("auto", "loop", "vmap")
BATCH_NORMS = ("batch", "per_step")


def _batchnorms(
    model: nn.Module, tracking: bool | None = None
) -> Iterator[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    """``(name, module)`` of the BatchNorm layers of ``model``; with ``tracking`` given,
    only those that do (``True``) or do not (``False``) keep running statistics."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and (
            tracking is None or module.track_running_stats == tracking
        ):
            yield name, module


def without_running_stats(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose BatchNorm layers keep no running statistics."""
    model = copy.deepcopy(model)
    for _, module in _batchnorms(model, tracking=True):
        module.track_running_stats = False
        module.register_buffer("running_mean", None)
        module.register_buffer("running_var", None)
        module.register_buffer("num_batches_tracked", None)
    return model


def _check_batchnorm(model: nn.Module) -> None:
    """Refuse a model whose BatchNorm layers keep running statistics (every task would
    share and mutate them)."""
    for name, _ in _batchnorms(model, tracking=True):
        raise ValueError(
            f"BatchNorm layer {name!r} keeps running statistics, which every task would "
            "share and mutate. Build it with track_running_stats=False (as "
            "metabook.models.Conv4 does) or wrap "
            "metabook.learners.optimisation.maml.without_running_stats(model)"
        )


def _adapted_names(model: nn.Module, adapt: Sequence[str] | None) -> list[str]:
    """The names of the parameters the inner loop adapts, checked against ``model``."""
    names = [name for name, _ in model.named_parameters()]
    frozen_all = [n for n, p in model.named_parameters() if not p.requires_grad]
    if adapt is None:
        if frozen_all:
            raise ValueError(
                f"parameters {frozen_all} are frozen (requires_grad=False) but MAML adapts "
                "every parameter by default: unfreeze them, or pass adapt=[...] with the "
                "names of the parameters to adapt"
            )
        return names
    unknown = [n for n in adapt if n not in names]
    if unknown:
        raise ValueError(f"adapt names unknown parameters {unknown}; the model has {names}")
    frozen = [n for n in adapt if n in frozen_all]
    if frozen:
        raise ValueError(
            f"parameters {frozen} are frozen (requires_grad=False) and cannot be adapted"
        )
    return list(adapt)


def _check_options(batching: str, batch_norm: str, checkpoint_steps: bool, has_norm: bool) -> None:
    if batching not in BATCHINGS:
        raise ValueError(f"batching must be 'auto', 'loop' or 'vmap', got {batching!r}")
    if batching == "vmap" and has_norm:
        raise ValueError(
            "batching='vmap' gives wrong second-order gradients through BatchNorm "
            "(pytorch/functorch issue 534); use batching='loop' or 'auto' for this model"
        )
    if batch_norm not in BATCH_NORMS:
        raise ValueError(f"batch_norm must be 'batch' or 'per_step', got {batch_norm!r}")
    if checkpoint_steps and batch_norm == "per_step":
        raise ValueError(
            "checkpoint_steps recomputes inner steps, which would update the per-step "
            "BatchNorm statistics twice; use one or the other"
        )


class MAML(FewShotLearner):
    """Model-agnostic meta-learning around any ``nn.Module``.

    Args:
        model: the network ``f_theta``; its parameters are the meta-parameters.
        inner_lr: the inner-loop step size ``alpha``.
        inner_steps: gradient steps on the support set during meta-training.
        first_order: drop the second-order term (first-order MAML).
        loss_fn: the inner-loop loss, e.g. ``F.cross_entropy`` or ``F.mse_loss``; also the
            meta-training loss on the queries.
        adapt: names of the parameters adapted in the inner loop (default: all). The
            others are used unchanged by the inner loop and still meta-learned.
        test_steps: inner steps at test time (default: ``inner_steps``).
        batching: how a batch of episodes is processed: ``"loop"`` adapts one task after
            another with ``torch.autograd.grad``; ``"vmap"`` adapts all tasks at once with
            ``torch.func.vmap`` over ``torch.func.grad`` (matrix products become batched
            products, convolutions grouped ones); ``"auto"`` picks from the measurements
            in ``benchmarks/RESULTS.md``: the loop for convolutional networks (grouped
            convolutions are slower than a loop on CPU), vmap for the others. Models with
            BatchNorm always use the loop: under ``vmap`` the second-order gradient through
            ``batch_norm`` is wrong (tested here; pytorch/functorch issue 534, the batching
            rule of batch_norm's backward), so ``batching="vmap"`` refuses them.
        batch_norm: ``"batch"`` (batch statistics everywhere, the default) or
            ``"per_step"`` (running statistics per inner step, see the module docstring).
        checkpoint_steps: for long second-order inner loops, keep only each step's input
            parameters and recompute the step during the backward pass
            (``torch.utils.checkpoint``): the same gradients for less memory and about one
            more forward pass per step (measured in ``benchmarks/RESULTS.md``).

    Calling the learner, ``maml(support_x, support_y, query_x)``, adapts to the support
    set and returns the adapted model's predictions for the queries, differentiable with
    respect to the model's parameters; with a leading task dimension each task is adapted
    separately. :meth:`adapt` returns the adapted parameters themselves.
    """

    needs_head: ClassVar[bool] = True

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        first_order: bool = False,
        loss_fn: LossFn = F.cross_entropy,
        adapt: Sequence[str] | None = None,
        test_steps: int | None = None,
        batching: str = "auto",
        batch_norm: str = "batch",
        checkpoint_steps: bool = False,
    ) -> None:
        super().__init__()
        if inner_steps < 0 or (test_steps is not None and test_steps < 0):
            raise ValueError("inner_steps and test_steps must be non-negative")
        self._has_conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
        self._has_norm = any(True for _ in _batchnorms(model))
        _check_options(batching, batch_norm, checkpoint_steps, self._has_norm)
        self.batching, self.batch_norm, self.checkpoint_steps = (
            batching,
            batch_norm,
            checkpoint_steps,
        )
        self.model = model
        self._step_buffers: list[dict[str, str]] = []
        if batch_norm == "batch":
            _check_batchnorm(model)
        else:
            self._init_step_buffers(model, inner_steps)
        self.inner_lr = float(inner_lr)
        self.inner_steps = inner_steps
        self.test_steps = inner_steps if test_steps is None else test_steps
        self.first_order = first_order
        self.loss_fn = loss_fn
        self.adapted_names = _adapted_names(model, adapt)

    # -- the inner loop -------------------------------------------------------------------
    def inner_lrs(self) -> StepSizes:
        """The step size of each adapted parameter (one scalar for MAML)."""
        return self.inner_lr

    def _params(self) -> Params:
        return dict(self.model.named_parameters())

    def _init_step_buffers(self, model: nn.Module, inner_steps: int) -> None:
        """Copy every BatchNorm buffer once per inner step and once for the query pass."""
        norm_buffers = [
            f"{name}.{buffer}" if name else buffer
            for name, _ in _batchnorms(model, tracking=True)
            for buffer in ("running_mean", "running_var", "num_batches_tracked")
        ]
        if not norm_buffers:
            raise ValueError(
                "batch_norm='per_step' keeps per-step running statistics of BatchNorm layers, "
                "but the model has no BatchNorm layer with track_running_stats=True"
            )
        buffers = dict(model.named_buffers())
        for step in range(inner_steps + 1):
            names = {}
            for name in norm_buffers:
                key = f"step{step}__{name.replace('.', '__')}"
                self.register_buffer(key, buffers[name].detach().clone())
                names[name] = key
            self._step_buffers.append(names)

    def _call(self, params: Params, x: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """The model with ``params``; ``step`` picks the per-step BatchNorm statistics
        (``None``: those of the query pass)."""
        if not self._step_buffers:
            return functional_call(self.model, params, (x,))
        last = len(self._step_buffers) - 1
        index = last if step is None else min(step, last - 1)
        buffers = {name: getattr(self, key) for name, key in self._step_buffers[index].items()}
        return functional_call(self.model, {**params, **buffers}, (x,))

    def _steps(self, inner_steps: int | None) -> int:
        if inner_steps is not None:
            return inner_steps
        return self.inner_steps if self.training else self.test_steps

    @renamed_arguments(steps="inner_steps")
    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        inner_steps: int | None = None,
        create_graph: bool | None = None,
    ) -> Params:
        """Parameters adapted to one task by ``inner_steps`` gradient steps on its support
        set (by default ``inner_steps`` in training mode, ``test_steps`` in eval mode).

        With ``create_graph`` (the default during second-order meta-training) the result
        is differentiable through the inner loop, Hessian terms included.
        """
        if create_graph is None:
            create_graph = not self.first_order and torch.is_grad_enabled()

        def support_loss(params: Params, step: int) -> torch.Tensor:
            return self.loss_fn(self._call(params, support_x, step), support_y)

        return inner_loop(
            support_loss,
            self._params(),
            self._steps(inner_steps),
            self.inner_lrs(),
            self.adapted_names,
            create_graph=create_graph,
            checkpoint=self.checkpoint_steps,
        )

    def _adapt_and_predict_vmapped(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """Adapt every task of a batch at once: ``vmap`` over tasks of the inner loop."""
        params, lrs, steps = self._params(), self.inner_lrs(), self._steps(None)
        create_graph = not self.first_order and torch.is_grad_enabled()

        def one_task(sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor) -> torch.Tensor:
            def support_loss(current: Params, step: int) -> torch.Tensor:
                return self.loss_fn(self._call(current, sx), sy)

            adapted = inner_loop(
                support_loss, params, steps, lrs, self.adapted_names, create_graph, functional=True
            )
            return self._call(adapted, qx)

        return torch.func.vmap(one_task, randomness="different")(support_x, support_y, query_x)

    def _use_vmap(self) -> bool:
        if self.batching != "auto":
            return self.batching == "vmap"
        return not (self._has_conv or self._has_norm)

    # -- the learner interface ------------------------------------------------------------
    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        ways: int | None = None,
    ) -> torch.Tensor:
        """Adapt to each task's support set and predict its queries (``ways`` is fixed by
        the model's head)."""
        if is_batched(support_x, support_y) and self._use_vmap():
            return self._adapt_and_predict_vmapped(support_x, support_y, query_x)
        return per_task(
            lambda sx, sy, qx: self._call(self.adapt(sx, sy), qx), support_x, support_y, query_x
        )

    def query_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``loss_fn`` on the queries after adaptation (the outer loss)."""
        if target.is_floating_point():
            return self.loss_fn(prediction, target)
        return self.loss_fn(prediction.reshape(-1, prediction.shape[-1]), target.reshape(-1))

    def predict(self, episode: Episode) -> torch.Tensor:
        """Adapt without building a second-order graph, then predict; nothing is kept."""

        def one(sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor) -> torch.Tensor:
            params = self.adapt(sx, sy, create_graph=False)
            with torch.no_grad():
                return self._call(params, qx)

        out = per_task(one, episode.support_x, episode.support_y, episode.query_x)
        out = out.detach()
        return out if episode.regression else out.argmax(-1)

    def predict_each(self, episode: Episode) -> torch.Tensor:
        """Each query on its own: adapt once to the support set, then predict the queries
        one at a time, each in one batch with the support set
        (:func:`~metabook.learners.base.each_query_after`;
        the model's BatchNorm normalises the query with the support set's statistics and
        its own, never with the other queries')."""
        return each_query_after(
            episode, lambda sx, sy: self.adapt(sx, sy, create_graph=False), self._call
        )


class MetaSGD(MAML):
    """Meta-SGD (Li et al., 2017): MAML with a learned step size for every parameter entry.

    ``theta_i' = theta - alpha * grad L_support_i(theta)`` where ``alpha`` has the shape of
    ``theta`` and is meta-learned with it (entries may become negative, changing the
    direction of the step). ``inner_lr`` initialises every entry.
    """

    def __init__(self, model: nn.Module, inner_lr: float = 0.4, **kwargs: Any) -> None:
        """``kwargs`` are those of :class:`MAML` (inner_steps, first_order, loss_fn, ...)."""
        super().__init__(model, inner_lr, **kwargs)
        params = self._params()
        self.lrs = nn.ParameterList(
            [nn.Parameter(torch.full_like(params[n], inner_lr)) for n in self.adapted_names]
        )

    def inner_lrs(self) -> StepSizes:
        """The learned step sizes, one tensor per adapted parameter."""
        return dict(zip(self.adapted_names, self.lrs, strict=True))
