"""The shared meta-training loop: it learns, validates, checkpoints and fails loudly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import metabook as mb
from metabook.data import EpisodeSampler, split_classes


def noisy_classes(classes=40, per_class=20, seed=0):
    """Class information in 2 dimensions, loud noise in 8 others: a metric must be learned."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, 2, generator=g) * 2
    labels = torch.arange(classes).repeat_interleave(per_class)
    x = torch.randn(labels.numel(), 10, generator=g) * 4
    x[:, :2] = means[labels] + 0.3 * torch.randn(labels.numel(), 2, generator=g)
    return torch.utils.data.TensorDataset(x, labels)


def test_meta_training_learns_a_metric_and_checkpoints(tmp_path):
    torch.manual_seed(0)
    data = noisy_classes()
    train, val = split_classes(40, [30, 10], seed=0)
    tasks = EpisodeSampler(data, ways=5, shots=1, queries=5, classes=train, seed=0)
    val_episodes = EpisodeSampler(data, 5, 1, 5, classes=val, seed=1).episodes(100)
    learner = mb.NearestNeighbour(nn.Linear(10, 10))
    before = mb.evaluate(learner, val_episodes).mean
    history = mb.meta_train(
        learner,
        tasks,
        steps=150,
        meta_batch=8,
        lr=3e-2,
        val_episodes=val_episodes,
        val_every=50,
        checkpoint_dir=tmp_path,
        device="cpu",
        progress=False,
    )
    after = mb.evaluate(learner, val_episodes).mean
    # chance is 0.2; a learned metric down-weights the noise on classes it never saw
    assert before < 0.4 and after > 0.85, (before, after)
    assert len(history.losses) == 150 and history.val_steps == [50, 100, 150]
    assert sum(history.losses[-20:]) < sum(history.losses[:20])

    last = mb.load_checkpoint(tmp_path / "last.pt")
    assert last.step == 150 and last.config is None  # no run configuration was given
    assert last.learner == "NearestNeighbour" and last.version == mb.__version__
    assert len(last.history["val_mean"]) == 3
    restored = mb.NearestNeighbour(nn.Linear(10, 10))
    mb.load_checkpoint(tmp_path / "last.pt", restored)
    for a, b in zip(restored.parameters(), learner.parameters(), strict=True):
        assert torch.equal(a, b)
    best_step, best_result = history.best
    assert mb.load_checkpoint(tmp_path / "best.pt").step == best_step
    assert best_result.mean == max(r.mean for r in history.val_results)


class Exploding(mb.NearestNeighbour):
    def __init__(self):
        super().__init__(nn.Linear(10, 10))
        self.calls = 0

    def loss(self, episode):
        self.calls += 1
        loss = super().loss(episode)
        return loss * float("nan") if self.calls == 3 else loss


def test_a_non_finite_loss_stops_training_with_its_step(tmp_path):
    tasks = EpisodeSampler(noisy_classes(), 5, 1, 1)
    with pytest.raises(FloatingPointError, match="at step 3"):
        mb.meta_train(Exploding(), tasks, steps=10, device="cpu", progress=False)


def test_bad_training_arguments():
    tasks = EpisodeSampler(noisy_classes(), 5, 1, 1)
    with pytest.raises(ValueError, match="no trainable parameters"):
        mb.meta_train(mb.NearestNeighbour(), tasks, steps=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="meta_batch >= 1"):
        mb.meta_train(mb.NearestNeighbour(nn.Linear(10, 2)), tasks, steps=1, meta_batch=0)
    with pytest.raises(TypeError, match="config must be a metabook.RunConfig"):
        mb.meta_train(mb.NearestNeighbour(nn.Linear(10, 2)), tasks, steps=1, config={"a": 1})


def test_load_checkpoint_rejects_other_files(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a metabook checkpoint"):
        mb.load_checkpoint(tmp_path / "other.pt")


class ConstantGradient(mb.FewShotLearner):
    """A learner whose loss is its single weight: the gradient is always exactly 1."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, support_x, support_y, query_x, ways=None):
        raise NotImplementedError  # never evaluated in this test

    def loss(self, episode):
        return self.w * 1.0


def test_the_learning_rate_schedule_is_stepped_once_per_step():
    learner = ConstantGradient()
    tasks = EpisodeSampler(noisy_classes(), 5, 1, 1)
    mb.meta_train(
        learner,
        tasks,
        steps=4,
        optimizer=torch.optim.SGD(learner.parameters(), lr=1.0),
        scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 / (t + 1)),
        device="cpu",
        progress=False,
    )
    # SGD moves w by -lr_t each step, with lr_t = 1, 1/2, 1/3, 1/4
    assert learner.w.item() == pytest.approx(-(1 + 1 / 2 + 1 / 3 + 1 / 4), abs=1e-12)
