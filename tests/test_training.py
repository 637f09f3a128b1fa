"""The shared meta-training loop: it learns, validates, checkpoints and fails loudly."""

from __future__ import annotations

import os
import signal

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


# -- runs that stop and resume ----------------------------------------------------------


def tiny_run(folder, steps, resume=False, overwrite=False, stop_at=None, method="protonet"):
    """Meta-train a registry learner on small random images, with distortions, validating
    every 2 steps; the same seed every time. ``stop_at``: Ctrl-C during that step."""
    images = torch.rand(60, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    data = torch.utils.data.TensorDataset(images, torch.arange(12).repeat_interleave(5))
    config = mb.resolve(mb.RunConfig(method, ways=3, shots=1, queries=2))
    mb.seed_everything(0)
    learner = mb.build_learner(config)
    sampler = EpisodeSampler(data, 3, 1, 2, classes=range(8), seed=0)
    tasks = mb.data.AugmentedTasks(
        sampler, mb.data.RandomAffine(generator=torch.Generator().manual_seed(2))
    )
    if stop_at is not None:
        tasks = InterruptAt(tasks, stop_at)
    val = EpisodeSampler(data, 3, 1, 2, classes=range(8, 12), seed=1).episodes(3)
    history = mb.meta_train(
        learner, tasks, steps=steps, meta_batch=2, val_episodes=val, val_every=2,
        checkpoint_dir=folder, config=config, device="cpu", progress=False,
        resume=resume, overwrite=overwrite,
    )  # fmt: skip
    return learner, history


class InterruptAt(mb.data.TaskSource):
    """Sends the process a SIGINT (as Ctrl-C does) while drawing the batch of one step."""

    def __init__(self, tasks, step):
        self.tasks, self.step, self.calls = tasks, step, 0
        self.seed, self.generator = tasks.seed, tasks.generator

    def sample(self, batch_size=None, generator=None):
        self.calls += 1
        if self.calls == self.step:
            os.kill(os.getpid(), signal.SIGINT)
        return self.tasks.sample(batch_size, generator)

    def state_dict(self):
        return self.tasks.state_dict()

    def load_state_dict(self, state):
        self.tasks.load_state_dict(state)


@pytest.fixture
def deterministic():
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("method", ["protonet", "mann"])
def test_three_steps_then_three_more_equal_six_steps_bit_for_bit(tmp_path, deterministic, method):
    """The MANN also draws from the global generator (the order of its support set)."""
    whole, whole_history = tiny_run(tmp_path / "whole", 6, method=method)
    tiny_run(tmp_path / "split", 3, method=method)
    resumed, history = tiny_run(tmp_path / "split", 6, resume=True, method=method)
    for (name, a), (_, b) in zip(
        whole.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert history.losses == whole_history.losses
    assert history.val_steps == [2, 3, 4, 6]  # the first run ended, and validated, at 3
    last = mb.load_checkpoint(tmp_path / "split" / "last.pt")
    assert last.step == 6 and len(last.history["losses"]) == 6


def test_ctrl_c_stops_between_steps_writes_last_and_resumes_exactly(tmp_path, deterministic):
    before = signal.getsignal(signal.SIGINT)  # ignored when the suite runs in the background
    whole, _ = tiny_run(tmp_path / "whole", 5)
    with pytest.raises(mb.TrainingInterrupted) as stopped:
        tiny_run(tmp_path / "split", 5, stop_at=3)
    assert stopped.value.step == 3 and mb.load_checkpoint(tmp_path / "split/last.pt").step == 3
    resumed, _ = tiny_run(tmp_path / "split", 5, resume=True)
    for a, b in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    assert signal.getsignal(signal.SIGINT) is before  # put back


def test_the_same_run_writes_the_same_bytes(tmp_path, deterministic):
    tiny_run(tmp_path / "run", 3)
    first = {name: (tmp_path / "run" / name).read_bytes() for name in ("last.pt", "best.pt")}
    tiny_run(tmp_path / "run", 3, overwrite=True)
    for name, data in first.items():
        assert (tmp_path / "run" / name).read_bytes() == data, name


def test_a_folder_that_holds_a_run_is_never_mixed_with_another(tmp_path):
    tiny_run(tmp_path / "run", 2)
    with pytest.raises(FileExistsError, match="already holds a run .*last.pt, best.pt"):
        tiny_run(tmp_path / "run", 2)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        tiny_run(tmp_path / "file", 2)
    with pytest.raises(OSError, match="cannot create .*run: .*file is a file"):
        tiny_run(tmp_path / "file" / "run", 2)  # a folder that cannot exist
    with pytest.raises(FileNotFoundError, match="no run to resume"):
        tiny_run(tmp_path / "empty", 2, resume=True)
    # overwriting removes the old run's files before training: no stale best.pt survives
    tiny_run(tmp_path / "run", 1, overwrite=True)
    assert mb.load_checkpoint(tmp_path / "run" / "best.pt").step == 1
