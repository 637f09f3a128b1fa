"""Old names that keep working for one release (0.2), each with a :class:`DeprecationWarning`.

Version 0.2 regrouped the package by the book's families of methods (``CHANGELOG.md`` lists
every rename). Three mechanisms keep code written for 0.1 running until 0.3:

* :data:`MOVED_MODULES`: ``import metabook.maml`` gives :mod:`metabook.learners.optimisation.maml`
  (a finder on :data:`sys.meta_path`, installed by ``metabook/__init__.py``);
* :func:`moved_attribute`: a module-level ``__getattr__`` for functions and classes that were
  renamed (``metabook.device`` is now :func:`metabook.runtime.pick_device`);
* :func:`renamed_arguments`: keyword arguments that were renamed (``Conv4(hidden=64)`` is now
  ``Conv4(channels=64)``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any, ParamSpec, TypeVar

__all__: list[str] = []  # nothing here is public API

REMOVED_IN = "0.3"

#: Old module path -> new module path.
MOVED_MODULES: dict[str, str] = {
    "metabook.learner": "metabook.learners.base",
    "metabook.maml": "metabook.learners.optimisation.maml",
    "metabook.reptile": "metabook.learners.optimisation.reptile",
    "metabook.meta_lstm": "metabook.learners.optimisation.meta_lstm",
    "metabook.metric": "metabook.learners.metric",
    "metabook.mann": "metabook.learners.model_based.mann",
    "metabook.in_context": "metabook.learners.model_based.in_context",
    "metabook.task_attention": "metabook.learners.model_based.task_attention",
    "metabook.nas": "metabook.learners.model_based.architecture_search",
    "metabook.verification": "metabook.evaluation",
    "metabook.devices": "metabook.runtime",
    "metabook.data.files": "metabook.files",
}

P = ParamSpec("P")
R = TypeVar("R")


def warn_deprecated(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn once per call site that ``old`` is now ``new``."""
    warnings.warn(
        f"{old} is deprecated and will be removed in metabook {REMOVED_IN}: use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module path as the module that replaced it."""

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED_MODULES[spec.name]
        # the importer's frame is several import-machinery frames up; say where it moved
        warnings.warn(
            f"the module {spec.name} is deprecated and will be removed in metabook "
            f"{REMOVED_IN}: import {new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """The module is already executed: it is the new one."""


def install_moved_module_finder() -> None:
    """Put the finder of :data:`MOVED_MODULES` on :data:`sys.meta_path` (once)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())


def moved_attribute(
    module: str, renamed: dict[str, tuple[Callable[[], Any], str]]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``renamed``: old name -> (a function returning the
    object, the new name to print)."""

    def __getattr__(name: str) -> Any:
        if name in renamed:
            get, new = renamed[name]
            warn_deprecated(f"{module}.{name}", new)
            return get()
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


def renamed_arguments(**renames: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Accept old keyword names (``old="new"``) with a :class:`DeprecationWarning`."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{fn.__qualname__}() got both {old}= and {new}=")
                    warn_deprecated(f"the argument {old}= of {fn.__qualname__}", f"{new}=")
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper

    return decorate
