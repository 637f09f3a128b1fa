"""Attention across tasks (chapter "Model-based meta-learning").

One of the book's source articles describes a meta-learner that relates the current task
to the tasks it has met before with attention weights ``A_ij = softmax_j(h_i^T W_a h_j)``:
``h_i`` describes task
``i`` (for instance the mean embedding of its support set), ``h_j`` an earlier task, and
``W_a`` a learned bilinear form. The weights say which earlier tasks look like the new one;
the attended summary ``sum_j A_ij v_j`` carries what was learned on them.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CrossTaskAttention", "task_embedding"]


def task_embedding(support: torch.Tensor) -> torch.Tensor:
    """A task's description: the mean of its support embeddings ``[..., S, D] -> [..., D]``."""
    return support.mean(dim=-2)


class CrossTaskAttention(nn.Module):
    """``A = softmax(H W_a K^T)`` over earlier tasks, and the attended values ``A V``.

    Args:
        dim: size of the task descriptions.
        temperature: divides the scores before the softmax (1 = the source article's
            formula).

    ``W_a`` starts as the identity, so an untrained module attends by dot products.
    """

    def __init__(self, dim: int, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.weight = nn.Parameter(torch.eye(dim))
        self.temperature = temperature

    def forward(
        self, tasks: torch.Tensor, memory: torch.Tensor, values: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``tasks [..., T, D]`` attend over ``memory [..., K, D]`` (earlier tasks).

        Returns ``(A @ values, A)`` with ``A [..., T, K]`` (rows sum to one); ``values``
        default to ``memory``.
        """
        if tasks.shape[-1] != memory.shape[-1] or tasks.shape[-1] != self.weight.shape[0]:
            raise ValueError(
                f"task descriptions must have {self.weight.shape[0]} features; got tasks "
                f"{tuple(tasks.shape)} and memory {tuple(memory.shape)}"
            )
        scores = tasks @ self.weight @ memory.transpose(-1, -2) / self.temperature
        attention = torch.softmax(scores, dim=-1)
        return attention @ (memory if values is None else values), attention
