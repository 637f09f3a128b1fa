"""The book's structure: paired notebooks in sync, Colab cells, the quick switch, the TOC,
and a configuration that never reaches the network at build time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
import tomllib
import yaml

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
    notebook = jupytext.read(source.with_suffix(".ipynb"))
    checked = [
        c for c in notebook.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source
    ]
    assert checked and all(cell.get("outputs") for cell in checked)


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


def test_config_launches_colab_on_main_and_stays_offline():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert config["repository"]["branch"] == "main"
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
