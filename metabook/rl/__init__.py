"""Fast adaptation in reinforcement learning (chapter "Applications").

The 2-D navigation tasks of Finn et al. (2017) (:mod:`metabook.rl.navigation`) and MAML
with policy gradients (:mod:`metabook.rl.policy_gradient`), batched over tasks. Policy
learners are not in :mod:`metabook.registry`: they learn from an environment's returns,
not from episodes of labelled examples.
"""

from metabook.rl import navigation, policy_gradient
from metabook.rl.navigation import *  # noqa: F403
from metabook.rl.policy_gradient import *  # noqa: F403

__all__ = [*navigation.__all__, *policy_gradient.__all__]
