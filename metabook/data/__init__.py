"""Data for meta-learning: datasets, episodes and the sources that draw them.

* :mod:`~metabook.data.episodes`: the :class:`Episode`, the :class:`TaskSource` contract
  every sampler follows (``sample(batch_size, generator)`` and ``episodes(count, seed)``),
  the N-way K-shot :class:`EpisodeSampler` and :func:`split_classes` (chapter "Core
  concepts");
* :mod:`~metabook.data.omniglot`, :mod:`~metabook.data.sine`: Omniglot and its official
  one-shot runs, MAML's sine waves;
* :mod:`~metabook.data.pairs`, :mod:`~metabook.data.augment`: pairs for Siamese networks,
  distorted training episodes (chapter "Siamese networks and prototype losses");
* :mod:`~metabook.data.faces`, :mod:`~metabook.data.text`, :mod:`~metabook.data.ratings`:
  the data of the chapter "Applications".

Where the files come from, and how they are checked, is :mod:`metabook.files`.
"""

from metabook import files as _files
from metabook._compat import moved_attribute
from metabook.data.augment import AugmentedTasks, RandomAffine
from metabook.data.episodes import Episode, EpisodeSampler, TaskSource, is_batched, split_classes
from metabook.data.faces import ORLFaces
from metabook.data.omniglot import OMNIGLOT_FILES, Omniglot, OmniglotOneShotRuns
from metabook.data.pairs import PairSampler
from metabook.data.ratings import (
    RatingData,
    UserTasks,
    cold_start_episodes,
    load_movielens_100k,
    simulate_ratings,
)
from metabook.data.sine import SineTasks
from metabook.data.text import (
    IntentDataset,
    Vocabulary,
    load_banking77,
    load_clinc150,
    sentence_embeddings,
)

__all__ = [
    "AugmentedTasks",
    "RandomAffine",
    "Episode",
    "EpisodeSampler",
    "TaskSource",
    "is_batched",
    "split_classes",
    "ORLFaces",
    "Omniglot",
    "OmniglotOneShotRuns",
    "OMNIGLOT_FILES",
    "PairSampler",
    "RatingData",
    "UserTasks",
    "cold_start_episodes",
    "load_movielens_100k",
    "simulate_ratings",
    "SineTasks",
    "IntentDataset",
    "Vocabulary",
    "load_banking77",
    "load_clinc150",
    "sentence_embeddings",
]

__getattr__ = moved_attribute(
    "metabook.data",
    {
        "DataNotFoundError": (lambda: _files.DataNotFoundError, "metabook.files.DataNotFoundError"),
        "cache_dir": (lambda: _files.cache_dir, "metabook.files.cache_dir"),
    },
)
