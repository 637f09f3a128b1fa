"""Backbones: shapes, and a BatchNorm that keeps no state across tasks."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, vmap

from metabook.models import MLP, Conv4


def test_conv4_embedding_sizes_and_leading_dimensions():
    torch.manual_seed(0)
    net = Conv4()
    assert net(torch.rand(7, 1, 28, 28)).shape == (7, 64)
    assert net(torch.rand(2, 5, 1, 28, 28)).shape == (2, 5, 64)
    colour = Conv4(in_channels=3, image_size=84)
    assert colour.embedding_dim == 1600 and colour(torch.rand(2, 3, 84, 84)).shape == (2, 1600)
    assert Conv4(out_features=5)(torch.rand(3, 1, 28, 28)).shape == (3, 5)
    parameters = sum(p.numel() for p in Conv4(out_features=5).parameters())
    conv = (9 * 1 * 64 + 64) + 3 * (9 * 64 * 64 + 64)
    assert parameters == conv + 4 * 2 * 64 + (64 * 5 + 5)


def test_conv4_rejects_images_it_was_not_built_for():
    with pytest.raises(ValueError, match="expects images"):
        Conv4()(torch.rand(4, 3, 28, 28))
    with pytest.raises(ValueError, match="expects images"):
        Conv4()(torch.rand(1, 28, 28))
    with pytest.raises(ValueError, match="at least 16"):
        Conv4(image_size=8)


def test_conv4_batchnorm_keeps_no_state_across_tasks():
    torch.manual_seed(0)
    net = Conv4(out_features=5)
    assert list(net.buffers()) == []  # no running statistics to share or mutate
    task_a, task_b = torch.rand(10, 1, 28, 28), torch.rand(10, 1, 28, 28) * 3
    before = net(task_a)
    net(task_b)  # a forward pass on another task changes nothing
    torch.testing.assert_close(net(task_a), before, rtol=0, atol=0)
    net.eval()  # and evaluation uses the episode's own statistics, like training
    torch.testing.assert_close(net(task_a), before, rtol=0, atol=0)


def test_conv4_vmapped_over_tasks_equals_a_loop_over_tasks():
    torch.manual_seed(0)
    net = Conv4(out_features=5)
    params = dict(net.named_parameters())
    tasks = torch.rand(4, 6, 1, 28, 28)

    def one(p, x):
        return functional_call(net, p, (x,))

    batched = vmap(one, in_dims=(None, 0))(params, tasks)
    looped = torch.stack([net(t) for t in tasks])
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-5)
    # a single call on [B, M, ...] normalises with the statistics of all B*M images instead
    assert not torch.allclose(net(tasks), looped, atol=1e-4)


def test_mlp_is_the_maml_sine_network():
    net = MLP()
    assert sum(p.numel() for p in net.parameters()) == (1 * 40 + 40) + (40 * 40 + 40) + (40 + 1)
    assert net(torch.rand(3, 10, 1)).shape == (3, 10, 1)


def test_layer_norm_conv4_embeds_each_image_independently():
    torch.manual_seed(0)
    net = Conv4(norm="layer")
    x = torch.rand(6, 1, 28, 28)
    torch.testing.assert_close(net(x)[:1], net(x[:1]), atol=1e-5, rtol=0)
    with_batch = Conv4(norm="batch")
    assert not torch.allclose(with_batch(x)[:1], with_batch(x[:1]), atol=1e-3)
    assert sum(p.numel() for p in Conv4(norm="none").parameters()) < sum(
        p.numel() for p in net.parameters()
    )
    with pytest.raises(ValueError, match="unknown norm"):
        Conv4(norm="instance")
