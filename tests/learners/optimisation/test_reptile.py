"""Reptile: the update equals its formula, serial and batched."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

import metabook as mb
from metabook.learners.optimisation.reptile import Reptile


def sgd(model, x, y, lr, steps):
    """theta_i' by hand: plain SGD on a copy of the model."""
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
    return [p.detach() for p in model.parameters()]


def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    tasks = mb.data.SineTasks(shots=5, queries=5, seed=0).sample(batch_size=3)
    sx, sy = tasks.support_x.double(), tasks.support_y.double()
    return model, mb.data.Episode(sx, sy, sx, sy, regression=True)


def test_batched_update_equals_the_formula():
    model, batch = setup()
    theta = [p.detach().clone() for p in model.parameters()]
    adapted = [sgd(model, batch.support_x[i], batch.support_y[i], 0.1, 4) for i in range(3)]
    epsilon = 0.3
    expected = [
        t + epsilon * torch.stack([a[k] for a in adapted]).mean(0) - epsilon * t
        for k, t in enumerate(theta)
    ]
    reptile = Reptile(model, inner_lr=0.1, inner_steps=4, loss_fn=F.mse_loss)
    reptile.outer_step(batch, epsilon=epsilon)
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.detach(), e, rtol=0, atol=1e-12)


def test_serial_update_visits_tasks_in_turn():
    model, batch = setup()
    expected_model = copy.deepcopy(model)
    epsilon = 0.5
    for i in range(3):
        adapted = sgd(expected_model, batch.support_x[i], batch.support_y[i], 0.1, 2)
        with torch.no_grad():
            for p, a in zip(expected_model.parameters(), adapted, strict=True):
                p.add_(epsilon * (a - p))
    reptile = Reptile(model, inner_lr=0.1, inner_steps=2, loss_fn=F.mse_loss)
    reptile.outer_step(batch, epsilon=epsilon, serial=True)
    for p, e in zip(model.parameters(), expected_model.parameters(), strict=True):
        torch.testing.assert_close(p, e, rtol=0, atol=1e-12)


def test_surrogate_loss_gradient_is_the_reptile_direction():
    model, batch = setup()
    reptile = Reptile(model, inner_lr=0.1, inner_steps=3, loss_fn=F.mse_loss)
    adapted = [sgd(model, batch.support_x[i], batch.support_y[i], 0.1, 3) for i in range(3)]
    reptile.loss(batch).backward()
    for k, p in enumerate(model.parameters()):
        direction = p.detach() - torch.stack([a[k] for a in adapted]).mean(0)
        torch.testing.assert_close(p.grad, direction, rtol=0, atol=1e-12)
    # so one SGD step of size epsilon on the surrogate is the batched Reptile update
    before = copy.deepcopy(model)
    torch.optim.SGD(model.parameters(), lr=0.3).step()
    Reptile(before, inner_lr=0.1, inner_steps=3, loss_fn=F.mse_loss).outer_step(batch, 0.3)
    for a, b in zip(model.parameters(), before.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_predictions_come_from_the_adapted_parameters():
    model, batch = setup()
    reptile = Reptile(model, inner_lr=0.1, inner_steps=3, loss_fn=F.mse_loss).eval()
    task = batch.task(0)
    adapted = sgd(model, task.support_x, task.support_y, 0.1, 3)
    by_hand = copy.deepcopy(model)
    with torch.no_grad():
        for p, a in zip(by_hand.parameters(), adapted, strict=True):
            p.copy_(a)
    torch.testing.assert_close(reptile.predict(task), by_hand(task.query_x).detach())
    assert torch.equal(reptile.predict(batch)[0], reptile.predict(task))
