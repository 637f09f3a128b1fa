"""The few-shot learners of the book, grouped by family as the book's parts are.

* :mod:`~metabook.learners.base`: the :class:`FewShotLearner` interface every method
  implements, and the pixel :class:`NearestNeighbour` baseline (chapter "Core concepts");
* :mod:`~metabook.learners.sgd`: functional SGD on a dictionary of parameters, the
  one inner loop of the optimisation-based methods;
* :mod:`~metabook.learners.optimisation`: MAML, Meta-SGD, Reptile and the Meta-LSTM;
* :mod:`~metabook.learners.metric`: Siamese networks, Matching Networks and Prototypical
  Networks (chapter "Siamese networks and prototype losses");
* :mod:`~metabook.learners.model_based`: the MANN and the in-context Transformer (chapter
  "Model-based meta-learning");
* :mod:`~metabook.learners.transfer`: the transfer baselines that meta-learners must beat,
  and :mod:`~metabook.learners.ensemble`: averages of trained learners (chapter "Siamese
  networks and prototype losses").

:mod:`metabook.registry` names the ones the command line trains.
"""

from metabook.learners.base import (
    FewShotLearner,
    ModifiedHausdorff,
    NearestNeighbour,
    class_max,
    each_query_after,
    embedding_size,
    episode_ways,
    ink_points,
    modified_hausdorff,
    per_task,
    standardise_by_support,
    uses_batch_statistics,
)
from metabook.learners.ensemble import Ensemble
from metabook.learners.metric import (
    MatchingNetwork,
    ProtoNet,
    SiameseNetwork,
    contrastive_loss,
    pairwise_distance,
    prototypes,
)
from metabook.learners.model_based import (
    MANN,
    Architecture,
    CrossTaskAttention,
    InContextTransformer,
    LRUAMemory,
    MemoryState,
    SearchResult,
    SearchSpace,
    evolution_search,
    in_context_mask,
    random_search,
    task_embedding,
)
from metabook.learners.optimisation import (
    MAML,
    MetaLSTM,
    MetaLSTMCell,
    MetaSGD,
    Reptile,
    preprocess,
    without_running_stats,
)
from metabook.learners.sgd import LossFn, Params, StepLoss, gradients, inner_loop, sgd_step
from metabook.learners.transfer import TransferBaseline, centred_unit

__all__ = [
    "FewShotLearner",
    "ModifiedHausdorff",
    "NearestNeighbour",
    "class_max",
    "each_query_after",
    "embedding_size",
    "episode_ways",
    "ink_points",
    "modified_hausdorff",
    "per_task",
    "standardise_by_support",
    "uses_batch_statistics",
    "MatchingNetwork",
    "ProtoNet",
    "SiameseNetwork",
    "contrastive_loss",
    "pairwise_distance",
    "prototypes",
    "Architecture",
    "SearchResult",
    "SearchSpace",
    "evolution_search",
    "random_search",
    "InContextTransformer",
    "in_context_mask",
    "LRUAMemory",
    "MANN",
    "MemoryState",
    "CrossTaskAttention",
    "task_embedding",
    "MAML",
    "MetaSGD",
    "without_running_stats",
    "MetaLSTM",
    "MetaLSTMCell",
    "preprocess",
    "Reptile",
    "LossFn",
    "Params",
    "StepLoss",
    "gradients",
    "inner_loop",
    "sgd_step",
    "TransferBaseline",
    "centred_unit",
    "Ensemble",
]
