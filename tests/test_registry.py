"""The task registry is the one table of tasks: every list and dispatch in the package is derived from it.

Each task declares a ``spec.py``; these tests check that the specs are complete and well-formed, and that
the command line, model cards, ``hrnet list``, ``load_model`` and export all read them rather than a
table of their own.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import hrnet
from hrnet import registry
from hrnet.cli import build_parser, main
from hrnet.detection.model import FRAMEWORKS
from hrnet.export import load_source
from hrnet.loader import list_models, model_from_card
from hrnet.models.card import ModelCard

SRC = Path(hrnet.__file__).resolve().parent
CONFIGS = SRC.parents[1] / "configs"


def test_the_four_tasks_are_found_from_their_folders():
    assert registry.names() == ("cls", "det", "pose", "seg")
    assert [s.package for s in registry.specs()] == [
        "hrnet.classification",
        "hrnet.detection",
        "hrnet.pose",
        "hrnet.segmentation",
    ]
    with pytest.raises(ValueError, match="unknown task 'depth'; tasks: cls, det, pose, seg"):
        registry.get("depth")


@pytest.mark.parametrize("spec", registry.specs(), ids=lambda s: s.name)
def test_every_reference_of_a_spec_resolves_inside_its_package_or_the_models_layer(spec):
    for ref in spec.refs():
        assert ref.module.startswith((spec.package + ".", "hrnet.models.")), ref.target
        assert callable(ref.load()), ref.target
    assert (CONFIGS / spec.config_dir).is_dir()
    names = spec.list_models.load()()
    owned = [n for n in names if registry.spec_of_model(n) is spec]
    assert owned, f"{spec.name} lists no model of its own"


def test_model_names_map_to_their_task():
    assert registry.spec_of_model("pose_hrnet_w32").name == "pose"
    assert registry.spec_of_model("seg_hrnet_w48").name == "seg"
    assert registry.spec_of_model("hrnet_w18_small_v2").name == "cls"
    for framework in FRAMEWORKS:
        assert registry.spec_of_model(f"{framework}_hrnet_w32").name == "det"
    # the detection spec's prefixes are exactly the detection frameworks
    assert set(registry.get("det").model_prefixes) == {f"{f}_" for f in FRAMEWORKS}


def test_interfaces_are_provided_exactly_once():
    for spec in registry.specs():
        for interface in spec.requires:
            assert callable(registry.provider(interface).load())


def test_cli_tasks_cards_list_and_export_are_derived_from_the_registry(capsys):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(registry.names()) <= set(sub.choices)
    assert main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert tuple(listed) == registry.names()
    assert "faster_rcnn_hrnet_w32" in listed["det"] and "pose_hrnet_w32" in listed["pose"]
    assert sum(map(len, listed.values())) == len(list_models())
    with pytest.raises(ValueError, match=r"task must be one of \('cls', 'det', 'pose', 'seg'\)"):
        ModelCard(task="depth", model="x", num_outputs=1, labels=["a"])
    for spec in registry.specs():
        if spec.default_card is None:
            assert spec.export is None  # nothing to export from a bare name
            continue
        name = next(n for n in spec.list_models.load()() if registry.spec_of_model(n) is spec)
        card = spec.default_card.load()(name, (64, 64))
        assert card.task == spec.name
        model = model_from_card(card)
        assert model.head_size == card.num_outputs
        if spec.export is not None:
            _, exported_card = load_source(name, input_size=(64, 64))
            assert exported_card == card


def test_hrnet_list_shows_detection_models(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    tasks = {line.split()[0] for line in out}
    assert tasks == set(registry.names())
    assert "det   cascade_mask_rcnn_hrnet_w32" in out and "cls   hrnet_w48" in out
    assert main(["list", "--task", "det", "w18"]) == 0
    assert capsys.readouterr().out.split() == [t for n in list_models("w18", task="det") for t in ("det", n)]


def _task_tables(path: Path) -> list[str]:
    """Literal tuples / lists / sets / dict keys in ``path`` naming two or more tasks: a hand-kept task table."""
    tasks = set(registry.names())
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        elements = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
        if not isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)) or elements is None:
            continue
        named = {e.value for e in elements if isinstance(e, ast.Constant) and e.value in tasks}
        if len(named) >= 2:
            found.append(f"{path.relative_to(SRC)}:{node.lineno} {sorted(named)}")
    return found


def test_no_module_keeps_its_own_table_of_tasks():
    tables = [t for p in sorted(SRC.rglob("*.py")) for t in _task_tables(p)]
    assert tables == []
