"""Tidy the outputs of executed notebooks: one output per stream per run of printing.

    python scripts/merge_streams.py chapters/03_maml_reptile.ipynb [...] [--drop-progress]

Consecutive ``stdout`` (or ``stderr``) outputs of a cell are merged into one, as a reader
sees them, and carriage returns are resolved (a line rewritten in place keeps its last
version). With ``--drop-progress`` the progress bars that tqdm wrote to ``stderr`` (and
tqdm's "IProgress not found" notice) are removed: notebooks executed before progress could
be switched off (``METABOOK_PROGRESS=0``) saved every update of every bar. Nothing else is
changed; the file is rewritten only if something changed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

# a tqdm bar: "desc: 42%|####      | 42/100 [00:01<00:02, 30.1it/s, loss=0.3]"
BAR = re.compile(r"^.*\d+%\|.*\|\s*\d+/\d+\s*\[.*\]\s*$")
NOTICE = re.compile(r"TqdmWarning: IProgress not found|from \.autonotebook import tqdm")


def resolve_carriage_returns(text: str) -> str:
    """Each line as a terminal would show it: the part after its last carriage return."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def tidy_outputs(outputs: list[dict], drop_progress: bool) -> list[dict]:
    tidy: list[dict] = []
    for output in outputs:
        if output.get("output_type") != "stream":
            tidy.append(output)
            continue
        text = resolve_carriage_returns("".join(output["text"]))
        if drop_progress and output["name"] == "stderr":
            noise = (line for line in text.split("\n"))
            text = "\n".join(line for line in noise if not (BAR.match(line) or NOTICE.search(line)))
            if not text.strip():
                continue
        previous = tidy[-1] if tidy else {}
        if previous.get("output_type") == "stream" and previous["name"] == output["name"]:
            text = "".join(previous["text"]) + text
            tidy.pop()
        tidy.append({**output, "text": text.splitlines(keepends=True)})
    return tidy


def tidy_notebook(path: Path, drop_progress: bool) -> bool:
    """Tidy one notebook in place; whether it changed."""
    before = path.read_text(encoding="utf-8")
    notebook = json.loads(before)
    for cell in notebook["cells"]:
        if cell.get("cell_type") == "code":
            cell["outputs"] = tidy_outputs(cell.get("outputs", []), drop_progress)
    after = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    if after != before:
        path.write_text(after, encoding="utf-8")
    return after != before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--drop-progress", action="store_true")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        if tidy_notebook(path, args.drop_progress):
            print(f"tidied {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
