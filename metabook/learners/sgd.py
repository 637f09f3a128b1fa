"""The inner loop of optimisation-based meta-learning: SGD on a dictionary of parameters.

MAML, Meta-SGD and Reptile (chapter "MAML and Reptile: the mathematics") and MAML for
policies (chapter "Applications") all adapt to a task the same way: a few steps of
gradient descent on the task's loss, starting from the meta-parameters ``theta``::

    theta_0 = theta,     theta_{j+1} = theta_j - alpha * grad L(theta_j)

They differ in what they do with the result, and that is decided here once:

* ``create_graph=True`` keeps every step differentiable, so the meta-gradient of a loss at
  the adapted parameters includes the Hessian terms ``(I - alpha H_j)`` (second-order MAML);
  with ``False`` the gradients are constants and the adapted parameters depend on ``theta``
  only through the identity (first-order MAML), or not at all when ``theta`` itself is
  detached (Reptile).
* ``checkpoint=True`` keeps only each step's input parameters and recomputes the step in
  the backward pass (``torch.utils.checkpoint``): the same meta-gradient for less memory.
* ``functional=True`` takes the gradients with :func:`torch.func.grad` instead of
  :func:`torch.autograd.grad`, so that the loop runs inside :func:`torch.func.vmap` (one
  adaptation per task of a batch, all at once).

Parameters are a dictionary ``name -> tensor`` (:data:`Params`) as
:func:`torch.func.functional_call` takes them; the model is never modified.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch.utils.checkpoint import checkpoint as recompute

__all__ = ["LossFn", "Params", "StepLoss", "gradients", "inner_loop", "sgd_step"]

#: Parameters by name, as :func:`torch.func.functional_call` takes them.
Params = dict[str, torch.Tensor]
#: A loss of predictions and targets, e.g. :func:`torch.nn.functional.cross_entropy`.
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: The inner loss of a task at inner step ``step`` for parameters ``params``.
StepLoss = Callable[[Params, int], torch.Tensor]
#: One step size for every parameter, or one per parameter name (a scalar or a tensor of
#: the parameter's shape, as Meta-SGD learns).
StepSizes = float | Mapping[str, "torch.Tensor | float"]


def gradients(
    loss: torch.Tensor, params: Params, names: Sequence[str], create_graph: bool = False
) -> Params:
    """``d loss / d params[name]`` for each of ``names``, with :func:`torch.autograd.grad`.

    A parameter that does not affect the loss is an error (it would silently never adapt):
    the message names it.
    """
    grads = torch.autograd.grad(
        loss, [params[n] for n in names], create_graph=create_graph, allow_unused=True
    )
    unused = [n for n, g in zip(names, grads, strict=True) if g is None]
    if unused:
        raise ValueError(
            f"parameters {unused} do not affect the inner-loop loss; exclude them from the "
            "adapted parameters or check the model"
        )
    return dict(zip(names, grads, strict=True))


def _step_size(lr: StepSizes, name: str) -> torch.Tensor | float:
    return lr if isinstance(lr, float | int) else lr[name]


def sgd_step(
    loss_of: StepLoss,
    params: Params,
    lr: StepSizes,
    names: Sequence[str] | None = None,
    step: int = 0,
    create_graph: bool = False,
    functional: bool = False,
) -> Params:
    """One step ``theta - lr * grad L(theta)`` of the parameters ``names`` (default: all);
    the others are returned unchanged. ``loss_of(params, step)`` is the inner loss."""
    names = list(params) if names is None else list(names)
    if functional:

        def loss_of_adapted(fast: Params) -> torch.Tensor:
            return loss_of({**params, **fast}, step)

        grads = torch.func.grad(loss_of_adapted)({n: params[n] for n in names})
        if not create_graph:
            grads = {n: g.detach() for n, g in grads.items()}
    else:
        grads = gradients(loss_of(params, step), params, names, create_graph)
    return {**params, **{n: params[n] - _step_size(lr, n) * grads[n] for n in names}}


def inner_loop(
    loss_of: StepLoss,
    params: Params,
    steps: int,
    lr: StepSizes,
    names: Sequence[str] | None = None,
    create_graph: bool = False,
    checkpoint: bool = False,
    functional: bool = False,
) -> Params:
    """``steps`` steps of :func:`sgd_step` from ``params``; see the module docstring for
    ``create_graph``, ``checkpoint`` and ``functional``.

    Parameters that do not require gradients (a detached copy of ``theta``, as in Reptile)
    are made leaves that do, so that their gradients can be taken; gradients are always
    enabled inside the loop, even under :func:`torch.no_grad`.
    """
    if steps < 0:
        raise ValueError(f"steps must be non-negative, got {steps}")
    names = list(params) if names is None else list(names)
    if checkpoint and functional:
        raise ValueError("checkpoint=True recomputes steps with autograd; use functional=False")
    if not functional and steps > 0:
        params = {
            n: p if n not in names or p.requires_grad else p.detach().requires_grad_()
            for n, p in params.items()
        }
    with torch.enable_grad():
        for step in range(steps):
            if checkpoint and create_graph:
                params = _recomputed_step(loss_of, params, lr, names, step)
            else:
                params = sgd_step(loss_of, params, lr, names, step, create_graph, functional)
    return params


def _recomputed_step(
    loss_of: StepLoss, params: Params, lr: StepSizes, names: list[str], step: int
) -> Params:
    """A second-order :func:`sgd_step` whose intermediate values are recomputed in the
    backward pass instead of being stored."""

    def run(*fast: torch.Tensor) -> tuple[torch.Tensor, ...]:
        current = {**params, **dict(zip(names, fast, strict=True))}
        new = sgd_step(loss_of, current, lr, names, step, create_graph=True)
        return tuple(new[n] for n in names)

    adapted = recompute(run, *(params[n] for n in names), use_reentrant=False)
    return {**params, **dict(zip(names, adapted, strict=True))}
