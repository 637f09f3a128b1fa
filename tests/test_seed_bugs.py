"""The seed articles' code, transliterated, against the corrected algorithms, on sine tasks.

Seed 000's PyTorch Reptile reads ``old_params`` after the inner loop has overwritten the
parameters, so its outer update adds zero: training is plain SGD across tasks. The
TensorFlow MAML of seeds 000 and 003 updates the model in place inside one tape (no
second-order path; seed 000 also evaluates on the support set), which amounts to the same
joint training. A model trained that way is a "pretrained" model, not a meta-learned one.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import metabook as mb
from metabook.learners.optimisation.maml import MAML


def seed_reptile(model, task, inner_steps, optimizer):
    """Seed 000, section 5.2, with the missing ``enumerate`` added so that it runs."""
    for _ in range(inner_steps):
        loss = F.mse_loss(model(task.support_x), task.support_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    old_params = list(model.parameters())  # read *after* the inner loop: the same tensors
    for i, p in enumerate(model.parameters()):
        p.data = p.data + (p.data - old_params[i].data) / inner_steps


def post_adaptation_mse(model, test):
    learner = MAML(model, inner_lr=0.01, inner_steps=1, loss_fn=F.mse_loss).eval()
    return mb.evaluate(learner, [test]).mean


def test_the_seed_reptile_update_adds_nothing_and_metabook_moves_towards_the_task():
    torch.manual_seed(0)
    start = mb.models.MLP()
    task = mb.data.SineTasks(shots=10, seed=0).sample()
    seeded = copy.deepcopy(start)
    seed_reptile(seeded, task, 5, torch.optim.SGD(seeded.parameters(), lr=0.01))
    plain = copy.deepcopy(start)  # five plain SGD steps on the task, computed independently
    plain_optimizer = torch.optim.SGD(plain.parameters(), lr=0.01)
    for _ in range(5):
        plain_optimizer.zero_grad()
        F.mse_loss(plain(task.support_x), task.support_y).backward()
        plain_optimizer.step()
    for a, b in zip(seeded.parameters(), plain.parameters(), strict=True):
        assert torch.equal(a, b)  # exactly plain SGD: the seed's "outer update" added zero
    # metabook's Reptile moves theta a fraction epsilon of the way to the adapted parameters
    reptile = mb.Reptile(copy.deepcopy(start), inner_lr=0.01, inner_steps=5, loss_fn=F.mse_loss)
    reptile.outer_step(task, epsilon=0.5)
    for theta, adapted, new in zip(
        start.parameters(), plain.parameters(), reptile.model.parameters(), strict=True
    ):
        torch.testing.assert_close(new, theta + 0.5 * (adapted - theta))


def test_corrected_maml_meta_learns_and_the_seed_code_does_not():
    test = mb.data.SineTasks(shots=10, queries=50, seed=123).sample(batch_size=100)

    torch.manual_seed(0)
    maml = MAML(mb.models.MLP(), inner_lr=0.01, inner_steps=1, loss_fn=F.mse_loss)
    mb.meta_train(
        maml,
        mb.data.SineTasks(seed=0),
        steps=800,
        meta_batch=10,
        lr=3e-3,
        device="cpu",
        progress=False,
    )

    torch.manual_seed(0)
    flawed = mb.models.MLP()
    optimizer = torch.optim.SGD(flawed.parameters(), lr=0.01)
    tasks = mb.data.SineTasks(seed=0)
    for _ in range(1600):
        seed_reptile(flawed, tasks.sample(), 5, optimizer)

    torch.manual_seed(0)
    pretrained = mb.models.MLP()  # the baseline of the MAML paper: joint regression
    optimizer = torch.optim.Adam(pretrained.parameters(), lr=1e-3)
    for _ in range(800):
        batch = tasks.sample(10)
        optimizer.zero_grad()
        F.mse_loss(pretrained(batch.support_x), batch.support_y).backward()
        optimizer.step()

    maml_mse = post_adaptation_mse(maml.model, test)
    flawed_mse = post_adaptation_mse(flawed, test)
    baseline_mse = post_adaptation_mse(pretrained, test)
    # after one gradient step on 10 points, MAML's initialisation is far better; the seed's
    # "Reptile" is no better than the pretrained baseline (both fit the mean wave, ~0)
    assert maml_mse < 0.6 * baseline_mse, (maml_mse, baseline_mse)
    assert flawed_mse > 0.8 * baseline_mse, (flawed_mse, baseline_mse)


def seed_compute_prototypes(support_x, support_y):
    """Seed 004, section 5.2, verbatim."""
    prototypes = []
    for c in set(support_y):
        prototypes.append(support_x[support_y == c].mean(dim=0))
    return torch.stack(prototypes)


def test_the_seed_prototypes_have_one_row_per_example_not_per_class():
    """``set()`` of a tensor keeps every 0-d element (tensors hash by identity)."""
    z = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [2.0, 0.0], [10.0, 2.0], [0.0, 12.0]])
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    seed = seed_compute_prototypes(z, y)
    assert seed.shape == (6, 2)  # 3-way 2-shot: six "prototypes"
    fixed = mb.learners.metric.prototypes(z, y)
    assert fixed.tolist() == [[1.0, 0.0], [10.0, 1.0], [0.0, 11.0]]
    # each seed row is the mean of one example's class, in the set's arbitrary (identity
    # hash) order: an argmax over them indexes an example, not a class
    assert sorted(map(tuple, seed.tolist())) == sorted(map(tuple, fixed[y].tolist()))
    # iterating over the unique values (the minimal fix the chapter names) agrees
    unique = torch.stack([z[y == c].mean(dim=0) for c in y.unique()])
    assert torch.equal(unique, fixed)


def test_the_contrastive_label_read_as_same_class_pushes_the_wrong_pairs():
    """With y = 1 read as 'same class', a same-class pair at distance 0 pays the full margin
    and a different-class pair at distance 0 pays nothing: the gradient pulls the wrong pairs."""
    distance = torch.tensor([0.2], requires_grad=True)
    same_pair = torch.tensor([0])  # metabook: dissimilar = 0
    (pull,) = torch.autograd.grad(
        mb.learners.metric.contrastive_loss(distance, same_pair), distance
    )
    (push,) = torch.autograd.grad(
        mb.learners.metric.contrastive_loss(distance, 1 - same_pair), distance
    )
    assert pull.item() == pytest.approx(2 * 0.2)  # d/dD of D^2: moves the pair together
    assert push.item() == pytest.approx(-2 * (1 - 0.2))  # the seed's reading: apart
