"""Optimisation-based meta-learning: learn how to adapt by gradient steps (chapter "MAML and
Reptile: the mathematics"; the learned optimiser of Ravi and Larochelle is taught in the
chapter "Model-based meta-learning").

* :mod:`~metabook.learners.optimisation.maml`: MAML (second and first order) and Meta-SGD;
* :mod:`~metabook.learners.optimisation.reptile`: Reptile;
* :mod:`~metabook.learners.optimisation.meta_lstm`: the Meta-LSTM, a learned update rule.

All of them adapt with :mod:`metabook.learners.sgd` (the Meta-LSTM takes its gradients
from it and replaces the SGD update by its learned one).
"""

from metabook.learners.optimisation import maml, meta_lstm, reptile
from metabook.learners.optimisation.maml import *  # noqa: F403
from metabook.learners.optimisation.meta_lstm import *  # noqa: F403
from metabook.learners.optimisation.reptile import *  # noqa: F403

__all__ = [*maml.__all__, *reptile.__all__, *meta_lstm.__all__]
