"""The book's recorded experiments: results too heavy for one notebook execution.

Several training seeds, long runs and the official Omniglot runs do not fit a chapter's
execution on two CPU cores, so the scripts of ``experiments/`` run them (resumable) and
write one JSON file per result into ``metabook/_results/``, with the command, the
configuration, the figures of every training seed, the device, the versions and the date.
The files ship with the package, so a chapter opened in Colab reads the same numbers the
rendered book shows::

    result = metabook.results.load_result("small1-base")
    result["test"]["mean"], result["test"]["ci95"]    # over the training seeds

:func:`result_names` lists the recorded results; :func:`comparison_table` shows a
chapter's comparison of methods over seeds (``experiments/methods.py``) as a table.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from metabook._version import __version__
from metabook.files import atomic_write

__all__ = ["comparison_table", "load_result", "result_names", "write_result"]


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
    ``device`` (and the CPU with the instruction set torch's kernels use, and torch's
    threads: both change the order of floating-point sums, so a rerun elsewhere can differ
    in the last digits and, over a training, by more), the versions of metabook and torch, and
    the date (UTC)."""
    threads = torch.get_num_threads()
    record = {
        **result,
        "device": f"{device.type}: {platform.processor() or platform.machine()} "
        f"({torch.backends.cpu.get_cpu_capability()}), {threads} thread{'s' * (threads != 1)}",
        "versions": {"metabook": __version__, "torch": torch.__version__},
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    text = json.dumps(record, indent=1) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(Path(path), write)


def comparison_table(
    result: dict[str, Any],
    methods: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> str:
    """A Markdown table of a recorded comparison of methods (``experiments/methods.py``):
    a row per method, a column per test setting, each cell the accuracy in % as the mean
    over training seeds ± Student's t interval of the per-seed means, with one run's 95%
    interval over test episodes in brackets (its half-width, averaged over the seeds; e.g.
    ``92.3 ± 2.4 (1.0)``); ``-`` where a
    method was not scored in a column. ``methods`` and ``columns`` choose and order the
    rows and columns (default: all, in the recorded order).

    Defined in the chapter "MAML and Reptile"."""
    recorded = result["methods"]
    methods = list(recorded) if methods is None else list(methods)
    unknown = [m for m in methods if m not in recorded]
    if unknown:
        raise ValueError(
            f"{result.get('name', 'the result')} has no method {unknown[0]!r}: it has "
            + ", ".join(recorded)
        )
    if columns is None:
        columns = list(dict.fromkeys(c for m in methods for c in recorded[m]["test"]))

    def cell(method: str, column: str) -> str:
        entry = recorded[method]["test"].get(column)
        if entry is None:
            return "-"
        return (
            f"{100 * entry['mean']:.1f} ± {100 * entry['ci95']:.1f} "
            f"({100 * entry['episode_ci95']:.1f})"
        )

    lines = [
        "| method | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    lines += [f"| {m} | " + " | ".join(cell(m, c) for c in columns) + " |" for m in methods]
    return "\n".join(lines)
