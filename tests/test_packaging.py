"""The package as a user installs it: the wheel built from this tree, installed into a fresh
virtual environment with only its declared dependencies, runs the README's Python snippet
as written, the `metabook` command, and a chapter notebook with only what Colab adds
(nbconvert and ipykernel), under the quick settings. The sdist holds the package and its
metadata, and no half of the test suite.

PyTorch is constrained to the version already installed here, so that pip takes it from
the local files it already has and never downloads a new CUDA build.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*command: object, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    return out


def test_the_sdist_and_the_wheel_hold_the_package_and_its_metadata(dist):
    version = importlib.metadata.version("metabook-ml")
    (wheel,) = dist.glob("metabook_ml-*.whl")
    (sdist,) = dist.glob("metabook_ml-*.tar.gz")
    assert f"-{version}" in wheel.name and f"-{version}" in sdist.name
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(f"metabook_ml-{version}.dist-info/METADATA").decode()
    assert "metabook/py.typed" in names and "metabook/registry.py" in names
    assert {
        "metabook/_recipes/omniglot_small1.toml",
        "metabook/_recipes/omniglot_small2.toml",
        "metabook/_results/small1-base.json",
    } <= set(names)
    assert not any(n.startswith(("tests/", "chapters/", "book/")) for n in names)
    assert "License-Expression: MIT" in metadata
    assert "Classifier: Programming Language :: Python :: 3.13" in metadata
    with tarfile.open(sdist) as archive:
        members = [m.name.split("/", 1)[-1] for m in archive.getmembers()]
    assert "LICENSE" in members and "metabook/registry.py" in members
    assert not any(m.startswith(("tests", "chapters", "book/")) for m in members)


@pytest.fixture(scope="module")
def fresh_venv(dist, tmp_path_factory) -> Path:
    """A new virtual environment with the wheel, its declared dependencies, and nothing
    else (torch pinned to the installed version)."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    constraints = venv.parent / "constraints.txt"
    constraints.write_text(f"torch=={importlib.metadata.version('torch')}\n")
    (wheel,) = dist.glob("metabook_ml-*.whl")
    run(python, "-m", "pip", "install", "--quiet", "-c", constraints, wheel)
    return venv


def test_the_wheel_alone_runs_the_readme_and_the_command(fresh_venv, data_root, tmp_path):
    python = fresh_venv / "bin" / "python"
    freeze = run(python, "-m", "pip", "freeze").stdout.splitlines()
    installed = {re.split(r"==| @ ", line)[0].lower() for line in freeze}
    for tool in ("pytest", "jupyter-core", "sphinx", "nbval", "learn2learn", "jupytext"):
        assert tool not in installed, f"{tool} is not a dependency of the package"
    assert {"metabook-ml", "torch", "numpy", "matplotlib", "tqdm", "pillow"} <= installed
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", readme, flags=re.S).group(1)
    env = {**os.environ, "METABOOK_DATA": str(data_root), "METABOOK_PROGRESS": "0"}
    out = run(python, "-c", snippet, cwd=tmp_path, env=env).stdout
    assert out.count("episodes)") == 2 and "[32, 5, 1, 28, 28]" in out  # two evaluations
    assert (tmp_path / "runs" / "demo" / "last.pt").exists()
    help_text = run(fresh_venv / "bin" / "metabook", "--help").stdout
    assert "train" in help_text and "eval-runs" in help_text
    recipe = "import metabook; print(metabook.recipes.load('omniglot_small1').data.dataset)"
    assert run(python, "-c", recipe).stdout.strip() == "omniglot:background_small1"
    result = "import metabook as m; print(m.results.load_result('small1-base')['seeds'][0]['seed'])"
    assert run(python, "-c", result).stdout.strip() == "0"


def test_a_chapter_runs_with_what_colab_adds(fresh_venv, data_root, tmp_path):
    python = fresh_venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "nbconvert", "ipykernel")
    notebook = tmp_path / "02_core_concepts.ipynb"
    notebook.write_bytes((ROOT / "chapters" / "02_core_concepts.ipynb").read_bytes())
    env = {**os.environ, "METABOOK_DATA": str(data_root), "METABOOK_QUICK": "1",
           "METABOOK_PROGRESS": "0"}  # fmt: skip
    # the kernel is the fresh environment's own Python (ipykernel's native kernel)
    run(python, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
        "--ExecutePreprocessor.timeout=600", notebook, env=env)  # fmt: skip
    assert "device: cpu | settings: quick" in notebook.read_text()
