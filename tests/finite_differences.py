"""One finite-difference check for every gradient test of the suite."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
import torch


def assert_gradients_match(
    loss: Callable[[], torch.Tensor],
    params: Iterable[torch.Tensor],
    grads: Iterable[torch.Tensor],
    eps: float = 1e-6,
    atol: float = 1e-6,
) -> None:
    """Every entry of ``grads`` equals the central difference of ``loss()`` in the matching
    entry of ``params`` (changed in place and restored)."""
    for p, g in zip(params, grads, strict=True):
        flat = p.data.view(-1)
        for k in range(flat.numel()):
            old = flat[k].item()
            flat[k] = old + eps
            up = loss().item()
            flat[k] = old - eps
            down = loss().item()
            flat[k] = old
            expected = (up - down) / (2 * eps)
            assert g.reshape(-1)[k].item() == pytest.approx(expected, abs=atol), (p.shape, k)
