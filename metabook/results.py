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
import os
import platform
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from metabook._version import __version__
from metabook.files import atomic_write

__all__ = ["load_result", "result_names", "write_result"]


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


def write_result(
    path: str | os.PathLike[str], result: dict[str, Any], device: torch.device
) -> None:
    """Write ``result`` atomically as JSON to ``path`` with what it was measured on: the
    ``device`` (and the CPU, and torch's threads), the versions of metabook and torch, and
    the date (UTC)."""
    record = {
        **result,
        "device": f"{device.type}: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads",
        "versions": {"metabook": __version__, "torch": torch.__version__},
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    text = json.dumps(record, indent=1) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(Path(path), write)
