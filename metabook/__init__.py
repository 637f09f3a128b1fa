"""metabook: the companion package of the book *Meta-learning, from the ground up*.

Each public object says in its docstring which chapter defines it.
"""

from importlib.metadata import PackageNotFoundError, version

from metabook import data, models, nas, rl, task_attention
from metabook.devices import device, seed_everything
from metabook.evaluation import EvalResult, evaluate, mean_confidence_interval
from metabook.in_context import InContextTransformer
from metabook.learner import FewShotLearner, NearestNeighbour
from metabook.maml import MAML, MetaSGD
from metabook.mann import MANN
from metabook.meta_lstm import MetaLSTM
from metabook.metric import MatchingNetwork, ProtoNet, SiameseNetwork
from metabook.reptile import Reptile
from metabook.training import TrainHistory, load_checkpoint, meta_train

try:
    __version__ = version("metabook")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = [
    "EvalResult",
    "FewShotLearner",
    "InContextTransformer",
    "MAML",
    "MANN",
    "MatchingNetwork",
    "MetaLSTM",
    "MetaSGD",
    "NearestNeighbour",
    "ProtoNet",
    "Reptile",
    "SiameseNetwork",
    "TrainHistory",
    "data",
    "device",
    "evaluate",
    "load_checkpoint",
    "mean_confidence_interval",
    "meta_train",
    "models",
    "nas",
    "rl",
    "seed_everything",
    "task_attention",
]
