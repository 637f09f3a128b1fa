"""Data for meta-learning: datasets, episodes and task families."""

from metabook.data.episodes import Episode, EpisodeSampler, split_classes
from metabook.data.faces import ORLFaces
from metabook.data.files import DataNotFoundError, cache_dir
from metabook.data.omniglot import Omniglot, OmniglotOneShotRuns
from metabook.data.pairs import PairSampler
from metabook.data.sine import SineTasks

__all__ = [
    "DataNotFoundError",
    "Episode",
    "EpisodeSampler",
    "ORLFaces",
    "Omniglot",
    "OmniglotOneShotRuns",
    "PairSampler",
    "SineTasks",
    "cache_dir",
    "split_classes",
]
