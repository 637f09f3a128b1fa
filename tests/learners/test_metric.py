"""Metric-based learners: hand-computed values, invariances, gradients and a real run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import metabook as mb
from metabook.data import EpisodeSampler
from metabook.learners.metric import (
    MatchingNetwork,
    ProtoNet,
    SiameseNetwork,
    contrastive_loss,
    pairwise_distance,
    prototypes,
)
from tests.finite_differences import assert_gradients_match


def test_prototypes_are_class_means_for_any_label_order():
    z = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0], [5.0, 0.0]])
    y = torch.tensor([1, 0, 1, 0])
    assert prototypes(z, y).tolist() == [[4.0, 1.0], [0.5, 2.0]]
    batched = prototypes(torch.stack([z, z.flip(0)]), torch.stack([y, y.flip(0)]))
    assert batched.tolist() == [[[4.0, 1.0], [0.5, 2.0]]] * 2
    with pytest.raises(ValueError, match="needs a support example"):
        prototypes(z, torch.tensor([0, 0, 2, 2]))


def test_protonet_logits_by_hand():
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    labels = torch.tensor([0, 0, 1])  # prototypes (1, 0) and (0, 3)
    query = torch.tensor([[1.0, 1.0]])
    for distance, expected in (
        ("sqeuclidean", [-1.0, -5.0]),
        ("euclidean", [-1.0, -math.sqrt(5.0)]),
        ("cosine", [-(1 - 1 / math.sqrt(2)), -(1 - 1 / math.sqrt(2))]),
    ):
        logits = ProtoNet(nn.Identity(), distance=distance)(support, labels, query)
        torch.testing.assert_close(logits, torch.tensor([expected]))
    with pytest.raises(ValueError, match="unknown distance"):
        ProtoNet(nn.Identity(), distance="manhattan")


def test_matching_network_attention_by_hand():
    support = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.0]])  # cosines 1, 0, -1
    learner = MatchingNetwork(nn.Identity(), scale=1.0)
    weights = torch.softmax(torch.tensor([1.0, 0.0, -1.0]), 0)
    expected = torch.stack([weights[0], weights[1] + weights[2]]).log()
    torch.testing.assert_close(learner(support, labels, query)[0], expected)


def test_contrastive_loss_by_hand_and_at_the_margin():
    d = torch.tensor([0.5, 0.5, 2.0, 1.0])
    dissimilar = torch.tensor([0, 1, 1, 1])  # 1 marks a pair of different classes
    # 0.25 (similar) + (1 - 0.5)^2 + 0 (beyond margin) + 0 (exactly at the margin)
    assert contrastive_loss(d, dissimilar, margin=1.0).item() == pytest.approx(0.5 / 4)
    at_margin = torch.tensor([1.0], requires_grad=True)
    contrastive_loss(at_margin, torch.tensor([1])).backward()
    assert at_margin.grad.item() == 0.0  # a different pair at the margin is left alone


@pytest.mark.parametrize(
    "make",
    [
        lambda: ProtoNet(nn.Linear(4, 3)),
        lambda: ProtoNet(nn.Linear(4, 3), distance="euclidean"),
        lambda: MatchingNetwork(nn.Linear(4, 3)),
        lambda: SiameseNetwork(nn.Linear(4, 3)),
        lambda: SiameseNetwork(nn.Linear(4, 3), head="koch", embedding_dim=3),
    ],
)
def test_invariant_to_support_order_and_label_permutation(make):
    torch.manual_seed(0)
    learner = make()
    sx, sy = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])
    qx = torch.randn(5, 4)
    scores = learner(sx, sy, qx)
    order = torch.randperm(6)
    torch.testing.assert_close(learner(sx[order], sy[order], qx), scores)
    relabel = torch.tensor([2, 0, 1])  # class k becomes relabel[k]
    permuted = learner(sx, relabel[sy], qx)
    torch.testing.assert_close(permuted[:, relabel], scores)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ProtoNet(nn.Linear(3, 2).double()),
        lambda: MatchingNetwork(nn.Linear(3, 2).double(), scale=2.0),
        lambda: SiameseNetwork(nn.Linear(3, 2).double()),
        lambda: SiameseNetwork(nn.Linear(3, 2).double(), head="koch", embedding_dim=2).double(),
    ],
)
def test_gradients_match_finite_differences(make):
    torch.manual_seed(0)
    learner = make()
    data = torch.utils.data.TensorDataset(torch.randn(30, 3).double(), torch.arange(3).repeat(10))
    episode = EpisodeSampler(data, 3, 2, 2, seed=0).sample()
    learner.loss(episode).backward()
    params = list(learner.parameters())
    grads = [p.grad for p in params]
    assert_gradients_match(lambda: learner.loss(episode), params, grads, atol=1e-5)


def test_distances_agree_with_torch():
    a, b = torch.randn(2, 4, 5), torch.randn(2, 3, 5)
    torch.testing.assert_close(pairwise_distance(a, b, "euclidean"), torch.cdist(a, b))
    torch.testing.assert_close(pairwise_distance(a, b, "sqeuclidean"), torch.cdist(a, b) ** 2)
    expected = 1 - F.cosine_similarity(a.unsqueeze(-2), b.unsqueeze(-3), dim=-1)
    torch.testing.assert_close(pairwise_distance(a, b, "cosine"), expected)


def test_protonet_learns_omniglot_from_a_short_run(data_root):
    """Three hundred episodes on the minimal splits' training alphabets; tested on alphabets
    never seen. Chance is 20%; pixels give about 40% (chapter "Core concepts")."""
    omniglot = mb.data.Omniglot("background_small1+background_small2", root=data_root / "omniglot")
    small1 = set(mb.data.Omniglot("background_small1", root=data_root / "omniglot").alphabets)
    alphabet = [name.split("/")[0] for name in omniglot.classes]
    train = [c for c, a in enumerate(alphabet) if a in small1]
    test = [c for c, a in enumerate(alphabet) if a not in small1]
    torch.manual_seed(0)
    learner = ProtoNet(mb.models.Conv4())
    tasks = EpisodeSampler(omniglot, 5, 1, 5, classes=train, seed=0)
    mb.meta_train(learner, tasks, steps=300, meta_batch=1, lr=1e-3, device="cpu", progress=False)
    result = mb.evaluate(learner, EpisodeSampler(omniglot, 5, 1, 5, classes=test).episodes(100))
    assert result.mean > 0.65, result  # far above chance (0.20) and pixels (about 0.40)


def test_examples_of_any_rank_are_embedded_along_the_example_dimension():
    """Support and query examples are joined along the episode's example dimension (0, or 1
    in a batch), whatever the rank of an example: here sequences [2, 3]."""
    g = torch.Generator().manual_seed(0)
    support, query = torch.randn(4, 2, 3, generator=g), torch.randn(3, 2, 3, generator=g)
    labels = torch.tensor([0, 1, 0, 1])
    learner = ProtoNet(torch.nn.Flatten(-2))
    centres = torch.stack([support[labels == k].flatten(1).mean(0) for k in (0, 1)])
    expected = -torch.cdist(query.flatten(1), centres).pow(2)
    torch.testing.assert_close(learner(support, labels, query), expected)
    batch = learner(
        support[None].repeat(2, 1, 1, 1), labels[None].repeat(2, 1), query[None].repeat(2, 1, 1, 1)
    )
    torch.testing.assert_close(batch, expected[None].expand(2, -1, -1))
