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
    # "Reptile" is no better than the pretrained baseline (both fit the mean wave, which is
    # -(2/pi) E[A] cos x, about -1.62 cos x)
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


def article_reptile_with_a_copy(model, task, inner_steps, optimizer):
    """Article A, section 5.2, with ``theta`` copied *before* the inner loop: the outer
    update itself is unchanged."""
    old_params = [p.detach().clone() for p in model.parameters()]
    for _ in range(inner_steps):
        loss = F.mse_loss(model(task.support_x), task.support_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for i, p in enumerate(model.parameters()):
        p.data = p.data + (p.data - old_params[i].data) / inner_steps


def test_the_article_reptile_with_a_copy_extrapolates_with_epsilon_one_plus_one_over_k():
    """theta' + (theta' - theta)/k = theta + (1 + 1/k)(theta' - theta): epsilon > 1."""
    torch.manual_seed(0)
    start = mb.models.MLP()
    task = mb.data.SineTasks(shots=10, seed=0).sample()
    adapted = copy.deepcopy(start)  # five plain SGD steps: theta'
    optimizer = torch.optim.SGD(adapted.parameters(), lr=0.01)
    for _ in range(5):
        optimizer.zero_grad()
        F.mse_loss(adapted(task.support_x), task.support_y).backward()
        optimizer.step()
    article = copy.deepcopy(start)
    article_reptile_with_a_copy(article, task, 5, torch.optim.SGD(article.parameters(), lr=0.01))
    for theta, theta_prime, new in zip(
        start.parameters(), adapted.parameters(), article.parameters(), strict=True
    ):
        torch.testing.assert_close(new, theta + 1.2 * (theta_prime - theta))


def article_b_maml_forward_pass(task, base_model, learning_rate, loss_function=F.mse_loss):
    """Article B, section 5, with its two lines that fail as printed repaired:
    ``np.zeros_like(base_model.parameters())`` becomes a zero tensor per parameter and
    ``delta_params += grad`` an addition per parameter. ``task`` is a list of
    ``(inputs, outputs)`` sub-tasks."""
    delta_params = [torch.zeros_like(p) for p in base_model.parameters()]
    for inputs, outputs in task:
        predictions = base_model(inputs)
        loss = loss_function(predictions, outputs)
        grad = torch.autograd.grad(loss, base_model.parameters(), create_graph=True)
        delta_params = [d + g for d, g in zip(delta_params, grad, strict=True)]
    return [
        param - learning_rate * grad
        for param, grad in zip(base_model.parameters(), delta_params, strict=True)
    ]


def test_the_article_b_pseudo_code_fails_as_printed():
    np = pytest.importorskip("numpy")
    model = torch.nn.Linear(2, 1)
    delta_params = np.zeros_like(model.parameters())  # a 0-d array holding one 0
    assert delta_params.shape == ()
    grad = torch.autograd.grad(model(torch.ones(1, 2)).sum(), model.parameters())
    with pytest.raises((ValueError, TypeError, RuntimeError)):
        delta_params += grad


def test_the_article_b_maml_forward_pass_is_one_step_of_joint_training_not_maml():
    """theta = 1, f(x) = theta x, sub-tasks (x, y) = (1, 3) and (2, 0), squared loss,
    step 1/8: every value is exact in binary floating point."""
    toy = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        toy.weight.fill_(1.0)
    task = [
        (torch.tensor([[1.0]]), torch.tensor([[3.0]])),
        (torch.tensor([[2.0]]), torch.tensor([[0.0]])),
    ]
    (article,) = article_b_maml_forward_pass(task, toy, learning_rate=0.125)
    # summed gradient 2(1 - 3) + 8 * 1 = 4; one step: 1 - 4/8
    assert article.item() == 0.5
    joint = copy.deepcopy(toy)  # joint training: one SGD step on the summed losses
    optimizer = torch.optim.SGD(joint.parameters(), lr=0.125)
    sum(F.mse_loss(joint(x), y) for x, y in task).backward()
    optimizer.step()
    assert torch.equal(article, joint.weight)
    # MAML (support reused as query): adapted 3/2 and 0; meta-gradient
    # (1 - 2/8) * 2 * (3/2 - 3) + (1 - 8/8) * 8 * 0 = -9/4, the opposite sign
    maml = MAML(copy.deepcopy(toy), inner_lr=0.125, inner_steps=1, loss_fn=F.mse_loss)
    sum(F.mse_loss(maml(x, y, x), y) for x, y in task).backward()
    assert maml.model.weight.grad.item() == -2.25

    # the same identity on the sine network, up to rounding; MAML's meta-gradient differs
    torch.manual_seed(0)
    net = mb.models.MLP()
    sine = mb.data.SineTasks(shots=10, seed=0).sample(4)
    task = [(sine.support_x[i], sine.support_y[i]) for i in range(4)]
    article = article_b_maml_forward_pass(task, net, learning_rate=0.01)
    joint = copy.deepcopy(net)
    optimizer = torch.optim.SGD(joint.parameters(), lr=0.01)
    sum(F.mse_loss(joint(x), y) for x, y in task).backward()
    optimizer.step()
    for a, b in zip(article, joint.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    maml = MAML(copy.deepcopy(net), inner_lr=0.01, inner_steps=1, loss_fn=F.mse_loss)
    sum(F.mse_loss(maml(x, y, x), y) for x, y in task).backward()
    joint_gradient = torch.cat(
        [(p - a).detach().flatten() / 0.01 for p, a in zip(net.parameters(), article, strict=True)]
    )
    maml_gradient = torch.cat([p.grad.flatten() for p in maml.model.parameters()])
    assert (joint_gradient - maml_gradient).norm() > 0.1 * joint_gradient.norm()  # ~0.5 here
