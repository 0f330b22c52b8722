"""The package's layers, read from the source: models and engine import no task, no task imports another,
every task folder has the same rooms, and the imports form no circle.

"Import" means every way a module can pull in another: module-level and function-local ``import`` /
``from ... import`` statements, and the module names given as strings to ``import_module``, to the
registry's ``Ref("hrnet.pose.api:PoseEstimator")`` and to ``lazy_package`` tables.
The checks run on a tree given as an argument, so the tests below also plant violations in a copy and
watch them fail.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "hrnet"
TASKS = ("pose", "segmentation", "classification", "detection")
ROOMS = ("config.py", "model.py", "train.py", "api.py", "cli.py", "spec.py")
# calls whose string arguments name modules that will be imported
_IMPORTING_CALLS = ("import_module", "__import__", "Ref", "lazy_package")
_MODULE_STRING = re.compile(r"^(hrnet(?:\.\w+)*)(?::[\w.]+)?$")


def _module(root: Path, path: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path) -> dict[str, Path]:
    return {_module(root, p): p for p in sorted(root.rglob("*.py"))}


def _resolve(name: str, known: set[str]) -> str | None:
    """The known module ``name`` refers to (``hrnet.x.y`` of an attribute ``y`` -> ``hrnet.x``)."""
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in known else None


def _called(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def imports(path: Path, known: set[str]) -> set[str]:
    """Every hrnet module that ``path`` imports, by any of the means in this file's docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("hrnet"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hrnet"):
            # "from hrnet.pose import model" imports the module hrnet.pose.model; "from hrnet import registry"
            # reads it through the top-level face (hrnet/__init__, which imports the loader and the models),
            # so it depends on that face too: a module below it closes a circle that way
            subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known]
            found.update(subs or [node.module])
            if node.module == "hrnet":
                found.add("hrnet")
        elif isinstance(node, ast.Call) and _called(node) in _IMPORTING_CALLS:
            for inner in ast.walk(node):
                if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                    m = _MODULE_STRING.match(inner.value)
                    if m and _resolve(m.group(1), known) not in (None, "hrnet"):
                        found.add(m.group(1))
    out = {_resolve(name, known) for name in found}
    return {m for m in out if m is not None}


def import_graph(root: Path) -> dict[str, set[str]]:
    mods = _modules(root)
    known = set(mods)
    return {name: imports(path, known) - {name} for name, path in mods.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layering_violations(root: Path) -> list[str]:
    """'a imports b' for each edge that crosses the layers."""
    bad = []
    for module, targets in import_graph(root).items():
        owner = _layer(module)
        for target in sorted(targets):
            other = _layer(target)
            if owner in ("models", "engine") and other in TASKS:
                bad.append(f"{module} imports task code {target}")
            elif owner in TASKS and other in TASKS and other != owner:
                bad.append(f"{module} imports another task {target}")
    return bad


def circles(root: Path) -> list[list[str]]:
    """The strongly connected components of the import graph with more than one module (Tarjan)."""
    graph = import_graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_models_and_engine_import_no_task_and_no_task_imports_another():
    assert layering_violations(SRC) == []


def test_every_task_has_the_same_rooms():
    for task in TASKS:
        missing = [room for room in ROOMS if not (SRC / task / room).is_file()]
        assert not missing, f"hrnet.{task} lacks {missing}"


def test_imports_have_no_circle():
    found = circles(SRC)
    print("import circles (function-local imports and import strings included):", found)
    assert found == []


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "hrnet"
    shutil.copytree(SRC, root, ignore=shutil.ignore_patterns("__pycache__"))
    assert layering_violations(root) == [] and circles(root) == []
    return root


def _plant(path: Path, code: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n\n" + code + "\n", encoding="utf-8")


def test_a_planted_function_local_cross_task_import_is_caught(tree):
    _plant(tree / "pose" / "api.py", "def _sneak():\n    from hrnet.detection.model import build_detector\n")
    assert layering_violations(tree) == ["hrnet.pose.api imports another task hrnet.detection.model"]


def test_a_planted_import_module_of_another_task_is_caught(tree):
    _plant(
        tree / "segmentation" / "train.py",
        "def _sneak():\n    import importlib\n\n    return importlib.import_module('hrnet.classification.api')\n",
    )
    assert layering_violations(tree) == ["hrnet.segmentation.train imports another task hrnet.classification.api"]


def test_a_planted_engine_import_of_a_task_and_a_circle_are_caught(tree):
    _plant(tree / "engine" / "trainer.py", "def _sneak():\n    from hrnet.pose import model\n")
    assert layering_violations(tree) == ["hrnet.engine.trainer imports task code hrnet.pose.model"]
    _plant(tree / "models" / "fuse.py", "def _sneak():\n    from hrnet.models import complexity\n")
    _plant(tree / "models" / "complexity.py", "def _sneak():\n    from hrnet.models import fuse\n")
    assert ["hrnet.models.complexity", "hrnet.models.fuse"] in circles(tree)
