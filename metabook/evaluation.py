"""Evaluating a learner on episodes: mean and 95% interval (chapter "Core concepts")."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from tqdm import tqdm

from metabook.data.episodes import Episode
from metabook.learner import FewShotLearner

__all__ = ["EvalResult", "evaluate", "mean_confidence_interval"]

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _accuracy(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (prediction == target).float().mean(-1)


def _mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (prediction - target).pow(2).flatten(-2).mean(-1)


_METRICS: dict[str, Metric] = {"accuracy": _accuracy, "mse": _mse}


def mean_confidence_interval(values: torch.Tensor, z: float = 1.96) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation interval, ``z * s / sqrt(n)``.

    ``s`` is the sample standard deviation (``n - 1`` in the denominator); with ``z = 1.96``
    this is the 95% interval reported throughout the few-shot literature. One value has
    no interval: the half-width is then ``nan``.
    """
    values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if values.numel() == 0:
        raise ValueError("no values: evaluate on at least one episode")
    mean = float(values.mean())
    if values.numel() == 1:
        return mean, float("nan")
    return mean, z * float(values.std(unbiased=True)) / math.sqrt(values.numel())


@dataclass
class EvalResult:
    """The outcome of :func:`evaluate`: ``mean``, ``ci95`` (half-width) and per-episode values."""

    mean: float
    ci95: float
    values: torch.Tensor
    metric: str

    def __str__(self) -> str:
        if self.metric == "accuracy":
            return (
                f"{100 * self.mean:.2f}% ± {100 * self.ci95:.2f}% ({self.values.numel()} episodes)"
            )
        return f"{self.metric} {self.mean:.4g} ± {self.ci95:.2g} ({self.values.numel()} episodes)"


def evaluate(
    learner: FewShotLearner,
    episodes: Iterable[Episode],
    device: torch.device | str | None = None,
    metric: str | Metric | None = None,
    progress: bool = False,
) -> EvalResult:
    """Evaluate ``learner`` on ``episodes`` (single episodes or batches).

    The standard protocol draws 600 test episodes, e.g.
    ``evaluate(learner, sampler.episodes(600))``. ``metric`` is ``"accuracy"`` (the default
    for classification), ``"mse"`` (the default for regression) or a function of
    ``(prediction, target)`` that returns one value per episode. Returns the mean and the
    95% confidence interval over episodes.
    """
    if device is None:
        try:
            device = next(learner.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
    if isinstance(metric, str) and metric not in _METRICS:
        raise ValueError(f"unknown metric {metric!r}: use 'accuracy', 'mse' or a function")
    was_training = learner.training
    learner.eval()
    values: list[torch.Tensor] = []
    name = "metric"
    try:
        for episode in tqdm(episodes, desc="evaluate", disable=not progress, leave=False):
            if episode.query_y is None:
                raise ValueError("evaluation episodes need query_y")
            episode = episode.to(device)
            if callable(metric):
                fn, name = metric, getattr(metric, "__name__", "metric")
            else:
                name = metric or ("mse" if episode.regression else "accuracy")
                fn = _METRICS[name]
            score = fn(learner.predict(episode), episode.query_y)
            values.append(torch.as_tensor(score).detach().cpu().reshape(-1))
    finally:
        learner.train(was_training)
    if not values:
        raise ValueError("no episodes were given to evaluate")
    stacked = torch.cat(values)
    mean, ci95 = mean_confidence_interval(stacked)
    return EvalResult(mean=mean, ci95=ci95, values=stacked, metric=name)
