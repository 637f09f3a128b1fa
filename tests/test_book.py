"""The book's structure: paired notebooks in sync, Colab cells, the quick switch, the TOC,
and a configuration that never reaches the network at build time."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
import tomllib
import yaml
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.md"))


def cells(notebook):
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def test_there_are_chapters():
    assert len(CHAPTERS) >= 2


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_markdown_and_notebook_twins_are_in_sync(source):
    twin = source.with_suffix(".ipynb")
    assert twin.exists(), f"{twin.name} is missing: run `make notebooks`"
    md, ipynb = jupytext.read(source), jupytext.read(twin)
    assert cells(md) == cells(ipynb), f"{source.name} and {twin.name} differ: run `make notebooks`"
    assert md.metadata["jupytext"]["formats"] == "ipynb,md:myst"


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_installs_in_colab_and_runs_the_preamble(source):
    notebook = jupytext.read(source)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    first = code[0]
    assert 'if "google.colab" in sys.modules:' in first.source
    assert "%pip install" in first.source
    assert "remove-cell" in first.metadata.get("tags", [])
    # the preamble is the package's helper: quick switch, device, scale and seeds in one place
    assert "mb.chapter_setup(" in code[1].source


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_committed_notebooks_carry_the_outputs_nbval_checks(source):
    """Cells whose output nbval compares are tagged (not marked by a comment a reader sees)."""
    notebook = jupytext.read(source.with_suffix(".ipynb"))
    code = [c for c in notebook.cells if c.cell_type == "code"]
    checked = [c for c in code if "nbval-check-output" in c.metadata.get("tags", [])]
    assert checked and all(cell.get("outputs") for cell in checked)
    assert not any("NBVAL_" in c.source for c in code)


def toc_files(node):
    if isinstance(node, dict):
        if "file" in node:
            yield node["file"]
        for value in node.values():
            yield from toc_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from toc_files(item)


def test_toc_lists_every_chapter_and_every_file_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"], *toc_files(toc["parts"])]
    for name in files:
        assert any((ROOT / f"{name}{ext}").exists() for ext in (".md", ".ipynb")), name
    for chapter in CHAPTERS:
        assert f"chapters/{chapter.stem}" in files


def test_the_release_version_agrees_everywhere():
    """The book is published from a release tag: the launch buttons open the tag's
    notebooks, the Colab cells install the tag from the project's repository, and all of
    them name the version of the installed distribution, metabook-ml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    version = importlib.metadata.version("metabook-ml")
    assert project["name"] == "metabook-ml" and project["version"] == version
    repository = project["urls"]["Repository"]
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == repository
    assert config["repository"]["branch"] == f"v{version}"
    expected = re.compile(
        rf'%pip install --quiet "metabook-ml(\[applications\])? @ git\+{re.escape(repository)}'
        rf'@v{re.escape(version)}"'
    )
    for chapter in CHAPTERS:
        first = jupytext.read(chapter).cells[1].source  # the first code cell
        assert expected.search(first), chapter.name
    for page in ("README.md", "book/index.md", "book/how_to_use.md"):
        text = (ROOT / page).read_text()
        assert "pip install metabook-ml" in text, page
        assert not re.search(r"pip install (\S*\")?metabook(\[|\s|$)", text), page
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["version"] == version and citation["repository-code"] == repository
    how_to = (ROOT / "book/how_to_use.md").read_text()
    assert re.search(r"version = \{(.*)\}", how_to).group(1) == version


def test_config_launches_colab_and_stays_offline():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert config["sphinx"]["config"]["intersphinx_mapping"] == {}
    assert "sphinx_exercise" in config["sphinx"]["extra_extensions"]
    assert "chapters/*.md" in config["exclude_patterns"]  # the book renders the .ipynb twins
    assert config["bibtex_bibfiles"] == ["book/references.bib"]


def test_the_package_does_not_need_the_book_tools():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    for tool in ("jupyter", "jupytext", "sphinx", "nbval", "pytest"):
        assert tool not in core
    code = (
        "import sys, metabook; "
        "tools = {'jupyter_book', 'jupytext', 'sphinx', 'myst_nb', 'nbval', 'pytest'}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in tools))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def published_outputs(notebook: dict):
    """``(cell index, text)`` of every output a reader of the book sees."""
    for index, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                yield index, output["name"], "".join(output["text"])
            elif output.get("output_type") == "error":
                yield index, "error", "\n".join(output.get("traceback", []))
            else:
                data = output.get("data", {})
                yield (
                    index,
                    "data",
                    "".join(data.get("text/plain", "")) + "".join(data.get("text/markdown", "")),
                )


NOISE = re.compile(
    r"Traceback|Warning|warnings\.warn|could not reach|Error:|/root/|/home/|/work/|/tmp/|"
    r"site-packages|\d+%\|[#█ ]*\|"
)


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_published_outputs_hold_no_failures_warnings_paths_or_progress(source):
    notebook = json.loads(source.with_suffix(".ipynb").read_text())
    found = [
        f"cell {index} ({kind}): {NOISE.search(text).group(0)!r} in {text.strip()[:120]!r}"
        for index, kind, text in published_outputs(notebook)
        if kind == "stderr" or NOISE.search(text)
    ]
    assert not found, "\n".join(found)


def code_blocks(markdown: str) -> list[str]:
    """The code blocks of a Markdown cell, also inside directives (exercises, solutions)."""
    found = []
    for token in MarkdownIt("commonmark").parse(markdown):
        if token.type == "fence":
            if token.info.strip().startswith("{"):
                found += code_blocks(token.content)
            else:
                found.append(token.content)
    return found


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_code_lines_fit_the_column(source):
    """80 characters fit the rendered column at 1280 px (book/_static/metabook.css), in code
    cells and in the code blocks of the text; scripts/format_chapters.py formats them."""
    notebook = jupytext.read(source)
    code = []
    for cell in notebook.cells:
        if cell.cell_type == "code" and "remove-cell" not in cell.metadata.get("tags", []):
            code.append(cell.source)
        elif cell.cell_type == "markdown":
            code += code_blocks(cell.source)
    long = [line for block in code for line in block.splitlines() if len(line) > 80]
    assert not long, long


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_every_figure_has_a_caption_a_name_and_alt_text(source):
    notebook = jupytext.read(source)
    for cell in notebook.cells:
        options = cell.metadata.get("mystnb", {})
        if "figure" in options:
            assert options["figure"].get("caption") and options["figure"].get("name")
            assert len(options.get("image", {}).get("alt", "")) > 20, options["figure"]["name"]


def script(name: str):
    """A module of scripts/, which are not a package."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_the_stated_running_time_is_that_of_the_committed_outputs(source):
    """Each chapter says how long its CPU settings take: the time its committed notebook
    took to execute (so re-executing it without updating the sentence fails here)."""
    text = " ".join(source.read_text().split())
    match = re.search(r"(\d+) (seconds?|minutes?) with the CPU settings", text)
    assert match, "the chapter does not state its running time with the CPU settings"
    stated = int(match.group(1)) * (60 if match.group(2).startswith("minute") else 1)
    notebook = json.loads(source.with_suffix(".ipynb").read_text())
    took = script("running_time").execution_seconds(notebook)
    tolerance = 60 if match.group(2).startswith("minute") else 10
    assert abs(stated - took) <= tolerance, (stated, took)
    assert re.search(r"\d+ seconds with the quick settings", text)


def test_the_workflows_use_the_readmes_commands():
    workflows = ROOT / ".github" / "workflows"
    ci = yaml.safe_load((workflows / "ci.yml").read_text())
    book = yaml.safe_load((workflows / "book.yml").read_text())
    release = yaml.safe_load((workflows / "release.yml").read_text())

    def commands(workflow):
        return [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]

    assert ".ci/run" in commands(ci) and "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make book" in commands(book) and "make book" in (ROOT / "README.md").read_text()
    assert any("-m build" in c for c in commands(release))
    steps = [s.get("uses", "") for job in release["jobs"].values() for s in job["steps"]]
    assert any(s.startswith("pypa/gh-action-pypi-publish") for s in steps)  # trusted publishing
