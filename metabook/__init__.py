"""metabook: the companion package of the book *Meta-learning, from the ground up*.

Each public object says in its docstring which chapter defines it. The package is laid out
as the book is:

* :mod:`metabook.data`: datasets, episodes and task sources; :mod:`metabook.files`: where
  data files live and how they are fetched and written safely;
* :mod:`metabook.models`: the backbones (Conv4, MLP, a bag of words);
* :mod:`metabook.learners`: the few-shot learners by family (optimisation-based, metric,
  model-based) and the one inner loop; :mod:`metabook.rl`: fast adaptation of policies;
* :mod:`metabook.evaluation` and :mod:`metabook.training`: the protocol and the loop
  shared by every learner; :mod:`metabook.checkpoints`, :mod:`metabook.config`,
  :mod:`metabook.registry`, :mod:`metabook.runs` and :mod:`metabook.recipes`: runs that can be
  rebuilt, and the book's recipes; :mod:`metabook.results`: the book's recorded experiments;
* :mod:`metabook.runtime`: devices, seeds and the chapters' preamble; :mod:`metabook.cli`:
  the ``metabook`` command.

The export rule: a package exports the union of its modules' ``__all__``; this top level
exports the subpackages, every module, and the ``__all__`` of :mod:`~metabook.learners`,
:mod:`~metabook.evaluation`, :mod:`~metabook.training`, :mod:`~metabook.checkpoints`,
:mod:`~metabook.config`, :mod:`~metabook.registry` and :mod:`~metabook.runtime`.
"""

# every module (tests/test_package.py checks that each imports only lower layers)
from metabook import (  # noqa: I001
    _compat,
    checkpoints,
    cli,
    config,
    data,
    evaluation,
    files,
    learners,
    models,
    recipes,
    registry,
    results,
    rl,
    runs,
    runtime,
    training,
)
from metabook._version import __version__
from metabook.checkpoints import Checkpoint, load_checkpoint, load_weights
from metabook.config import SCHEMA_VERSION, BackboneConfig, DataConfig, RunConfig, TrainConfig
from metabook.evaluation import (
    ROC,
    EvalResult,
    SeedResult,
    compare_intervals,
    equal_error_rate,
    evaluate,
    mean_confidence_interval,
    over_seeds,
    pair_scores_by_identity,
    roc_curve,
)
from metabook.learners import (
    MAML,
    MANN,
    Architecture,
    CrossTaskAttention,
    FewShotLearner,
    InContextTransformer,
    LossFn,
    LRUAMemory,
    MatchingNetwork,
    MemoryState,
    MetaLSTM,
    MetaLSTMCell,
    MetaSGD,
    ModifiedHausdorff,
    NearestNeighbour,
    Params,
    ProtoNet,
    Reptile,
    SearchResult,
    SearchSpace,
    SiameseNetwork,
    StepLoss,
    TransferBaseline,
    Ensemble,
    centred_unit,
    class_max,
    each_query_after,
    contrastive_loss,
    embedding_size,
    episode_ways,
    evolution_search,
    gradients,
    in_context_mask,
    ink_points,
    inner_loop,
    modified_hausdorff,
    pairwise_distance,
    per_task,
    preprocess,
    prototypes,
    random_search,
    sgd_step,
    standardise_by_support,
    task_embedding,
    uses_batch_statistics,
    without_running_stats,
)
from metabook.registry import (
    LEARNERS,
    Method,
    build_backbone,
    build_learner,
    hyper_parameters,
    load_learner,
    load_run,
    resolve,
)
from metabook.runtime import (
    ChapterSettings,
    chapter_setup,
    glue,
    pick_device,
    progress_bar,
    progress_enabled,
    seed_everything,
)
from metabook.training import (
    TrainHistory,
    TrainingDiverged,
    TrainingInterrupted,
    check_folder,
    meta_train,
    prepare_folder,
)

__all__ = [
    "__version__",
    "checkpoints",
    "cli",
    "config",
    "data",
    "evaluation",
    "files",
    "learners",
    "models",
    "recipes",
    "registry",
    "results",
    "rl",
    "runs",
    "runtime",
    "training",
    "Checkpoint",
    "load_checkpoint",
    "load_weights",
    "SCHEMA_VERSION",
    "BackboneConfig",
    "DataConfig",
    "RunConfig",
    "TrainConfig",
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
    "TransferBaseline",
    "Ensemble",
    "centred_unit",
    "StepLoss",
    "gradients",
    "inner_loop",
    "sgd_step",
    "LEARNERS",
    "Method",
    "build_backbone",
    "build_learner",
    "hyper_parameters",
    "load_learner",
    "load_run",
    "resolve",
    "ChapterSettings",
    "chapter_setup",
    "glue",
    "pick_device",
    "progress_bar",
    "progress_enabled",
    "seed_everything",
    "TrainHistory",
    "TrainingDiverged",
    "TrainingInterrupted",
    "check_folder",
    "meta_train",
    "prepare_folder",
]

_compat.install_moved_module_finder()  # old module paths of 0.1, with a warning

_renamed = _compat.moved_attribute(
    "metabook", {"device": (lambda: runtime.pick_device, "metabook.pick_device")}
)


def __getattr__(name: str) -> object:
    """Old names of 0.1: ``metabook.device`` and the modules that moved (each warns)."""
    old = f"metabook.{name}"
    if old in _compat.MOVED_MODULES:
        import importlib

        _compat.warn_deprecated(f"the module {old}", _compat.MOVED_MODULES[old])
        return importlib.import_module(_compat.MOVED_MODULES[old])
    return _renamed(name)
