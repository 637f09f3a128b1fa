"""The Meta-LSTM: preprocessing by hand, SGD as the special case of fixed gates, the gate
formula, and meta-gradients against finite differences."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metabook.learners.optimisation.meta_lstm import MetaLSTM, MetaLSTMCell, preprocess
from metabook.models import MLP, Conv4
from tests.finite_differences import assert_gradients_match
from tests.omniglot_training import assert_learns


def test_preprocessing_by_hand():
    x = torch.tensor([1.0, -math.exp(-2), 1e-6, -1e-6, 0.0], dtype=torch.float64)
    out = preprocess(x, p=10.0)
    e10 = math.exp(10)
    expected = [[0.0, 1.0], [-0.2, -1.0], [-1.0, 1e-6 * e10], [-1.0, -1e-6 * e10], [-1.0, 0.0]]
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64))


def task(seed=0, n=12):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (n,), generator=g)
    return x, y


def test_fixed_gates_are_plain_gradient_descent():
    torch.manual_seed(0)
    model = MLP(3, 2, hidden_sizes=(5,)).double()
    learner = MetaLSTM(model, inner_steps=3).double()
    x, y = task()
    adapted = learner.adapt(x, y, gates=(0.1, 1.0))
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    for _ in range(3):  # three SGD steps by hand
        leaves = {n: p.requires_grad_(True) for n, p in params.items()}
        loss = F.cross_entropy(functional_call(model, leaves, (x,)), y)
        grads = torch.autograd.grad(loss, list(leaves.values()))
        params = {
            n: (p - 0.1 * g).detach() for (n, p), g in zip(leaves.items(), grads, strict=True)
        }
    for name, value in params.items():
        torch.testing.assert_close(adapted[name].detach(), value, rtol=0, atol=1e-12)
    # the forget gate multiplies the parameters: (lr=0, forget=0.5) halves them
    halved = learner.adapt(x, y, gates=(0.0, 0.5))
    for name, p in model.named_parameters():
        torch.testing.assert_close(halved[name].detach(), p.detach() * 0.5**3)


def test_learned_gates_follow_the_formula():
    torch.manual_seed(1)
    cell = MetaLSTMCell(lstm_size=4).double()
    theta = torch.randn(6, dtype=torch.float64)
    grad = torch.randn(6, dtype=torch.float64)
    loss = torch.tensor(0.7, dtype=torch.float64)
    state = cell.initial_state(theta)
    new_theta, (h, c, i, f) = cell(theta, grad, loss, state)
    inputs = torch.cat([preprocess(grad), preprocess(loss.view(1)).expand(6, 2)], -1)
    h_ref, _ = cell.lstm(inputs, (state[0], state[1]))
    zero = torch.zeros(6, 1, dtype=torch.float64)
    i_ref = torch.sigmoid(cell.input_gate(torch.cat([h_ref, theta[:, None], zero], -1)))
    f_ref = torch.sigmoid(cell.forget_gate(torch.cat([h_ref, theta[:, None], zero], -1)))
    torch.testing.assert_close(i, i_ref)
    torch.testing.assert_close(f, f_ref)
    torch.testing.assert_close(new_theta, f_ref[:, 0] * theta - i_ref[:, 0] * grad)
    # the initial gates: forget near one, input (a learning rate) small
    assert f.min() > 0.98 and i.max() < 0.02


def test_meta_gradient_of_the_gates_matches_finite_differences():
    """With one update the learner's gradient does not depend on the gate parameters, so
    the paper's simplification (gradients as inputs) is exact and FD must agree."""
    torch.manual_seed(2)
    learner = MetaLSTM(MLP(3, 2, hidden_sizes=(4,)), inner_steps=1, lstm_size=3).double()
    x, y = task(1)
    xq, yq = task(2, n=8)

    def query_loss():
        return F.cross_entropy(learner(x, y, xq), yq)

    loss = query_loss()
    params = [learner.cell.input_gate.bias, learner.cell.forget_gate.weight]
    grads = torch.autograd.grad(loss, params)
    assert_gradients_match(query_loss, params, grads, atol=1e-7)


def test_batched_episodes_and_gate_records():
    torch.manual_seed(3)
    learner = MetaLSTM(MLP(3, 2, hidden_sizes=(4,)), inner_steps=2).double()
    xs = torch.stack([task(s)[0] for s in range(3)])
    ys = torch.stack([task(s)[1] for s in range(3)])
    xq = torch.randn(3, 5, 3, dtype=torch.float64)
    batched = learner(xs, ys, xq)
    single = torch.stack([learner(xs[k], ys[k], xq[k]) for k in range(3)])
    torch.testing.assert_close(batched, single)
    assert len(learner.last_gates) == 2
    assert set(learner.last_gates[0]) == {n for n, _ in learner.model.named_parameters()}


def test_bad_arguments():
    with pytest.raises(ValueError, match="steps"):
        MetaLSTM(MLP(), inner_steps=0)
    with pytest.raises(ValueError, match="running statistics"):
        MetaLSTM(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))


# Learns Omniglot from a short meta-training run (tests/omniglot_training.py). Measured with
# these seeds: above 45% after 60 steps.
def test_meta_lstm_learns_omniglot_in_a_short_run(data_root):
    assert_learns(
        lambda: MetaLSTM(Conv4(out_features=5, channels=32), inner_steps=5),
        data_root,
        steps=60,
        floor=0.45,
    )
