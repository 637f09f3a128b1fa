"""Cross-task attention (seed 001): the formula by hand, gradients, bad shapes."""

from __future__ import annotations

import math

import pytest
import torch

from metabook.learners.model_based.task_attention import CrossTaskAttention, task_embedding


def test_attention_weights_by_hand():
    attention = CrossTaskAttention(2).double()
    with torch.no_grad():
        attention.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
    tasks = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    memory = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    out, a = attention(tasks, memory)
    # task 0: scores h W k = [2, 0, 2]; task 1: [0, 1, 1]
    e = math.e
    expected = torch.tensor([[e**2, 1, e**2], [1, e, e]], dtype=torch.float64) / torch.tensor(
        [[2 * e**2 + 1], [1 + 2 * e]], dtype=torch.float64
    )
    torch.testing.assert_close(a, expected)
    torch.testing.assert_close(out, expected @ memory)
    values = torch.tensor([[10.0], [20.0], [30.0]], dtype=torch.float64)
    torch.testing.assert_close(attention(tasks, memory, values)[0], expected @ values)


def test_gradients_reach_the_bilinear_form_and_shapes_are_checked():
    attention = CrossTaskAttention(3, temperature=2.0)
    out, a = attention(torch.randn(4, 2, 3), torch.randn(4, 5, 3))
    assert out.shape == (4, 2, 3) and a.shape == (4, 2, 5)
    torch.testing.assert_close(a.sum(-1), torch.ones(4, 2))
    out.pow(2).sum().backward()
    assert attention.weight.grad is not None and attention.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="3 features"):
        attention(torch.randn(2, 4), torch.randn(5, 4))
    with pytest.raises(ValueError, match="temperature"):
        CrossTaskAttention(3, temperature=0)


def test_task_embedding_is_the_support_mean():
    support = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    assert task_embedding(support).tolist() == [[2.0, 3.0]]
