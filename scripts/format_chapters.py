"""Format the code of the chapters so that every line fits the book's text column.

    python scripts/format_chapters.py chapters/*.md

Each code cell of a chapter's MyST source, and each Python code block of its text (in
exercises and their solutions), is formatted by ``ruff format`` with lines of at most 80
characters (what the rendered book shows without scrolling at 1280 px, with the code font
of ``book/_static/metabook.css``); cells with IPython magics (the Colab install cell) are
left as they are. Afterwards run ``make notebooks`` (or ``jupytext --update --to ipynb``)
so that the ``.ipynb`` twins follow. Comments and strings that ruff does not wrap are
reported with their line, to be shortened by hand.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jupytext
from markdown_it import MarkdownIt

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


def python_blocks(markdown: str) -> list[str]:
    """The contents of the ``python`` code blocks of a Markdown cell, also inside
    directives (an exercise, a solution)."""
    found = []
    for token in MarkdownIt("commonmark").parse(markdown):
        if token.type == "fence":
            if token.info.strip().startswith("{"):
                found += python_blocks(token.content)
            elif token.info.strip() in ("python", "ipython3"):
                found.append(token.content)
    return found


def format_markdown(source: str, ruff: str) -> str:
    for block in python_blocks(source):
        formatted = format_source(block, ruff) + "\n"
        if formatted != block and block in source:
            source = source.replace(block, formatted)
    return source


def main(paths: list[str]) -> int:
    ruff = str(Path(sys.executable).with_name("ruff"))
    too_long = 0
    for name in paths:
        path = Path(name)
        notebook = jupytext.read(path)
        changed = False
        for cell in notebook.cells:
            if cell.cell_type == "markdown":
                formatted = format_markdown(cell.source, ruff)
                if formatted != cell.source:
                    cell.source, changed = formatted, True
                for block in python_blocks(cell.source):
                    for line in block.splitlines():
                        if len(line) > LINE:
                            too_long += 1
                            print(f"{path.name}: {len(line)} characters: {line.strip()[:60]}...")
                continue
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
