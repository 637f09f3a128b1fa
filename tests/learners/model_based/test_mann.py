"""The memory-augmented learner: LRU access on a hand-made sequence, the one-step label
offset, and queries that do not see each other."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from metabook.learners.model_based.mann import MANN, LRUAMemory
from metabook.models import Conv4
from tests.omniglot_training import assert_learns


def test_lru_access_on_a_hand_made_sequence():
    mem = LRUAMemory(slots=3, width=2, gamma=0.5).double()
    state = mem.initial_state(1, torch.zeros(1, dtype=torch.float64))
    zero, one = torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)

    # step 1: gate 0 -> everything to the least-used slot, slot 0 of an empty memory
    r1, state, w1 = mem.step(torch.tensor([[1.0, 0.0]], dtype=torch.float64), zero, state)
    assert w1.tolist() == [[1.0, 0.0, 0.0]]
    assert state.memory[0, 0].tolist() == [1.0, 0.0]
    # read by cosine: 1 with slot 0, 1/sqrt(2) with the two near-empty (constant) rows
    c = 1 / math.sqrt(2)
    read1 = torch.tensor([math.e, math.exp(c), math.exp(c)], dtype=torch.float64)
    read1 = read1 / read1.sum()
    torch.testing.assert_close(state.read[0], read1)
    torch.testing.assert_close(state.usage[0], read1 + w1[0])
    assert state.least_used.tolist() == [[0.0, 1.0, 0.0]]  # slots 1, 2 tie: the first

    # step 2: a new key, gate 0 -> slot 1, which is erased first
    usage1 = state.usage.clone()
    r2, state, w2 = mem.step(torch.tensor([[0.0, 1.0]], dtype=torch.float64), zero, state)
    assert w2.tolist() == [[0.0, 1.0, 0.0]]
    assert state.memory[0, 1].tolist() == [0.0, 1.0]
    assert state.memory[0, 0].tolist() == [1.0, 0.0]
    torch.testing.assert_close(state.usage, 0.5 * usage1 + state.read + w2)
    assert state.least_used.tolist() == [[0.0, 0.0, 1.0]]  # slot 2 was never written

    # step 3: gate 1 -> the write goes where step 2 read (mostly slot 1), nothing erased
    read2 = state.read.clone()
    before = state.memory.clone()
    key = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    r3, state, w3 = mem.step(key, one, state)
    torch.testing.assert_close(w3, read2)
    # least_used pointed at slot 2 and is erased even with gate 1 (the paper's rule)
    expected = before * torch.tensor([[[1.0], [1.0], [0.0]]], dtype=torch.float64)
    expected = expected + read2.unsqueeze(-1) * key.unsqueeze(-2)
    torch.testing.assert_close(state.memory, expected)
    torch.testing.assert_close(r3, (state.read.unsqueeze(-1) * state.memory).sum(-2))


def test_key_strength_sharpens_the_read():
    memory = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]], dtype=torch.float64)
    key = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    cosines = torch.tensor([1.0, 0.0, 1 / math.sqrt(2)], dtype=torch.float64)
    for beta in (1.0, 10.0):
        r, weights = LRUAMemory.read(key, memory, beta)
        torch.testing.assert_close(weights[0], torch.softmax(beta * cosines, 0))
        torch.testing.assert_close(r[0], weights[0] @ memory[0])
    # a strength of 10 puts almost all weight on the matching row
    assert LRUAMemory.read(key, memory, 10.0)[1][0, 0] > 0.94


def mann(seed=0):
    torch.manual_seed(seed)
    encoder = nn.Sequential(nn.Flatten(-1), nn.Linear(4, 8))
    return MANN(encoder, embedding_dim=8, max_ways=3, controller_size=16, slots=8, width=6).double()


def episode(seed=0):
    g = torch.Generator().manual_seed(seed)
    sx = torch.randn(6, 4, generator=g, dtype=torch.float64)
    sy = torch.tensor([0, 0, 1, 1, 2, 2])
    qx = torch.randn(5, 4, generator=g, dtype=torch.float64)
    return sx, sy, qx


def test_labels_arrive_one_step_late():
    model = mann()
    sx, sy, qx = episode()
    inputs = []
    model.controller.register_forward_hook(lambda m, args, out: inputs.append(args[0].detach()))
    torch.manual_seed(5)
    model(sx, sy, qx)
    torch.manual_seed(5)
    order = torch.randperm(6)
    label_inputs = torch.cat([x[:, 8:] for x in inputs[:6]])  # support steps
    assert label_inputs[0].tolist() == [0.0, 0.0, 0.0]  # nothing before the first example
    for t in range(1, 6):
        assert label_inputs[t].argmax().item() == sy[order[t - 1]].item()
    # every query step gets the label of the last support example
    assert (inputs[6][:, 8:].argmax(-1) == sy[order[-1]]).all()


def test_a_query_does_not_see_the_other_queries():
    model = mann()
    sx, sy, qx = episode()
    others = torch.randn(4, 4, dtype=torch.float64)
    torch.manual_seed(7)
    alone = model(sx, sy, qx[:1])
    torch.manual_seed(7)  # the same support order
    crowd = model(sx, sy, torch.cat([qx[:1], others]))
    torch.testing.assert_close(alone[0], crowd[0])
    assert alone.shape == (1, 3)
    assert model.last_usage.shape == (6, 8)


def test_support_steps_write_and_queries_only_read():
    model = mann()
    sx, sy, qx = episode()
    writes = []
    step = model.memory.step
    model.memory.step = lambda *args: writes.append(args[0].shape) or step(*args)
    model(sx, sy, qx)
    assert writes == [torch.Size([1, 6])] * 6  # one write per support example, none per query


def test_too_many_ways_is_refused():
    model = mann()
    with pytest.raises(ValueError, match="at most 3 ways"):
        model(torch.randn(4, 4), torch.tensor([0, 1, 2, 3]), torch.randn(2, 4))


# Learns Omniglot from a short meta-training run (tests/omniglot_training.py). Measured with
# these seeds: the MANN learns slowest, 31% after 800 steps and 35% after 1,200 (about
# three minutes on two cores).
def test_mann_learns_omniglot_in_a_short_run(data_root):
    assert_learns(
        lambda: MANN(Conv4(norm="layer"), 64, max_ways=5, controller_size=128, slots=32, width=40),
        data_root,
        steps=1200,
        floor=0.28,
    )
