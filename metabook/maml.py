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
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint

from metabook.data.episodes import Episode, is_batched
from metabook.learner import FewShotLearner, per_task

__all__ = ["MAML", "MetaSGD", "without_running_stats"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Params = dict[str, torch.Tensor]


def _batchnorms(model: nn.Module, tracking: bool | None = None) -> Iterator[tuple[str, nn.Module]]:
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
        module.running_mean = None
        module.running_var = None
        module.num_batches_tracked = None
    return model


def _check_batchnorm(model: nn.Module) -> None:
    for name, _ in _batchnorms(model, tracking=True):
        raise ValueError(
            f"BatchNorm layer {name!r} keeps running statistics, which every task would "
            "share and mutate. Build it with track_running_stats=False (as "
            "metabook.models.Conv4 does) or wrap metabook.maml.without_running_stats(model)"
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
        if batching not in ("auto", "loop", "vmap"):
            raise ValueError(f"batching must be 'auto', 'loop' or 'vmap', got {batching!r}")
        self.batching = batching
        self._has_conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
        self._has_norm = any(True for _ in _batchnorms(model))
        if batching == "vmap" and self._has_norm:
            raise ValueError(
                "batching='vmap' gives wrong second-order gradients through BatchNorm "
                "(pytorch/functorch issue 534); use batching='loop' or 'auto' for this model"
            )
        if batch_norm not in ("batch", "per_step"):
            raise ValueError(f"batch_norm must be 'batch' or 'per_step', got {batch_norm!r}")
        self.batch_norm = batch_norm
        if checkpoint_steps and batch_norm == "per_step":
            raise ValueError(
                "checkpoint_steps recomputes inner steps, which would update the per-step "
                "BatchNorm statistics twice; use one or the other"
            )
        self.checkpoint_steps = checkpoint_steps
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
        names = [name for name, _ in model.named_parameters()]
        if adapt is None:
            frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
            if frozen:
                raise ValueError(
                    f"parameters {frozen} are frozen (requires_grad=False) but MAML adapts "
                    "every parameter by default: unfreeze them, or pass adapt=[...] with the "
                    "names of the parameters to adapt"
                )
            self.adapted_names = names
        else:
            unknown = [n for n in adapt if n not in names]
            if unknown:
                raise ValueError(f"adapt names unknown parameters {unknown}; the model has {names}")
            frozen = [n for n, p in model.named_parameters() if n in adapt and not p.requires_grad]
            if frozen:
                raise ValueError(
                    f"parameters {frozen} are frozen (requires_grad=False) and cannot be adapted"
                )
            self.adapted_names = list(adapt)

    # -- the inner loop -------------------------------------------------------------------
    def inner_lrs(self) -> dict[str, torch.Tensor | float]:
        """The step size of each adapted parameter (a scalar for MAML)."""
        return dict.fromkeys(self.adapted_names, self.inner_lr)

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

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        steps: int | None = None,
        create_graph: bool | None = None,
    ) -> Params:
        """Parameters adapted to one task by ``steps`` gradient steps on its support set.

        With ``create_graph`` (the default during second-order meta-training) the result
        is differentiable through the inner loop, Hessian terms included.
        """
        steps = (self.inner_steps if self.training else self.test_steps) if steps is None else steps
        if create_graph is None:
            create_graph = not self.first_order and torch.is_grad_enabled()
        params = self._params()
        lrs = self.inner_lrs()
        names = self.adapted_names

        def inner_step(step: int, *fast: torch.Tensor) -> tuple[torch.Tensor, ...]:
            current = {**params, **dict(zip(names, fast, strict=True))}
            loss = self.loss_fn(self._call(current, support_x, step), support_y)
            grads = torch.autograd.grad(loss, fast, create_graph=create_graph, allow_unused=True)
            unused = [n for n, g in zip(names, grads, strict=True) if g is None]
            if unused:
                raise ValueError(
                    f"parameters {unused} do not affect the inner-loop loss (step {step}); "
                    "exclude them with adapt=[...] or check the model"
                )
            return tuple(p - lrs[n] * g for n, p, g in zip(names, fast, grads, strict=True))

        fast = tuple(params[n] for n in names)
        with torch.enable_grad():
            for step in range(steps):
                if self.checkpoint_steps and create_graph:
                    fast = checkpoint(inner_step, step, *fast, use_reentrant=False)
                else:
                    fast = inner_step(step, *fast)
        return {**params, **dict(zip(names, fast, strict=True))}

    def _adapt_and_predict_vmapped(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        steps: int,
        create_graph: bool,
    ) -> torch.Tensor:
        """Adapt every task of a batch at once: ``vmap`` over tasks of ``func.grad`` steps."""
        params = self._params()
        lrs = self.inner_lrs()
        names = self.adapted_names

        def one_task(sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor) -> torch.Tensor:
            current = params
            for _ in range(steps):

                def inner_loss(fast: Params, base: Params = current) -> torch.Tensor:
                    return self.loss_fn(self._call({**base, **fast}, sx), sy)

                grads = torch.func.grad(inner_loss)({n: current[n] for n in names})
                if not create_graph:
                    grads = {n: g.detach() for n, g in grads.items()}
                current = {**current, **{n: current[n] - lrs[n] * grads[n] for n in names}}
            return self._call(current, qx)

        return torch.func.vmap(one_task, randomness="different")(support_x, support_y, query_x)

    def _use_vmap(self) -> bool:
        if self.batching != "auto":
            return self.batching == "vmap"
        return not (self._has_conv or self._has_norm)

    # -- the learner interface ------------------------------------------------------------
    def forward(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """Adapt to each task's support set and predict its queries."""
        if is_batched(support_x, support_y) and self._use_vmap():
            steps = self.inner_steps if self.training else self.test_steps
            create_graph = not self.first_order and torch.is_grad_enabled()
            return self._adapt_and_predict_vmapped(
                support_x, support_y, query_x, steps, create_graph
            )
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

    def inner_lrs(self) -> dict[str, torch.Tensor | float]:
        return dict(zip(self.adapted_names, self.lrs, strict=True))
