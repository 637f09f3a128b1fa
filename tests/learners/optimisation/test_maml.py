"""MAML and Meta-SGD: closed-form meta-gradients, finite differences, learn2learn as the
oracle, the BatchNorm policy and the errors."""

from __future__ import annotations

import copy
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import metabook as mb
from metabook.data import Episode, EpisodeSampler
from metabook.learners.optimisation.maml import MAML, MetaSGD, without_running_stats
from metabook.models import Conv4
from tests.finite_differences import assert_gradients_match


def linear_task(seed, d=3, n=6, m=5):
    g = torch.Generator().manual_seed(seed)
    xs, xq = torch.randn(n, d, generator=g).double(), torch.randn(m, d, generator=g).double()
    w_true = torch.randn(d, 1, generator=g).double()
    return xs, xs @ w_true, xq, xq @ w_true


def test_second_order_meta_gradient_matches_the_closed_form():
    # f(x) = x w, L(w) = mean((X w - y)^2): grad = 2/n X^T (X w - y), Hessian = 2/n X^T X
    alpha = 0.1
    xs, ys, xq, yq = linear_task(0)
    model = nn.Linear(3, 1, bias=False).double()
    w = model.weight.detach().T.clone()  # [d, 1]

    def grad(x, y, w):
        return 2 / len(x) * x.T @ (x @ w - y)

    hessian = 2 / len(xs) * xs.T @ xs
    w_adapted = w - alpha * grad(xs, ys, w)
    outer = grad(xq, yq, w_adapted)
    expected_second = (torch.eye(3, dtype=torch.float64) - alpha * hessian) @ outer
    expected_first = outer

    for first_order, expected in ((False, expected_second), (True, expected_first)):
        maml = MAML(
            copy.deepcopy(model), inner_lr=alpha, first_order=first_order, loss_fn=F.mse_loss
        )
        adapted = maml.adapt(xs, ys)
        torch.testing.assert_close(adapted["weight"].T, w_adapted, rtol=0, atol=1e-12)
        F.mse_loss(maml(xs, ys, xq), yq).backward()
        torch.testing.assert_close(maml.model.weight.grad.T, expected, rtol=0, atol=1e-10)
    # the two differ by exactly the Hessian term -alpha * H * grad L_query(w')
    torch.testing.assert_close(expected_second - expected_first, -alpha * hessian @ outer)
    assert (expected_second - expected_first).abs().max() > 1e-3  # and it is not negligible


def test_two_step_meta_gradient_against_finite_differences():
    torch.manual_seed(0)
    xs, ys, xq, yq = linear_task(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    maml = MAML(model, inner_lr=0.05, inner_steps=2, loss_fn=F.mse_loss)

    def meta_loss():
        return F.mse_loss(maml(xs, ys, xq), yq)

    meta_loss().backward()
    params = list(model.parameters())
    assert_gradients_match(meta_loss, params, [p.grad for p in params])


def test_metasgd_learning_rates_get_the_finite_difference_gradient():
    xs, ys, xq, yq = linear_task(2)
    learner = MetaSGD(nn.Linear(3, 1).double(), inner_lr=0.1, loss_fn=F.mse_loss)
    F.mse_loss(learner(xs, ys, xq), yq).backward()
    lr = learner.lrs[0]
    assert lr.grad is not None and lr.grad.abs().sum() > 0
    assert_gradients_match(lambda: F.mse_loss(learner(xs, ys, xq), yq), [lr], [lr.grad])


def test_the_model_is_never_modified():
    torch.manual_seed(0)
    model = Conv4(out_features=5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    maml = MAML(model, inner_lr=0.4, inner_steps=3)
    episode = EpisodeSampler(
        torch.utils.data.TensorDataset(torch.rand(50, 1, 28, 28), torch.arange(5).repeat(10)),
        5,
        1,
        2,
    ).sample()
    maml.loss(episode).backward()
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) and p.grad is not None


def test_batched_episodes_equal_one_at_a_time():
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.rand(60, 1, 28, 28), torch.arange(6).repeat(10))
    batch = EpisodeSampler(data, 3, 2, 2, seed=0).sample(batch_size=4)
    maml = MAML(Conv4(out_features=3), inner_lr=0.4, inner_steps=2)
    out = maml(batch.support_x, batch.support_y, batch.query_x)
    for i in range(4):
        t = batch.task(i)
        torch.testing.assert_close(out[i], maml(t.support_x, t.support_y, t.query_x))
    predicted = maml.predict(batch)
    assert torch.equal(predicted, out.argmax(-1))


def test_batchnorm_with_running_statistics_is_refused_and_converted():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    with pytest.raises(ValueError, match="keeps running statistics"):
        MAML(model)
    converted = without_running_stats(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))
    assert list(converted.buffers()) == [] and not converted[1].track_running_stats
    MAML(converted, loss_fn=F.mse_loss)


def test_unused_and_frozen_parameters_get_clear_errors():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x):
            return self.used(x)

    x, y = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"\['spare.weight', 'spare.bias'\] do not affect"):
        MAML(Unused())(x, y, x)
    MAML(Unused(), adapt=["used.weight", "used.bias"])(x, y, x)  # adapting a subset is fine

    frozen = nn.Linear(2, 2)
    frozen.bias.requires_grad_(False)
    with pytest.raises(ValueError, match=r"\['bias'\] are frozen"):
        MAML(frozen)
    with pytest.raises(ValueError, match="unknown parameters"):
        MAML(nn.Linear(2, 2), adapt=["head.weight"])


def test_only_the_listed_parameters_are_adapted():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    anil = MAML(model, inner_lr=0.5, adapt=["2.weight", "2.bias"])
    adapted = anil.adapt(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))
    assert adapted["0.weight"] is model[0].weight
    assert not torch.equal(adapted["2.weight"], model[2].weight)


# ---- learn2learn as the oracle -------------------------------------------------------------


def l2l():
    try:
        import learn2learn
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("learn2learn must be installed in CI (scripts/install_learn2learn.sh)")
        pytest.skip("learn2learn is not installed (scripts/install_learn2learn.sh)")
    return learn2learn


@pytest.fixture(scope="module")
def omniglot_episode(data_root):
    omniglot = mb.data.Omniglot("background_small1", root=data_root / "omniglot")
    return EpisodeSampler(omniglot, ways=5, shots=1, queries=3, seed=0).sample()


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("method", ["MAML", "MetaSGD"])
def test_same_adaptation_and_meta_gradient_as_learn2learn(omniglot_episode, method, first_order):
    library = l2l()
    e: Episode = omniglot_episode
    torch.manual_seed(0)
    ours_model = Conv4(out_features=5)
    theirs_model = copy.deepcopy(ours_model)
    steps, lr = 2, 0.4
    if method == "MAML":
        ours = MAML(ours_model, inner_lr=lr, inner_steps=steps, first_order=first_order)
        theirs = library.algorithms.MAML(theirs_model, lr=lr, first_order=first_order)
    else:
        ours = MetaSGD(ours_model, inner_lr=lr, inner_steps=steps, first_order=first_order)
        theirs = library.algorithms.MetaSGD(theirs_model, lr=lr, first_order=first_order)

    clone = theirs.clone()
    for _ in range(steps):
        clone.adapt(F.cross_entropy(clone(e.support_x), e.support_y))
    F.cross_entropy(clone(e.query_x), e.query_y).backward()

    adapted = ours.adapt(e.support_x, e.support_y)
    for (name, p), q in zip(clone.module.named_parameters(), adapted.values(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-5, msg=name)
    ours.loss(e).backward()
    for p, q in zip(theirs_model.parameters(), ours_model.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5)
    if method == "MetaSGD":
        for p, q in zip(theirs.lrs, ours.lrs, strict=True):
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", [MAML, MetaSGD])
@pytest.mark.parametrize("first_order", [False, True])
def test_vmapped_tasks_equal_the_per_task_loop(method, first_order):
    torch.manual_seed(0)
    tasks = mb.data.SineTasks(shots=10, queries=10, seed=0).sample(batch_size=6)
    sx, sy = tasks.support_x.double(), tasks.support_y.double()
    qx, qy = tasks.query_x.double(), tasks.query_y.double()
    grads = {}
    for batching in ("loop", "vmap"):
        torch.manual_seed(0)
        learner = method(
            mb.models.MLP().double(),
            inner_lr=0.01,
            inner_steps=2,
            first_order=first_order,
            loss_fn=F.mse_loss,
            batching=batching,
        )
        F.mse_loss(learner(sx, sy, qx), qy).backward()
        grads[batching] = [p.grad for p in learner.parameters()]
    assert MAML(mb.models.MLP(), loss_fn=F.mse_loss)._use_vmap()  # auto: vmap for an MLP
    for a, b in zip(grads["loop"], grads["vmap"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_vmap_is_refused_where_it_would_be_wrong():
    with pytest.raises(ValueError, match="functorch issue 534"):
        MAML(Conv4(out_features=5), batching="vmap")
    assert not MAML(Conv4(out_features=5))._use_vmap()
    with pytest.raises(ValueError, match="batching must be"):
        MAML(nn.Linear(2, 2), batching="fast")


def test_per_step_batchnorm_statistics_by_hand():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).double()
    sx, sy = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1] * 3)
    qx = torch.randn(5, 3, dtype=torch.float64)
    maml = MAML(model, inner_lr=0.1, inner_steps=2, batch_norm="per_step")
    params_after = [maml.adapt(sx, sy, inner_steps=s, create_graph=False) for s in range(3)]
    for key in [k for k, _ in maml.named_buffers()]:  # adapt() above already updated them
        buffer = maml.get_buffer(key)
        buffer.zero_() if "running_mean" in key or "batches" in key else buffer.fill_(1.0)

    maml(sx, sy, qx)  # one training-mode episode: 2 inner steps and the query pass

    def expected(params, x):
        features = x @ params["0.weight"].T + params["0.bias"]
        return 0.1 * features.mean(0), 0.9 + 0.1 * features.var(0, unbiased=True)

    for step, (params, x) in enumerate(
        [(params_after[0], sx), (params_after[1], sx), (params_after[2], qx)]
    ):
        mean, var = expected(params, x)
        torch.testing.assert_close(maml.get_buffer(f"step{step}__1__running_mean"), mean)
        torch.testing.assert_close(maml.get_buffer(f"step{step}__1__running_var"), var)
        assert maml.get_buffer(f"step{step}__1__num_batches_tracked").item() == 1
    assert torch.equal(model[1].running_mean, torch.zeros(4))  # the model's own: untouched

    # at test time each step normalises with its own running statistics, so a query's
    # prediction no longer depends on the other queries
    maml.eval()
    alone = maml(sx, sy, qx[:1])
    together = maml(sx, sy, qx)
    torch.testing.assert_close(alone, together[:1])
    assert "step2__1__running_var" in maml.state_dict()


def test_per_step_batchnorm_needs_running_statistics():
    with pytest.raises(ValueError, match="no BatchNorm layer with track_running_stats=True"):
        MAML(Conv4(out_features=5), batch_norm="per_step")
    with pytest.raises(ValueError, match="batch_norm must be"):
        MAML(Conv4(out_features=5), batch_norm="running")


@pytest.mark.parametrize("method", [MAML, MetaSGD])
def test_checkpointed_inner_steps_give_the_same_meta_gradient(method):
    torch.manual_seed(0)
    model = Conv4(out_features=5).double()
    data = torch.utils.data.TensorDataset(
        torch.rand(50, 1, 28, 28).double(), torch.arange(5).repeat(10)
    )
    batch = EpisodeSampler(data, 5, 1, 3, seed=0).sample(batch_size=2)
    grads = []
    for checkpoint_steps in (False, True):
        learner = method(
            copy.deepcopy(model), inner_lr=0.4, inner_steps=3, checkpoint_steps=checkpoint_steps
        )
        learner.loss(batch).backward()
        grads.append([p.grad for p in learner.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="twice"):
        MAML(
            nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)),
            batch_norm="per_step",
            checkpoint_steps=True,
        )
