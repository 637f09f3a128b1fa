"""The in-context Transformer: its mask, independence of queries, support-order invariance,
and the standardisation of embeddings by the support set."""

from __future__ import annotations

import pytest
import torch

from metabook.learners.base import standardise_by_support
from metabook.learners.model_based.in_context import InContextTransformer, in_context_mask
from metabook.models import Conv4
from tests.omniglot_training import assert_learns


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
    backbone = Conv4(channels=8, norm=norm)
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


def test_standardise_by_support_by_hand():
    # support rows (1, 2) and (3, 4): mean (2, 3), centred (-1, -1) and (1, 1), mean square 1
    z = torch.tensor([[1.0, 2.0], [3.0, 4.0], [4.0, 5.0]], dtype=torch.float64)
    out = standardise_by_support(z, support=2, eps=0.0)
    torch.testing.assert_close(out, torch.tensor([[-1.0, -1.0], [1.0, 1.0], [2.0, 2.0]]).double())
    # a shift and a positive scale of every row change nothing; the queries play no part
    moved = 3.0 * z + torch.tensor([10.0, -7.0]).double()
    torch.testing.assert_close(standardise_by_support(moved, 2, eps=0.0), out)
    other = torch.cat([z[:2], torch.tensor([[4.0, 5.0], [100.0, -100.0]]).double()])
    torch.testing.assert_close(standardise_by_support(other, 2, eps=0.0)[:3], out)
    # batched: each episode by its own support set
    batch = torch.stack([z, moved])
    torch.testing.assert_close(standardise_by_support(batch, 2, eps=0.0), torch.stack([out, out]))
    with pytest.raises(ValueError, match="support must be between 1 and 3"):
        standardise_by_support(z, 0)


def test_the_transformer_sees_standardised_embeddings_unless_told_not_to():
    seen = {}
    for flag in (True, False):
        model = learner()
        model.standardise = flag
        model.proj.register_forward_hook(lambda m, i, o, flag=flag: seen.update({flag: i[0]}))
        sx, sy, q = images(6, 0), torch.tensor([0, 0, 1, 1, 2, 2]), images(2, 1)
        model(sx, sy, q)
    raw = model.encoder(torch.cat([sx, q])[None])
    torch.testing.assert_close(seen[False], raw)
    torch.testing.assert_close(seen[True], standardise_by_support(raw, 6))
    torch.testing.assert_close(
        seen[True][0, :6].mean(0), torch.zeros(raw.shape[-1]), atol=1e-5, rtol=0
    )


# Learns Omniglot from a short meta-training run (tests/omniglot_training.py). Measured with
# these seeds: 55% after 150 steps (39% after 100).
def test_transformer_learns_omniglot_in_a_short_run(data_root):
    assert_learns(
        lambda: InContextTransformer(Conv4(norm="layer"), 64, max_ways=5),
        data_root,
        steps=150,
        floor=0.4,
    )
