"""The few-shot learners of the book, grouped by family as the book's parts are.

* :mod:`~metabook.learners.base`: the :class:`FewShotLearner` interface every method
  implements, and the pixel :class:`NearestNeighbour` baseline (chapter "Core concepts");
* :mod:`~metabook.learners.sgd`: functional SGD on a dictionary of parameters, the
  one inner loop of the optimisation-based methods;
* :mod:`~metabook.learners.optimisation`: MAML, Meta-SGD, Reptile and the Meta-LSTM;
* :mod:`~metabook.learners.metric`: Siamese networks, Matching Networks and Prototypical
  Networks (chapter "Siamese networks and prototype losses");
* :mod:`~metabook.learners.model_based`: the MANN and the in-context Transformer (chapter
  "Model-based meta-learning").

:mod:`metabook.registry` names the ones the command line trains.
"""

from metabook.learners import base, metric, model_based, optimisation, sgd
from metabook.learners.base import *  # noqa: F403
from metabook.learners.metric import *  # noqa: F403
from metabook.learners.model_based import *  # noqa: F403
from metabook.learners.optimisation import *  # noqa: F403
from metabook.learners.sgd import *  # noqa: F403

__all__ = [
    *base.__all__,
    *sgd.__all__,
    *optimisation.__all__,
    *metric.__all__,
    *model_based.__all__,
]
