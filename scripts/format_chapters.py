"""Format the code of the chapters so that every line fits the book's text column.

    python scripts/format_chapters.py chapters/*.md

Each code cell of a chapter's MyST source is formatted by ``ruff format`` with lines of at
most 80 characters (what the rendered book shows without scrolling at 1280 px, with the code
font of ``book/_static/metabook.css``); cells with IPython magics (the Colab install cell)
are left as they are. Afterwards run ``make notebooks`` (or ``jupytext --update --to ipynb``)
so that the ``.ipynb`` twins follow. Comments and strings that ruff does not wrap are
reported with their line, to be shortened by hand.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jupytext

LINE = 80


def format_source(source: str, ruff: str) -> str:
    done = subprocess.run(
        [ruff, "format", "--line-length", str(LINE), "--stdin-filename", "cell.py", "-"],
        input=source,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.rstrip("\n")


def main(paths: list[str]) -> int:
    ruff = str(Path(sys.executable).with_name("ruff"))
    too_long = 0
    for name in paths:
        path = Path(name)
        notebook = jupytext.read(path)
        changed = False
        for cell in notebook.cells:
            if cell.cell_type != "code" or any(
                line.lstrip().startswith(("%", "!")) for line in cell.source.splitlines()
            ):
                continue
            formatted = format_source(cell.source, ruff)
            if formatted != cell.source:
                cell.source, changed = formatted, True
            for line in formatted.splitlines():
                if len(line) > LINE:
                    too_long += 1
                    print(f"{path.name}: {len(line)} characters: {line.strip()[:60]}...")
        if changed:
            jupytext.write(notebook, path, fmt="md:myst")
            print(f"formatted {path}")
    print(f"{too_long} lines are still longer than {LINE} characters")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
