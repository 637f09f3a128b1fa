"""Training recipes: a run's configuration as a TOML file, shipped with the package.

The packaged ones are the files of ``metabook/_recipes/``. A recipe holds the fields of
:class:`~metabook.config.RunConfig` (``method``, ``ways``, ``shots``, ``queries``,
``train_ways``) and its sections ``[hyper]``, ``[backbone]``, ``[data]`` and ``[train]``,
each with the fields of its dataclass; what it leaves out takes the defaults. ``metabook
train --config NAME`` trains one (options given on the command line override the file, and
the checkpoint records the merged configuration)::

    config = metabook.recipes.load("omniglot_small1")
    metabook.runs.train_run(config, "runs/small1")

The packaged recipes (:func:`names`) are the book's chosen recipes for Omniglot's two
minimal splits, each chosen on validation alphabets held out of its split (chapter
"Siamese networks and prototype losses" tells how); a path to any ``.toml`` file works too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from metabook.config import SCHEMA_VERSION, RunConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["load", "names", "read", "recipe_text", "with_values"]


def names() -> list[str]:
    """The names of the packaged recipes."""
    folder = resources.files("metabook") / "_recipes"
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )


def _source(recipe: str | os.PathLike[str]) -> tuple[str, str]:
    """The TOML text of a recipe and how to name it in a message."""
    path = Path(recipe)
    if path.suffix == ".toml" or path.exists():
        return path.read_text(encoding="utf-8"), str(path)
    packaged = resources.files("metabook") / "_recipes" / f"{recipe}.toml"
    if not packaged.is_file():
        raise ValueError(
            f"no recipe named {str(recipe)!r}: the packaged recipes are "
            f"{', '.join(names())} (or give the path of a .toml file)"
        )
    return packaged.read_text(encoding="utf-8"), f"recipe {recipe}"


def recipe_text(recipe: str | os.PathLike[str]) -> str:
    """The TOML text of a recipe (a packaged one by name, or a ``.toml`` file by path),
    comments included: what the recipe says about how it was chosen."""
    return _source(recipe)[0]


def read(recipe: str | os.PathLike[str]) -> dict[str, Any]:
    """The table of a recipe: a packaged one by name, or a ``.toml`` file by path. An
    unknown name, an unreadable file or invalid TOML is a :class:`ValueError` (or
    :class:`OSError`) that says which."""
    text, where = _source(recipe)
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{where} is not valid TOML: {err}") from err
    for key in ("command", "schema"):
        if key in table:
            raise ValueError(f"{where} sets {key!r}, which a run writes itself: remove it")
    return table


def with_values(table: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a recipe's table with ``values`` set: each key is a field of
    :class:`~metabook.config.RunConfig` (``"ways"``) or ``"section.field"``
    (``"train.steps"``, ``"data.image_size"``)."""
    merged = {k: dict(v) if isinstance(v, Mapping) else v for k, v in table.items()}
    for key, value in values.items():
        *sections, name = key.split(".")
        target = merged
        for section in sections:
            target = target.setdefault(section, {})
        target[name] = value
    return merged


def load(recipe: str | os.PathLike[str], values: Mapping[str, Any] | None = None) -> RunConfig:
    """The :class:`~metabook.config.RunConfig` of a recipe (see :func:`read`) with
    ``values`` set (see :func:`with_values`), checked: unknown fields are an error that
    names the known ones."""
    table = with_values(read(recipe), values or {})
    return RunConfig.from_dict({**table, "schema": SCHEMA_VERSION})
