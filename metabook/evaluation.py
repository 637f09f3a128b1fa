"""Measuring a learner: the few-shot protocol's mean and 95% interval over episodes
(chapter "Core concepts"), and verification metrics, ROC curves and equal-error rates
(chapter "Applications").

Verification decides whether two inputs show the same identity from a similarity score and
a threshold. For scores of pairs and whether each pair is really the same, the ROC curve
gives, for every threshold, the true-positive rate (same pairs accepted) against the
false-positive rate (different pairs accepted). The equal-error rate is where the
false-positive rate equals the false-negative rate ``1 - TPR``: one number that does not
depend on a chosen threshold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from metabook.data.episodes import Episode, TaskSource
from metabook.learners.base import FewShotLearner
from metabook.runtime import progress_enabled

__all__ = [
    "ROC",
    "EvalResult",
    "SeedResult",
    "compare_intervals",
    "equal_error_rate",
    "evaluate",
    "mean_confidence_interval",
    "over_seeds",
    "pair_scores_by_identity",
    "roc_curve",
]

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _accuracy(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (prediction == target).float().mean(-1)


def _mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (prediction - target).pow(2).flatten(-2).mean(-1)


#: The named metrics: the function, and whether a higher value is better.
_METRICS: dict[str, tuple[Metric, bool]] = {"accuracy": (_accuracy, True), "mse": (_mse, False)}


def mean_confidence_interval(values: torch.Tensor, z: float | None = None) -> tuple[float, float]:
    """Mean and the half-width of its 95% interval, ``q * s / sqrt(n)``.

    ``s`` is the sample standard deviation (``n - 1`` in the denominator) of the ``n``
    values. ``q`` is the 97.5% quantile of Student's t distribution with ``n - 1`` degrees
    of freedom, which the interval needs when ``n`` is small (4.30 for three seeds, 2.26
    for ten) and which tends to the normal 1.96 of the few-shot literature for hundreds of
    episodes (1.96 at 600, to two decimals); pass ``z`` to use that fixed quantile instead.
    One value has no interval: the half-width is then ``nan``.
    """
    values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if values.numel() == 0:
        raise ValueError("no values: evaluate on at least one episode")
    mean = float(values.mean())
    n = values.numel()
    if n == 1:
        return mean, float("nan")
    if z is None:
        from scipy.stats import t as student_t  # imported here: SciPy's stats load slowly

        z = float(student_t.ppf(0.975, n - 1))
    return mean, z * float(values.std(unbiased=True)) / math.sqrt(n)


def _interval(result: Any) -> tuple[float, float]:
    """``(mean, half-width)`` of a result given in any of :func:`compare_intervals`' forms."""
    if isinstance(result, (int, float)):
        return float(result), 0.0
    if isinstance(result, Mapping):
        return float(result["mean"]), float(result["ci95"])
    if isinstance(result, tuple) and len(result) == 2:
        return float(result[0]), float(result[1])
    if hasattr(result, "mean") and hasattr(result, "ci95"):
        return float(result.mean), float(result.ci95)
    raise TypeError(
        f"cannot read an interval from {type(result).__name__}: give an EvalResult, an "
        "object or mapping with mean and ci95, a (mean, ci95) pair, or a number"
    )


def compare_intervals(a: Any, b: Any) -> int:
    """Whether ``a``'s 95% interval lies wholly above ``b``'s (``1``), wholly below (``-1``),
    or the two overlap (``0``): the test behind every "better" in the book, which says
    "tied" when the intervals overlap (touching counts as overlapping).

    Each argument is an :class:`EvalResult`, any object or mapping with ``mean`` and
    ``ci95`` (a recorded result of :mod:`metabook.results`), a ``(mean, ci95)`` pair, or a
    plain number: a published figure, an interval of width zero.
    """
    (m, h), (n, k) = _interval(a), _interval(b)
    if abs(m - n) <= h + k:
        return 0
    return 1 if m > n else -1


@dataclass
class EvalResult:
    """The outcome of :func:`evaluate`: ``mean``, ``ci95`` (half-width), the per-episode
    ``values``, the ``metric``'s name and whether a higher value of it is better."""

    mean: float
    ci95: float
    values: torch.Tensor
    metric: str
    higher_is_better: bool = True

    @property
    def score(self) -> float:
        """The mean, signed so that a larger score is always better (for model selection)."""
        return self.mean if self.higher_is_better else -self.mean

    def __str__(self) -> str:
        if self.metric == "accuracy":
            return (
                f"{100 * self.mean:.2f}% ± {100 * self.ci95:.2f}% ({self.values.numel()} episodes)"
            )
        return f"{self.metric} {self.mean:.4g} ± {self.ci95:.2g} ({self.values.numel()} episodes)"


@dataclass(frozen=True)
class SeedResult:
    """A method's result over training seeds, the unit of every ranking in the book.

    ``mean`` is the mean of the per-seed means ``seeds``; ``ci95`` the half-width of
    Student's t interval of those means (with a single seed, that run's interval over test
    episodes, the only one there is, which understates how much a second training would
    move it); ``episode_ci95`` one run's interval over test episodes, averaged over the
    seeds. The fields are those of a cell of a recorded comparison (:mod:`metabook.results`),
    so ``SeedResult(**cell)`` reads one, and :func:`compare_intervals` accepts it.
    """

    mean: float
    ci95: float
    episode_ci95: float
    seeds: list[float]


def over_seeds(results: Sequence[Any]) -> SeedResult:
    """The :class:`SeedResult` of one method trained with several seeds and evaluated on
    the same test episodes: ``results`` holds one :class:`EvalResult` per seed (or a
    ``(mean, ci95)`` pair, or a mapping with ``mean`` and ``ci95``)."""
    pairs = [_interval(r) for r in results]
    if not pairs:
        raise ValueError("no results: give one per training seed")
    means = [m for m, _ in pairs]
    episode = sum(h for _, h in pairs) / len(pairs)
    if len(pairs) == 1:
        return SeedResult(means[0], episode, episode, means)
    mean, ci95 = mean_confidence_interval(torch.tensor(means, dtype=torch.float64))
    return SeedResult(mean, ci95, episode, means)


def _metric(
    metric: str | Metric | None, regression: bool, higher_is_better: bool | None
) -> tuple[Metric, str, bool]:
    """The metric function, its name and its direction."""
    if callable(metric):
        if higher_is_better is None:
            raise ValueError(
                "say whether a higher value of a custom metric is better: "
                "evaluate(..., metric=fn, higher_is_better=False) for an error rate"
            )
        return metric, getattr(metric, "__name__", "metric"), higher_is_better
    name = metric or ("mse" if regression else "accuracy")
    if name not in _METRICS:
        raise ValueError(f"unknown metric {name!r}: use 'accuracy', 'mse' or a function")
    fn, higher = _METRICS[name]
    return fn, name, higher


def evaluate(
    learner: FewShotLearner,
    episodes: Iterable[Episode],
    device: torch.device | str | None = None,
    metric: str | Metric | None = None,
    progress: bool | None = False,
    higher_is_better: bool | None = None,
    transductive: bool = True,
) -> EvalResult:
    """Evaluate ``learner`` on ``episodes`` (single episodes or batches).

    The standard protocol draws 600 test episodes, e.g.
    ``evaluate(learner, sampler.episodes(600))``. ``metric`` is ``"accuracy"`` (the default
    for classification), ``"mse"`` (the default for regression) or a function of
    ``(prediction, target)`` that returns one value per episode (then say whether higher
    is better). ``progress=None`` shows a progress bar unless ``METABOOK_PROGRESS=0``.
    Returns the mean and the 95% confidence interval over episodes.

    ``transductive=True`` gives the learner all of an episode's queries at once, so a
    backbone that normalises with batch statistics (the book's Conv4) lets each query's
    prediction depend on the other queries. ``transductive=False`` predicts each query on
    its own, with the whole support set (the learner's
    :meth:`~metabook.learners.base.FewShotLearner.predict_each`; learners that adapt to the
    support set adapt once per episode): Nichol et al. (2018)'s non-transductive setting,
    the fair one beside learners that never look at other queries.
    """
    if isinstance(episodes, TaskSource):
        raise TypeError(
            f"evaluate needs a finite collection of episodes, and {type(episodes).__name__} "
            "draws them without end: pass source.episodes(600)"
        )
    if device is None:
        device = next((p.device for p in learner.parameters()), torch.device("cpu"))
    was_training = learner.training
    learner.eval()
    values: list[torch.Tensor] = []
    chosen: tuple[Metric, str, bool] | None = None
    try:
        for episode in tqdm(
            episodes, desc="evaluate", disable=not progress_enabled(progress), leave=False
        ):
            episode = episode.to(device)
            if episode.query_y is None:
                raise ValueError("evaluation episodes need query_y")
            if chosen is None:
                chosen = _metric(metric, episode.regression, higher_is_better)
            score = chosen[0](_predict(learner, episode, transductive), episode.query_y)
            values.append(torch.as_tensor(score).detach().cpu().reshape(-1))
    finally:
        learner.train(was_training)
    if chosen is None:
        raise ValueError("no episodes were given to evaluate")
    stacked = torch.cat(values)
    mean, ci95 = mean_confidence_interval(stacked)
    return EvalResult(mean, ci95, stacked, chosen[1], chosen[2])


def _predict(learner: FewShotLearner, episode: Episode, transductive: bool) -> torch.Tensor:
    """The learner's predictions for an episode's queries: all at once, or one by one."""
    return learner.predict(episode) if transductive else learner.predict_each(episode)


@dataclass
class ROC:
    """``fpr``, ``tpr`` and ``thresholds`` (decreasing; a pair is accepted when its score
    is ``>= threshold``), starting at (0, 0) with threshold ``+inf``."""

    fpr: torch.Tensor
    tpr: torch.Tensor
    thresholds: torch.Tensor

    def auc(self) -> float:
        """The area under the curve (trapezoids)."""
        return float(torch.trapezoid(self.tpr, self.fpr))


def _check(scores: torch.Tensor, same: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scores = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    same = torch.as_tensor(same).reshape(-1).bool()
    if scores.numel() != same.numel():
        raise ValueError(f"{scores.numel()} scores but {same.numel()} labels")
    if not same.any() or same.all():
        raise ValueError("a ROC curve needs both same-identity and different-identity pairs")
    return scores, same


def roc_curve(scores: torch.Tensor, same: torch.Tensor) -> ROC:
    """The ROC curve of ``scores`` (higher = more alike) for pairs labelled ``same``;
    one point per distinct score."""
    scores, same = _check(scores, same)
    order = torch.argsort(scores, descending=True, stable=True)
    s, y = scores[order], same[order].double()
    tp, fp = torch.cumsum(y, 0), torch.cumsum(1 - y, 0)
    last = torch.ones_like(s, dtype=torch.bool)  # keep the last of each run of equal scores
    last[:-1] = s[1:] != s[:-1]
    zero = s.new_zeros(1)
    return ROC(
        torch.cat([zero, fp[last] / fp[-1]]),
        torch.cat([zero, tp[last] / tp[-1]]),
        torch.cat([s.new_full((1,), float("inf")), s[last]]),
    )


def equal_error_rate(scores: torch.Tensor, same: torch.Tensor) -> tuple[float, float]:
    """The equal-error rate and its threshold: linear interpolation between the two ROC
    points where ``FPR - FNR`` changes sign."""
    roc = roc_curve(scores, same)
    gap = roc.fpr - (1 - roc.tpr)  # increasing from -1 to +1 along the curve
    i = int(torch.nonzero(gap >= 0)[0])
    if gap[i] == 0 or i == 0:
        return float(roc.fpr[i]), float(roc.thresholds[i])
    w = float(-gap[i - 1] / (gap[i] - gap[i - 1]))
    rate = (1 - w) * roc.fpr[i - 1] + w * roc.fpr[i]
    low, high = roc.thresholds[i], roc.thresholds[i - 1]
    threshold = high if torch.isinf(high) else (1 - w) * high + w * low
    return float(rate), float(threshold)


def pair_scores_by_identity(
    similarity: torch.Tensor, identities: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """From a square similarity matrix ``[N, N]`` of ``N`` examples with ``identities [N]``,
    the scores of all ``N (N - 1) / 2`` distinct pairs and whether each is the same identity."""
    n = identities.numel()
    if similarity.shape != (n, n):
        raise ValueError(f"similarity must be [{n}, {n}], got {tuple(similarity.shape)}")
    i, j = torch.triu_indices(n, n, offset=1, device=similarity.device)
    return similarity[i, j], identities[i] == identities[j]
