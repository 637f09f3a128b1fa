"""A short meta-training run on Omniglot's minimal splits, tested on 5-way 1-shot episodes of
alphabets the learner never saw (chance 20%, pixel nearest neighbours about 40%): the check
that a learner learns, shared by the learners' test modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

import metabook as mb
from metabook.data import EpisodeSampler, Omniglot


def held_out_omniglot(data_root: Path) -> tuple[Omniglot, list[mb.data.Episode]]:
    """``background_small1`` for training; 100 fixed test episodes of the alphabets of
    ``background_small2`` that ``background_small1`` lacks."""
    train = Omniglot("background_small1", root=data_root / "omniglot")
    test = Omniglot("background_small2", root=data_root / "omniglot")
    held_out = test.classes_outside(train.alphabets)
    return train, EpisodeSampler(test, 5, 1, 5, classes=held_out).episodes(100, seed=0)


def assert_learns(
    make: Callable[[], mb.FewShotLearner], data_root: Path, steps: int, floor: float
) -> mb.EvalResult:
    """Meta-train ``make()`` for ``steps`` steps of 4 episodes; its held-out accuracy must
    exceed ``floor`` and the untrained learner's (on the first 30 test episodes), with the
    two 95% intervals apart."""
    train, test_episodes = held_out_omniglot(data_root)
    mb.seed_everything(0)
    learner = make()
    untrained = mb.evaluate(learner, test_episodes[:30])
    tasks = EpisodeSampler(train, 5, 1, 5, seed=0)
    mb.meta_train(learner, tasks, steps=steps, meta_batch=4, device="cpu", progress=False)
    torch.manual_seed(0)
    result = mb.evaluate(learner, test_episodes)
    assert result.mean > floor, (untrained, result)
    assert result.mean - result.ci95 > untrained.mean + untrained.ci95, (untrained, result)
    return result
