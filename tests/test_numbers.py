"""The book's numbers: every figure in a chapter's prose comes from the chapter's own
computation (glued with :func:`metabook.glue` and inserted by ``{glue:text}``) or stands in a
sentence that cites its source, so that re-executing a chapter cannot leave a stale number."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.md"))
GLUE_PREFIX = "application/papermill.record/"

#: A percentage or a decimal figure ("87%", "0.97", "8.5 per cent").
FIGURE = re.compile(r"(?<![\w.])(\d[\d,]*\.\d+|\d[\d,]*(?:\.\d+)?\s*(?:%|per\s?cent))")

#: Figures that are not results and stay literal: each pattern with the reason.
LITERAL = {
    r"95%\s+(confidence\s+)?intervals?": "the level of every interval in the book",
    r"(section|sections|§)\s*\d+(\.\d+)*": "a section number of a source article or a paper",
    r"\b\d+(\.\d+)?%\s+of\s+(the\s+)?(in-scope|queries|known)": "a threshold the text chooses",
}

#: A role that inserts a glued value, one that cites, and any other role.
GLUED = re.compile(r"\{glue(?::\w+)?\}`[^`]*`")
CITED = re.compile(r"\{cite(?::\w+)?\}`[^`]*`")
ROLE = re.compile(r"\{[\w:-]+\}`[^`]*`")
#: Inline maths, inline code, HTML comments, link targets and directive options.
HIDDEN = [
    re.compile(r"\$\$.*?\$\$", re.S),
    re.compile(r"\$[^$\n]+\$"),
    re.compile(r"`[^`]*`"),
    re.compile(r"<!--.*?-->", re.S),
    re.compile(r"\]\([^)]*\)"),
    re.compile(r"^:[\w-]+:.*$", re.M),
]
#: Directives whose body is prose (the others hold code, maths or a figure's file).
PROSE_DIRECTIVES = {"admonition", "exercise", "solution", "note", "tip", "warning", "important"}
SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=[A-Z*(\[])|\n\s*\n|\n[*-] ")


def prose_blocks(markdown: str):
    """The prose of a markdown cell: paragraphs, list items and the bodies of prose
    directives, without code blocks, maths blocks or tables."""
    for token in MarkdownIt("commonmark").enable("table").parse(markdown):
        if token.type == "inline":
            yield token.content
        elif token.type == "fence":
            name = token.info.strip().split(" ")[0].strip("{}")
            if name in PROSE_DIRECTIVES:
                yield from prose_blocks(token.content)


def unbound_figures(markdown: str) -> list[tuple[str, str]]:
    """(figure, sentence) for each figure that is neither glued, nor cited in its sentence,
    nor one of the :data:`LITERAL` kinds."""
    found = []
    for block in prose_blocks(markdown):
        text = ROLE.sub(lambda m: " CITED " if CITED.match(m.group(0)) else " ", block)
        for pattern in HIDDEN:
            text = pattern.sub(" ", text)
        for sentence in SENTENCE_END.split(text):
            if "CITED" in sentence:
                continue
            kept = sentence
            for pattern in LITERAL:
                kept = re.sub(pattern, " ", kept, flags=re.I)
            for match in FIGURE.finditer(kept):
                found.append((match.group(1), " ".join(sentence.split()).replace("CITED", "")))
    return found


def markdown_cells(path: Path) -> list[str]:
    return [c.source for c in jupytext.read(path).cells if c.cell_type == "markdown"]


def test_the_scanner_finds_pasted_figures_and_passes_glued_and_cited_ones():
    text = (
        "ProtoNet scores 87% here. MAML scores {glue:text}`maml:.1f`% here.\n\n"
        "The paper reports 98.7% {cite:p}`finn2017`. We report a 95% interval.\n\n"
        "```python\nx = 0.5\n```\n\n$a = 1.96$ and `lr=0.01`; seed article section 4.2.\n\n"
        "```{solution} ex\n:class: dropdown\n\nThe loss falls to 0.12.\n```\n"
    )
    assert [figure for figure, _ in unbound_figures(text)] == ["87%", "0.12"]


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_every_figure_in_the_prose_is_glued_or_cited(source):
    found = [f for cell in markdown_cells(source) for f in unbound_figures(cell)]
    listing = "\n".join(f"  {figure!r} in: {sentence[:160]}" for figure, sentence in found)
    assert not found, (
        f"{source.name}: figures pasted into the prose (glue them with mb.glue and "
        f"{{glue:text}}, cite their source, or add a reason to LITERAL):\n{listing}"
    )


def glued_names(notebook: Path) -> set[str]:
    names = set()
    for cell in json.loads(notebook.read_text())["cells"]:
        for output in cell.get("outputs", []):
            if any(mime.startswith(GLUE_PREFIX) for mime in output.get("data", {})):
                names.add(output["metadata"]["scrapbook"]["name"])
    return names


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_every_glued_name_in_the_text_is_recorded_by_the_executed_chapter(source):
    """The book build inserts glued values from the committed outputs: a name that no cell
    recorded (a typo, or a chapter not re-executed after its text changed) fails here."""
    used = {
        m.group(1).split("::")[-1]
        for cell in markdown_cells(source)
        for m in re.finditer(r"\{glue(?::\w+)?\}`([^`:]+(?:::[^`:]+)?)", cell)
        if "::" not in m.group(1)
    }
    missing = used - glued_names(source.with_suffix(".ipynb"))
    assert not missing, f"{source.name} uses glued names its outputs lack: {sorted(missing)}"


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_the_source_articles_are_cited_by_their_names(source):
    """The five source articles are cited by the names of the appendix, never as files."""
    assert not re.search(r"[Ss]eed (article )?00\d", source.read_text())
