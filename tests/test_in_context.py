"""The in-context Transformer: its mask, independence of queries, support-order invariance."""

from __future__ import annotations

import pytest
import torch

from metabook.in_context import InContextTransformer, in_context_mask
from metabook.models import Conv4


def test_mask_by_hand():
    # support tokens 0, 1; queries 2, 3, 4 (True = blocked)
    expected = [
        [False, False, True, True, True],
        [False, False, True, True, True],
        [False, False, False, True, True],
        [False, False, True, False, True],
        [False, False, True, True, False],
    ]
    assert in_context_mask(2, 3).tolist() == expected


def learner(norm="layer"):
    torch.manual_seed(0)
    backbone = Conv4(hidden=8, norm=norm)
    return InContextTransformer(backbone, backbone.embedding_dim, max_ways=5, d_model=16).eval()


def images(n, seed):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_a_query_prediction_does_not_depend_on_the_other_queries():
    model = learner()
    sx, sy = images(6, 0), torch.tensor([0, 0, 1, 1, 2, 2])
    q = images(4, 1)
    alone = model(sx, sy, q[:1])
    crowd = model(sx, sy, torch.cat([q[:1], images(7, 2)]))
    torch.testing.assert_close(alone[0], crowd[0], atol=1e-5, rtol=0)
    assert crowd.shape == (8, 3)
    # but it does depend on the support set
    assert not torch.allclose(model(images(6, 3), sy, q[:1]), alone, atol=1e-3)


def test_predictions_do_not_depend_on_the_order_of_the_support_set():
    model = learner()
    sx, sy, q = images(6, 0), torch.tensor([0, 0, 1, 1, 2, 2]), images(3, 1)
    perm = torch.tensor([5, 2, 0, 3, 1, 4])
    torch.testing.assert_close(model(sx, sy, q), model(sx[perm], sy[perm], q), atol=1e-5, rtol=0)


def test_batches_match_single_episodes_and_ways_are_checked():
    model = learner()
    sx = torch.stack([images(6, s) for s in range(2)])
    sy = torch.tensor([[0, 0, 1, 1, 2, 2]] * 2)
    q = torch.stack([images(3, 10 + s) for s in range(2)])
    batched = model(sx, sy, q)
    torch.testing.assert_close(batched[1], model(sx[1], sy[1], q[1]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="max_ways=6"):
        model(images(6, 0), torch.arange(6), images(1, 1))


def test_attention_maps_respect_the_mask():
    model = learner()
    sx, sy, q = images(6, 0), torch.tensor([0, 0, 1, 1, 2, 2]), images(3, 1)
    maps = model.attention_maps(sx, sy, q)
    assert len(maps) == 2 and maps[0].shape == (9, 9)
    blocked = in_context_mask(6, 3)
    for weights in maps:
        assert (weights[blocked] == 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(9))
