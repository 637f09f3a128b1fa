"""Fast adaptation in reinforcement learning (chapter "Applications").

The 2-D navigation tasks of Finn et al. (2017) (:mod:`metabook.rl.navigation`) and MAML
with policy gradients (:mod:`metabook.rl.policy_gradient`), batched over tasks.
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
    "GaussianMLPPolicy",
    "Navigation2D",
    "PolicyMAML",
    "Rollouts",
    "discounted_returns",
    "reinforce_loss",
    "sample_rollouts",
]
