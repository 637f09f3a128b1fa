"""Verification: deciding whether two inputs show the same identity, from a similarity
score and a threshold (chapter "Applications").

For scores of pairs and whether each pair is really the same, the ROC curve gives, for
every threshold, the true-positive rate (same pairs accepted) against the false-positive
rate (different pairs accepted). The equal-error rate is where the false-positive rate
equals the false-negative rate ``1 - TPR``: one number that does not depend on a chosen
threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ROC", "roc_curve", "equal_error_rate", "pair_scores_by_identity"]


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
