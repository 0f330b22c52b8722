"""The package's layers, read from the source: models and engine import no task, no task imports another,
every task folder has the same rooms, and module-level imports form no circle."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "hrnet"
TASKS = ("pose", "segmentation", "classification", "detection")
ROOMS = ("config.py", "model.py", "train.py", "api.py", "cli.py")


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """hrnet modules imported by ``path`` (anywhere, or only at module level)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("hrnet"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hrnet"):
            out.add(node.module)
    return out


def _module(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_models_and_engine_import_no_task():
    for path in _files():
        layer = path.relative_to(SRC).parts[0]
        if layer in ("models", "engine"):
            bad = [m for m in _imports(path, False) if m.split(".")[1:2] and m.split(".")[1] in TASKS]
            assert not bad, f"{path}: imports task code {bad}"


def test_no_task_imports_another():
    for path in _files():
        owner = path.relative_to(SRC).parts[0]
        if owner in TASKS:
            bad = [
                m
                for m in _imports(path, False)
                if len(m.split(".")) > 1 and m.split(".")[1] in TASKS and m.split(".")[1] != owner
            ]
            assert not bad, f"{path}: imports another task {bad}"


def test_every_task_has_the_same_rooms():
    for task in TASKS:
        missing = [room for room in ROOMS if not (SRC / task / room).is_file()]
        assert not missing, f"hrnet.{task} lacks {missing}"


def test_module_level_imports_have_no_circle():
    graph = {_module(p): {m for m in _imports(p, True)} for p in _files()}
    known = set(graph)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            while nxt not in known and "." in nxt:  # "from hrnet.x import name" of a package attribute
                nxt = nxt.rsplit(".", 1)[0]
            if nxt not in known or nxt == node:
                continue
            if state.get(nxt) == 1:
                raise AssertionError(f"import circle: {' -> '.join(trail + [node, nxt])}")
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
