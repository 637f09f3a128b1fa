"""Fast adaptation in reinforcement learning (chapter "Applications").

The 2-D navigation tasks of Finn et al. (2017) (:mod:`metabook.rl.navigation`) and MAML
with policy gradients (:mod:`metabook.rl.policy_gradient`), batched over tasks. Policy
learners are not in :mod:`metabook.registry`: they learn from an environment's returns,
not from episodes of labelled examples.
"""

from metabook.rl.navigation import Navigation2D
from metabook.rl.policy_gradient import (
    GaussianMLPPolicy,
    PolicyMAML,
    Rollouts,
    discounted_returns,
    reinforce_loss,
    sample_rollouts,
)

__all__ = [
    "Navigation2D",
    "GaussianMLPPolicy",
    "PolicyMAML",
    "Rollouts",
    "discounted_returns",
    "reinforce_loss",
    "sample_rollouts",
]
