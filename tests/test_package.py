"""The package's shape: its layers and their imports, the export rule, short functions,
docstrings that cite the bibliography or a chapter, and the old names of 0.1."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import metabook as mb
from metabook._compat import MOVED_MODULES

PACKAGE = Path(mb.__file__).parent

#: Lower layers never import higher ones: data never imports learners, learners never
#: import training or the command line. Modules of one layer may import each other.
LAYERS = {
    "metabook._version": 0,
    "metabook._compat": 0,
    "metabook.files": 0,
    "metabook.runtime": 0,
    "metabook.config": 0,
    "metabook.recipes": 1,
    "metabook.results": 0,
    "metabook.data": 1,
    "metabook.models": 2,
    "metabook.learners": 3,
    "metabook.rl": 3,
    "metabook.evaluation": 4,
    "metabook.checkpoints": 5,
    "metabook.training": 6,
    "metabook.registry": 7,
    "metabook.runs": 8,
    "metabook.cli": 9,
    "metabook.__main__": 10,
    "metabook": 10,
}


def module_names() -> list[str]:
    names = ["metabook"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="metabook."):
        names.append(info.name)
    return sorted(names)


MODULES = module_names()


def source_of(name: str) -> Path:
    path = PACKAGE.joinpath(*name.split(".")[1:])
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def layer(name: str) -> int:
    key = max((k for k in LAYERS if name == k or name.startswith(k + ".")), key=len)
    return LAYERS[key]


def imports_of(name: str) -> set[str]:
    """The metabook modules that module ``name`` imports (anywhere in its body)."""
    tree = ast.parse(source_of(name).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("metabook")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("metabook"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found - {name}


def test_layers_only_import_downwards():
    wrong = [
        f"{name} (layer {layer(name)}) imports {other} (layer {layer(other)})"
        for name in MODULES
        for other in imports_of(name)
        if layer(other) > layer(name)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    graph = {name: imports_of(name) for name in MODULES}
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for other in sorted(graph.get(name, ())):
            if state.get(other) == "open":
                raise AssertionError(" -> ".join([*path, name, other]))
            if other not in state:
                visit(other, [*path, name])
        state[name] = "done"

    for name in MODULES:
        if name not in state:
            visit(name, [])


def public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def test_every_public_module_is_reachable_and_declares_all():
    for name in filter(public, MODULES):
        module = importlib.import_module(name)
        parent, _, attribute = name.rpartition(".")
        if parent:
            assert getattr(importlib.import_module(parent), attribute) is module, name
        assert isinstance(getattr(module, "__all__", None), list), f"{name} lacks __all__"
        assert len(module.__all__) == len(set(module.__all__)), f"{name} lists a name twice"
        for item in module.__all__:
            assert hasattr(module, item), f"{name}.__all__ names {item}, which it lacks"


def test_packages_export_the_union_of_their_modules_and_nothing_is_defined_twice():
    owners: dict[str, str] = {}
    for name in filter(public, MODULES):
        module = importlib.import_module(name)
        if hasattr(module, "__path__") or name == "metabook.__main__":
            continue
        for item in module.__all__:
            assert item not in owners, f"{item} is exported by {owners.get(item)} and {name}"
            owners[item] = name
    for name in filter(public, MODULES):
        package = importlib.import_module(name)
        if not hasattr(package, "__path__") or name == "metabook":
            continue
        # a package re-exports every name of each of its modules that it imports from (a
        # new module is exported once its package imports it; until then it is reachable as
        # package.module, e.g. through the registry)
        children = [
            importlib.import_module(other)
            for other in imports_of(name)
            if other.startswith(name + ".") and public(other)
        ]
        assert children, f"{name} re-exports nothing"
        union = {item for child in children for item in child.__all__}
        assert set(package.__all__) == union, name
    top = {item for m in ("learners", "evaluation", "training", "checkpoints", "config",
                          "registry", "runtime") for item in getattr(mb, m).__all__}  # fmt: skip
    assert top <= set(mb.__all__)
    assert {n.split(".")[1] for n in MODULES if n.count(".") == 1 and public(n)} - {
        "__main__"
    } <= set(mb.__all__)


def test_functions_are_at_most_60_lines():
    long = []
    for name in MODULES:
        for node in ast.walk(ast.parse(source_of(name).read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert not long, long


def test_docstrings_cite_the_bibliography_or_a_chapter_not_the_seed_articles():
    for name in MODULES:
        text = source_of(name).read_text().lower()
        for phrase in ("seed 00", "seed's", "seeds'"):
            assert phrase not in text, f"{name} mentions {phrase!r}"


def test_importing_metabook_warns_about_nothing():
    command = [sys.executable, "-W", "error", "-c", "import metabook, metabook.cli"]
    subprocess.run(command, check=True, capture_output=True)


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_old_module_paths_work_for_one_release(old):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated.*{MOVED_MODULES[old]}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED_MODULES[old])


def test_old_names_and_arguments_work_for_one_release():
    with pytest.warns(DeprecationWarning, match="metabook.pick_device"):
        assert mb.device("cpu") == torch.device("cpu")
    with pytest.warns(DeprecationWarning, match="use channels="):
        assert mb.models.Conv4(hidden=8).embedding_dim == mb.models.Conv4(channels=8).embedding_dim
    with pytest.warns(DeprecationWarning, match="use hidden_sizes="):
        mb.models.MLP(hidden=(3,))
    with pytest.warns(DeprecationWarning, match="use inner_steps="):
        assert mb.MetaLSTM(mb.models.MLP(), steps=2).inner_steps == 2
    with pytest.raises(TypeError, match="both hidden= and channels="):
        mb.models.Conv4(hidden=8, channels=8)
    with pytest.warns(DeprecationWarning, match="metabook.files.DataNotFoundError"):
        assert mb.data.DataNotFoundError is mb.files.DataNotFoundError


class OldStyle(mb.FewShotLearner):
    """A learner written for 0.1: ``forward`` takes no ``ways``."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, support_x, support_y, query_x):
        return torch.zeros(*query_x.shape[:-1], 2) + self.w


def test_a_learner_written_for_0_1_still_trains_and_evaluates():
    x, y = torch.zeros(4, 3), torch.tensor([0, 0, 1, 1])
    episode = mb.data.Episode(x, y, x, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert mb.evaluate(OldStyle(), [episode]).mean == 0.5
        OldStyle().loss(episode).backward()
    assert any("without ways" in str(w.message) for w in caught)
