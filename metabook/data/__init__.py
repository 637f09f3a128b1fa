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
from metabook.data import augment, episodes, faces, omniglot, pairs, ratings, sine, text
from metabook.data.augment import *  # noqa: F403
from metabook.data.episodes import *  # noqa: F403
from metabook.data.faces import *  # noqa: F403
from metabook.data.omniglot import *  # noqa: F403
from metabook.data.pairs import *  # noqa: F403
from metabook.data.ratings import *  # noqa: F403
from metabook.data.sine import *  # noqa: F403
from metabook.data.text import *  # noqa: F403

__all__ = [
    *episodes.__all__,
    *sine.__all__,
    *pairs.__all__,
    *augment.__all__,
    *omniglot.__all__,
    *faces.__all__,
    *text.__all__,
    *ratings.__all__,
]


__getattr__ = moved_attribute(
    "metabook.data",
    {
        "DataNotFoundError": (lambda: _files.DataNotFoundError, "metabook.files.DataNotFoundError"),
        "cache_dir": (lambda: _files.cache_dir, "metabook.files.cache_dir"),
    },
)
