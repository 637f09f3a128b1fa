"""Optimisation-based meta-learning: learn how to adapt by gradient steps (chapter "MAML and
Reptile: the mathematics"; the learned optimiser of Ravi and Larochelle is taught in the
chapter "Model-based meta-learning").

* :mod:`~metabook.learners.optimisation.maml`: MAML (second and first order) and Meta-SGD;
* :mod:`~metabook.learners.optimisation.reptile`: Reptile;
* :mod:`~metabook.learners.optimisation.meta_lstm`: the Meta-LSTM, a learned update rule.

All of them adapt with :mod:`metabook.learners.sgd` (the Meta-LSTM takes its gradients
from it and replaces the SGD update by its learned one).
"""

from metabook.learners.optimisation.maml import MAML, MetaSGD, without_running_stats
from metabook.learners.optimisation.meta_lstm import MetaLSTM, MetaLSTMCell, preprocess
from metabook.learners.optimisation.reptile import Reptile

__all__ = [
    "MAML",
    "MetaSGD",
    "without_running_stats",
    "MetaLSTM",
    "MetaLSTMCell",
    "preprocess",
    "Reptile",
]
