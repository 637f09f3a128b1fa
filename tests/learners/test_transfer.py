"""The transfer baselines by hand: SimpleShot's centroids, the global-label loss, the probe."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import metabook as mb
from metabook.data import Episode, EpisodeSampler


def baseline(**kwargs) -> mb.TransferBaseline:
    return mb.TransferBaseline(nn.Identity(), num_classes=6, embedding_dim=2, **kwargs)


def test_centroid_scores_by_hand():
    # the support mean is 0, so centring changes nothing; unit length gives +-e1
    support = torch.tensor([[1.0, 0.0], [3.0, 0.0], [-1.0, 0.0], [-3.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    query = torch.tensor([[0.0, 5.0], [2.0, 2.0]])
    scores = baseline()(support, labels, query)
    # (0, 1) is at squared distance 2 from both centroids (1, 0) and (-1, 0);
    # (1, 1)/sqrt 2 is at 2 - sqrt 2 from (1, 0) and 2 + sqrt 2 from (-1, 0)
    root2 = math.sqrt(2)
    expected = torch.tensor([[-2.0, -2.0], [-(2 - root2), -(2 + root2)]])
    torch.testing.assert_close(scores, expected)
    # centring: shifting every feature by the same vector changes nothing
    shift = torch.tensor([10.0, -7.0])
    torch.testing.assert_close(baseline()(support + shift, labels, query + shift), expected)


def test_training_classifies_every_image_among_the_dataset_classes():
    learner = baseline()
    nn.init.zeros_(learner.classifier.weight)
    with torch.no_grad():
        learner.classifier.bias.copy_(torch.tensor([0, 0, 0, 0, 0, math.log(3)]))
    # softmax of the bias: 1/8 for classes 0..4 and 3/8 for class 5
    episode = Episode(
        support_x=torch.randn(2, 2),
        support_y=torch.tensor([0, 1]),
        query_x=torch.randn(2, 2),
        query_y=torch.tensor([1, 0]),
        info={"classes": torch.tensor([5, 2])},
    )
    # dataset classes of support then queries: 5, 2, 2, 5
    expected = (math.log(8 / 3) + math.log(8)) / 2
    assert float(learner.loss(episode).detach()) == pytest.approx(expected)
    with pytest.raises(ValueError, match="name their dataset classes"):
        learner.loss(Episode(episode.support_x, episode.support_y, episode.query_x,
                             episode.query_y))  # fmt: skip


def test_the_loss_of_a_batch_is_the_loss_of_its_images():
    data = torch.utils.data.TensorDataset(torch.randn(60, 2), torch.arange(6).repeat(10))
    batch = EpisodeSampler(data, 3, 2, 2, seed=0).sample(batch_size=4)
    learner = baseline()
    images = torch.cat([batch.support_x, batch.query_x], 1).reshape(-1, 2)
    labels = torch.cat([batch.support_y, batch.query_y], 1)
    targets = torch.stack([c[y] for c, y in zip(batch.info["classes"], labels, strict=True)])
    expected = F.cross_entropy(learner.classifier(images), targets.reshape(-1))
    torch.testing.assert_close(learner.loss(batch), expected)
    # and it is the mean of the episodes' losses (all have the same number of images)
    each = torch.stack([learner.loss(batch.task(b)) for b in range(4)])
    torch.testing.assert_close(learner.loss(batch), each.mean())


def test_the_probe_separates_a_separable_support_set_even_under_no_grad():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[4.0, 0.0], [-4.0, 1.0], [0.0, -5.0]])
    labels = torch.arange(3).repeat_interleave(4)
    support = centres[labels] + 0.3 * torch.randn(12, 2, generator=gen)
    query = centres + 0.3 * torch.randn(3, 2, generator=gen)
    learner = baseline(head="probe")
    episode = Episode(support, labels, query, torch.arange(3))
    assert learner.predict(episode).tolist() == [0, 1, 2]
    assert not any(p.grad is not None for p in learner.parameters())


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="num_classes must be the number of training classes"):
        mb.TransferBaseline(nn.Identity(), embedding_dim=2)
    with pytest.raises(ValueError, match="head must be one of"):
        baseline(head="svm")
    with pytest.raises(ValueError, match="head must be one of"):
        baseline().use_head("svm")
    for typo in ({"probe_lrr": 0.1}, {"finetune_lr": 0.1}):  # unknown, or another head's
        with pytest.raises(ValueError, match="is not a setting of the probe head"):
            baseline().use_head("probe", **typo)


def test_use_head_switches_the_head_and_its_settings_of_one_trained_learner():
    learner = baseline().use_head("finetune", finetune_steps=3, finetune_lr=0.5)
    assert (learner.head, learner.finetune_steps, learner.finetune_lr) == ("finetune", 3, 0.5)
    assert learner.use_head("centroid") is learner and learner.head == "centroid"


def test_zero_finetuning_steps_score_like_the_centroid_head_plus_one():
    """The head starts at W = 2 c_k, b = -|c_k|^2 on unit features u, so its score is
    2 u.c_k - |c_k|^2 = 1 - |u - c_k|^2: the centroid head's plus one."""
    torch.manual_seed(0)
    backbone = nn.Linear(4, 3)  # no batch statistics
    make = lambda head, **k: mb.TransferBaseline(backbone, 6, embedding_dim=3, head=head, **k)  # noqa: E731
    support, labels, query = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2]), torch.randn(5, 4)
    centroid = make("centroid")(support, labels, query)
    tuned = make("finetune", finetune_steps=0)(support, labels, query)
    torch.testing.assert_close(tuned, centroid + 1)


def test_finetuning_fits_the_support_set_on_a_copy_of_the_backbone():
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    before = {n: p.clone() for n, p in backbone.named_parameters()}
    support, labels = torch.randn(9, 4), torch.arange(3).repeat_interleave(3)

    def support_loss(steps: int) -> float:
        learner = mb.TransferBaseline(
            backbone, 6, embedding_dim=3, head="finetune", finetune_steps=steps, finetune_lr=0.5
        )
        with torch.no_grad():  # as evaluate calls it: the fit still has gradients
            scores = learner(support, labels, support)
        return float(F.cross_entropy(scores, labels))

    losses = [support_loss(steps) for steps in (0, 5, 50)]
    assert losses[0] > losses[1] > losses[2]
    assert losses[2] < 0.5 * losses[0]
    for name, p in backbone.named_parameters():  # the learner's own weights are untouched
        assert torch.equal(p, before[name]) and p.grad is None
