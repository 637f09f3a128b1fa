"""The book's recorded experiments: results too heavy for one notebook execution.

Several training seeds, long runs and the official Omniglot runs do not fit a chapter's
execution on two CPU cores, so the scripts of ``experiments/`` run them (resumable) and
write one JSON file per result into ``metabook/_results/``, with the command, the
configuration, the figures of every training seed, the device, the versions and the date.
The files ship with the package, so a chapter opened in Colab reads the same numbers the
rendered book shows::

    result = metabook.results.load_result("small1-base")
    result["test"]["mean"], result["test"]["ci95"]    # over the training seeds

:func:`result_names` lists the recorded results.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["load_result", "result_names"]


def _folder() -> Any:
    return resources.files("metabook") / "_results"


def result_names() -> list[str]:
    """The names of the recorded results."""
    return sorted(
        entry.name.removesuffix(".json")
        for entry in _folder().iterdir()
        if entry.name.endswith(".json")
    )


def load_result(name: str) -> dict[str, Any]:
    """The recorded result ``name`` (a dictionary as the experiment wrote it); an unknown
    name is a :class:`ValueError` that lists the recorded ones."""
    path = _folder() / f"{name}.json"
    if not path.is_file():
        raise ValueError(
            f"no recorded result named {name!r}: the recorded results are "
            + ", ".join(result_names())
        )
    return json.loads(path.read_text(encoding="utf-8"))
