"""Memory-augmented neural networks (Santoro et al., 2016) (chapter "Model-based
meta-learning").

A controller (an LSTM) reads an episode as a sequence. At step ``t`` it sees the example
``x_t`` together with the label of the *previous* example, ``y_{t-1}``, so it must hold
``x_t`` somewhere until its label arrives: in an external memory ``M`` of ``slots`` rows.
Memory is read by content (cosine similarity between a key and each row, sharpened by a
key strength ``beta`` as in the Neural Turing Machine, then softmax) and written with
least-recently-used access (LRUA): a new item goes either where the last read happened (to
refine it) or to the least-used slot (to store something new), mixed by a learned sigmoid
gate. Usage decays by ``gamma`` each step and grows with every read and write::

    w^w_t = sigmoid(alpha) w^r_{t-1} + (1 - sigmoid(alpha)) w^lu_{t-1}
    M_t(i) = M_{t-1}(i) [w^lu_{t-1}(i) = 0] + w^w_t(i) k_t      (the least-used slot is erased)
    w^r_t  = softmax_i beta cos(k_t, M_t(i));   r_t = sum_i w^r_t(i) M_t(i)
    w^u_t  = gamma w^u_{t-1} + w^r_t + w^w_t
    w^lu_t(i) = 1 for the least-used slot of w^u_t, else 0

:class:`LRUAMemory` is this update on explicit tensors (tested on a hand-made sequence);
:class:`MANN` wraps it as a few-shot learner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metabook._compat import renamed_arguments
from metabook.learners.base import (
    FewShotLearner,
    embedding_size,
    episode_ways,
    per_task,
    standardise_by_support,
)

__all__ = ["LRUAMemory", "MANN", "MemoryState"]


@dataclass
class MemoryState:
    """The memory and its weightings, for a batch of ``B`` sequences: ``memory
    [B, slots, width]``, ``read``, ``usage`` and ``least_used`` ``[B, slots]``."""

    memory: torch.Tensor
    read: torch.Tensor
    usage: torch.Tensor
    least_used: torch.Tensor


class LRUAMemory(nn.Module):
    """Least-recently-used memory access with cosine content reads (one read/write head).

    Args:
        slots, width: rows and columns of the memory.
        gamma: the usage decay.
    """

    def __init__(self, slots: int = 32, width: int = 40, gamma: float = 0.95) -> None:
        super().__init__()
        if slots < 2 or width < 1 or not 0 <= gamma <= 1:
            raise ValueError(
                f"need slots >= 2, width >= 1 and 0 <= gamma <= 1; got {slots}, {width}, {gamma}"
            )
        self.slots, self.width, self.gamma = slots, width, gamma

    def initial_state(self, batch: int, like: torch.Tensor) -> MemoryState:
        """An empty memory: a small constant (cosine needs non-zero rows), no usage; the
        first write goes to slot 0."""
        memory = like.new_full((batch, self.slots, self.width), 1e-6)
        zeros = like.new_zeros(batch, self.slots)
        least_used = zeros.clone()
        least_used[:, 0] = 1.0
        return MemoryState(memory, zeros.clone(), zeros, least_used)

    @staticmethod
    def read(
        key: torch.Tensor, memory: torch.Tensor, strength: torch.Tensor | float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Content read of ``memory [B, slots, width]`` with ``key [B, width]``: the read
        vector ``[B, width]`` and the weights ``softmax(strength * cos) [B, slots]``.
        ``strength`` is a float or ``[B, 1]``."""
        similarity = F.cosine_similarity(memory, key.unsqueeze(-2), dim=-1, eps=1e-8)
        weights = torch.softmax(strength * similarity, dim=-1)
        return (weights.unsqueeze(-1) * memory).sum(-2), weights

    def step(
        self,
        key: torch.Tensor,
        gate: torch.Tensor,
        state: MemoryState,
        strength: torch.Tensor | float = 1.0,
    ) -> tuple[torch.Tensor, MemoryState, torch.Tensor]:
        """Write ``key [B, width]`` then read with it. ``gate [B, 1]`` is ``sigmoid(alpha)``,
        the share of the write that goes to the previously read location; ``strength``
        (``beta``) sharpens the read.

        Returns the read vector ``r_t [B, width]``, the new state and the write weights.
        """
        write = gate * state.read + (1 - gate) * state.least_used
        keep = (1 - state.least_used).unsqueeze(-1)  # erase the least-used slot
        memory = state.memory * keep + write.unsqueeze(-1) * key.unsqueeze(-2)
        r, read = self.read(key, memory, strength)
        usage = self.gamma * state.usage + read + write
        smallest = usage.argmin(-1, keepdim=True)
        least_used = torch.zeros_like(usage).scatter_(-1, smallest, 1.0)
        return r, MemoryState(memory, read, usage, least_used), write


class MANN(FewShotLearner):
    """A memory-augmented few-shot learner in the manner of Santoro et al. (2016).

    The support set is presented as a sequence in a random order (from the global random
    generator: seed it for reproducible predictions), each example with the one-hot label of
    the previous one; each step writes its key to memory and reads with it. Every query then
    makes one further controller step from the state after the last support example (the
    last support label as its label input) and *reads* the memory without writing to it, all
    queries in parallel from the same state, so a query's prediction does not depend on the
    other queries.

    Four choices make it learn in thousands of episodes rather than not at all (measured in
    the chapter "Model-based meta-learning"): the embeddings are standardised by the support
    set's statistics (:func:`~metabook.learners.base.standardise_by_support`); the key has no bias
    (a shared bias makes every key nearly parallel, so every read is a uniform average);
    reads are sharpened by a learned key strength ``beta = 1 + softplus(w . h + b)``,
    starting near 10; and the label input reaches the key directly,
    ``k_t = tanh(W_h h_t + W_y y_{t-1})``, so that the write of step ``t`` carries the label
    of example ``t - 1`` into the slot that step ``t - 1`` read (LRUA's "refine" write)
    without first passing through the controller's state.

    Args:
        encoder: embeds an example (``[..., *shape] -> [..., embedding_dim]``); the paper
            fed raw pixels, a small convolutional encoder learns much faster.
        embedding_dim: the encoder's output size.
        max_ways: the largest number of classes an episode may have (the label inputs and
            outputs have this size; an episode of ``N`` classes uses the first ``N``).
        controller_size: the controller LSTM's hidden size; ``slots``, ``width``,
            ``gamma``: the memory.

    After a forward on one episode, ``last_usage`` holds the memory usage after every
    support step ``[S, slots]`` (for plots).

    Its queries are kept apart (``queries_apart``): inductive evaluation
    (:meth:`~metabook.learners.base.FewShotLearner.predict_each`) reads them all from one
    presentation of the support set, in one random order, as
    :meth:`~metabook.learners.base.FewShotLearner.predict` does.
    """

    queries_apart = True

    @renamed_arguments(hidden="controller_size")
    def __init__(
        self,
        encoder: nn.Module,
        embedding_dim: int,
        max_ways: int = 5,
        controller_size: int = 200,
        slots: int = 64,
        width: int = 40,
        gamma: float = 0.95,
    ) -> None:
        super().__init__()
        self.encoder, self.max_ways = encoder, max_ways
        self.controller = nn.LSTMCell(embedding_dim + max_ways, controller_size)
        self.key = nn.Linear(controller_size, width, bias=False)
        self.key_label = nn.Linear(max_ways, width, bias=False)
        self.strength = nn.Linear(controller_size, 1)
        nn.init.constant_(self.strength.bias, 9.0)  # beta = 1 + softplus(9) = 10 at first
        self.gate = nn.Linear(controller_size, 1)
        self.memory = LRUAMemory(slots, width, gamma)
        self.out = nn.Linear(controller_size + width, max_ways)
        self.last_usage: torch.Tensor | None = None

    @classmethod
    def from_backbone(cls, backbone: nn.Module, ways: int, **hyper: Any) -> MANN:
        """A MANN for episodes of up to ``ways`` classes, with ``backbone`` as its encoder."""
        return cls(backbone, embedding_size(backbone), max_ways=ways, **hyper)

    def key_strength(self, h: torch.Tensor) -> torch.Tensor:
        """``beta = 1 + softplus(w . h + b)``: how sharply a read focuses on one slot."""
        return 1 + F.softplus(self.strength(h))

    def _step(
        self,
        z: torch.Tensor,
        label: torch.Tensor,
        controller: tuple[torch.Tensor, torch.Tensor],
        memory: MemoryState,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], MemoryState]:
        """One support step: the controller reads ``(z_t, y_{t-1})``, writes and reads."""
        h, c = self.controller(torch.cat([z, label], dim=-1), controller)
        key = torch.tanh(self.key(h) + self.key_label(label))
        gate = torch.sigmoid(self.gate(h))
        _, memory, _ = self.memory.step(key, gate, memory, self.key_strength(h))
        return (h, c), memory

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        ways: int | None = None,
    ) -> torch.Tensor:
        ways = episode_ways(support_y, ways, self.max_ways, self)
        return per_task(self._episode, support_x, support_y, query_x)[..., :ways]

    def _episode(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        # drawn on the CPU, so that a seed gives the same order on every device
        order = torch.randperm(support_y.shape[0]).to(support_y.device)
        z = self.encoder(torch.cat([support_x[order], query_x]))
        z = standardise_by_support(z, len(order))
        zs, zq = z[: order.numel()], z[order.numel() :]
        labels = F.one_hot(support_y[order], self.max_ways).to(z.dtype)
        previous = torch.cat([labels.new_zeros(1, self.max_ways), labels[:-1]])
        hidden = self.controller.hidden_size
        state = (z.new_zeros(1, hidden), z.new_zeros(1, hidden))
        memory = self.memory.initial_state(1, z)
        usage = []
        for t in range(zs.shape[0]):
            state, memory = self._step(zs[t : t + 1], previous[t : t + 1], state, memory)
            usage.append(memory.usage[0].detach())
        self.last_usage = torch.stack(usage)
        m = zq.shape[0]
        h, _ = self.controller(
            torch.cat([zq, labels[-1:].expand(m, -1)], dim=-1),
            (state[0].expand(m, -1), state[1].expand(m, -1)),
        )
        # a query's key has no label term: it looks for a stored example, not for a label
        key = torch.tanh(self.key(h))
        r, _ = self.memory.read(key, memory.memory.expand(m, -1, -1), self.key_strength(h))
        return self.out(torch.cat([h, r], dim=-1))
