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
  :mod:`metabook.registry` and :mod:`metabook.runs`: runs that can be rebuilt;
* :mod:`metabook.runtime`: devices, seeds and the chapters' preamble; :mod:`metabook.cli`:
  the ``metabook`` command.

The export rule: a package exports the union of its modules' ``__all__``; this top level
exports the subpackages, every module, and the ``__all__`` of :mod:`~metabook.learners`,
:mod:`~metabook.evaluation`, :mod:`~metabook.training`, :mod:`~metabook.checkpoints`,
:mod:`~metabook.config`, :mod:`~metabook.registry` and :mod:`~metabook.runtime`.
"""

from metabook import _compat
from metabook._version import __version__

_compat.install_moved_module_finder()

# the order is the layering: each module imports only those above it
from metabook import files, runtime, config  # noqa: E402, I001
from metabook import data, models, learners, rl, evaluation  # noqa: E402
from metabook import checkpoints, training, registry, runs, cli  # noqa: E402
from metabook.checkpoints import *  # noqa: E402, F403
from metabook.config import *  # noqa: E402, F403
from metabook.evaluation import *  # noqa: E402, F403
from metabook.learners import *  # noqa: E402, F403
from metabook.registry import *  # noqa: E402, F403
from metabook.runtime import *  # noqa: E402, F403
from metabook.training import *  # noqa: E402, F403

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
    "registry",
    "rl",
    "runs",
    "runtime",
    "training",
    *learners.__all__,
    *evaluation.__all__,
    *training.__all__,
    *checkpoints.__all__,
    *config.__all__,
    *registry.__all__,
    *runtime.__all__,
]

_renamed = _compat.moved_attribute(
    "metabook", {"device": (lambda: runtime.pick_device, "metabook.pick_device")}
)


def __getattr__(name: str) -> object:
    """Old names of 0.1: ``metabook.device`` and the modules that moved (each warns)."""
    if f"metabook.{name}" in _compat.MOVED_MODULES:
        import importlib

        return importlib.import_module(f"metabook.{name}")
    return _renamed(name)
