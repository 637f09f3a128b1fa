"""The one inner loop: SGD steps by hand, the second-order Jacobian (I - alpha A)^k of a
quadratic, first order, recomputed steps, vmap, step sizes per parameter and the errors."""

from __future__ import annotations

import pytest
import torch

from metabook.learners.sgd import gradients, inner_loop, sgd_step


def quadratic(seed: int = 0, d: int = 3):
    """``L(theta) = 1/2 theta^T A theta - b^T theta`` with ``A`` symmetric positive definite:
    the gradient is ``A theta - b``, the Hessian ``A``."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(d, d, generator=g, dtype=torch.float64)
    a = m @ m.T / d + torch.eye(d, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)

    def loss(params, step):
        theta = params["theta"]
        return 0.5 * theta @ a @ theta - b @ theta

    return a, b, loss


def test_one_step_by_hand():
    a, b, loss = quadratic()
    theta = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    other = torch.ones(2)
    new = sgd_step(loss, {"theta": theta, "other": other}, 0.1, names=["theta"])
    torch.testing.assert_close(new["theta"], theta - 0.1 * (a @ theta - b))
    assert new["other"] is other  # parameters not adapted are passed through


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_the_jacobian_of_k_steps_is_the_product_of_i_minus_alpha_a(steps):
    """theta_k = (I - alpha A) theta_{k-1} + alpha b, so d theta_k / d theta_0 =
    (I - alpha A)^k with the second-order graph, and I to first order."""
    a, b, loss = quadratic()
    alpha, eye = 0.1, torch.eye(3, dtype=torch.float64)
    theta0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    expected_value = theta0
    for _ in range(steps):
        expected_value = expected_value - alpha * (a @ expected_value - b)

    def run(theta, create_graph, checkpoint=False):
        out = inner_loop(loss, {"theta": theta}, steps, alpha, None, create_graph, checkpoint)
        return out["theta"]

    for create_graph, checkpoint, expected in (
        (True, False, torch.linalg.matrix_power(eye - alpha * a, steps)),
        (True, True, torch.linalg.matrix_power(eye - alpha * a, steps)),
        (False, False, eye),
    ):
        value = run(theta0.clone().requires_grad_(), create_graph, checkpoint)
        torch.testing.assert_close(value.detach(), expected_value)
        jacobian = torch.autograd.functional.jacobian(
            lambda t, cg=create_graph, cp=checkpoint: run(t, cg, cp), theta0.clone()
        )
        torch.testing.assert_close(jacobian, expected)


def test_functional_steps_under_vmap_equal_one_task_at_a_time():
    a, _, _ = quadratic()
    targets = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    theta = torch.zeros(3, dtype=torch.float64, requires_grad=True)

    def adapted(target, functional):
        def loss(params, step):
            diff = params["theta"] - target
            return 0.5 * diff @ a @ diff

        out = inner_loop(loss, {"theta": theta}, 2, 0.2, create_graph=True, functional=functional)
        return out["theta"]

    batched = torch.func.vmap(lambda t: adapted(t, True))(targets)
    looped = torch.stack([adapted(t, False) for t in targets])
    torch.testing.assert_close(batched, looped)
    (g_batched,) = torch.autograd.grad(batched.pow(2).sum(), theta)
    (g_looped,) = torch.autograd.grad(looped.pow(2).sum(), theta)
    torch.testing.assert_close(g_batched, g_looped)  # the same second-order meta-gradient


def test_step_sizes_per_parameter_and_detached_parameters():
    a, b, loss = quadratic()
    theta = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)  # requires no gradient
    lrs = {"theta": torch.tensor([0.1, 0.0, -0.1], dtype=torch.float64)}
    new = inner_loop(loss, {"theta": theta}, 1, lrs)
    torch.testing.assert_close(new["theta"], theta - lrs["theta"] * (a @ theta - b))
    assert inner_loop(loss, {"theta": theta}, 0, 0.1)["theta"] is theta  # zero steps


def test_mistakes_are_named():
    _, _, loss = quadratic()
    theta = torch.ones(3, dtype=torch.float64, requires_grad=True)
    spare = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match=r"\['spare'\] do not affect the inner-loop loss"):
        sgd_step(loss, {"theta": theta, "spare": spare}, 0.1)
    with pytest.raises(ValueError, match="non-negative"):
        inner_loop(loss, {"theta": theta}, -1, 0.1)
    with pytest.raises(ValueError, match="functional=False"):
        inner_loop(loss, {"theta": theta}, 1, 0.1, checkpoint=True, functional=True)
    grads = gradients(loss({"theta": theta}, 0), {"theta": theta}, ["theta"])
    assert set(grads) == {"theta"}
