"""The runtimes' export cache and the ``auto`` policy.

Truth: the files the cache leaves on disk (count, mtime, content), the eager model's outputs, and the
policy's decisions worked out by hand from its cost model (no timing is asserted anywhere).
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from dataclasses import replace

import pytest
import torch

import hrnet
from hrnet.cli import build_parser
from hrnet.runtime import (
    RUNTIMES,
    AutoPolicy,
    AutoRunner,
    cache_root,
    export_key,
    key_digest,
    optimize_for_inference,
    weights_digest,
)

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TINY = dict(stage_modules=(1, 1, 1))
SIZE = (64, 48)
FREE = AutoPolicy(  # every setup estimated free: auto takes the fastest runtime as soon as it can
    fuse_s=0,
    fuse_s_per_mparam=0,
    load_s=0,
    load_s_per_mparam=0,
    export_s=0,
    export_s_per_module=0,
    export_s_per_mparam=0,
    probe_min_images=1,
)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return hrnet.create_model("pose_hrnet_w18_small_v1", **TINY).eval()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max())


def _exports(folder) -> list:
    return sorted(folder.glob("*.onnx"))


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HRNET_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine" / "runtime"
    monkeypatch.delenv("HRNET_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "hrnet" / "runtime"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "hrnet" / "runtime"


def test_export_key_names_weights_size_and_versions() -> None:
    model = _model()
    key = export_key(model, SIZE)
    assert key["input"] == list(SIZE) and key["opset"] == 18 and key["device"] == "cpu"
    assert set(key["versions"]) == {"torch", "onnx", "onnxruntime", "hrnet"}
    assert key["weights"] == weights_digest(model) and len(key["weights"]) == 64
    twin = copy.deepcopy(model)  # the same values in another object: the same key
    assert key_digest(export_key(twin, SIZE)) == key_digest(key)
    with torch.no_grad():
        twin.final_layer.weight[0, 0, 0, 0] += 1e-3  # one changed value: another key
    assert export_key(twin, SIZE)["weights"] != key["weights"]
    assert key_digest(export_key(model, (96, 64))) != key_digest(key)
    assert key_digest(export_key(model, SIZE, opset=19)) != key_digest(key)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A cache folder holding the exports of a model and of a copy with one changed bias (two exports)."""
    folder = tmp_path_factory.mktemp("cache")
    model = _model()
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.final_layer.bias += 0.5
    runners = [optimize_for_inference(m, "onnx", (1, 3, *SIZE), cache=folder) for m in (model, changed)]
    return folder, model, changed, runners


def test_second_runner_reuses_the_export_and_a_changed_weight_exports_again(exported) -> None:
    folder, model, changed, (first, first_changed) = exported
    x = torch.randn(3, 3, *SIZE)
    with torch.no_grad():
        ref, ref_changed = model(x), changed(x)
    assert first.exports == 1 and first_changed.exports == 1  # a changed weight: a key of its own, exported
    files = _exports(folder)
    assert len(files) == 2
    for path in files:  # the key, in clear, beside each export
        key = json.loads(path.with_suffix(".json").read_text())
        assert key["input"] == list(SIZE) and path.stem == key_digest(key)
    stamps = [p.stat().st_mtime_ns for p in files]

    second = optimize_for_inference(model, "onnx", (1, 3, *SIZE), cache=folder)
    assert second.exports == 0  # loaded: the exporter did not run again, no file was written
    assert _exports(folder) == files and [p.stat().st_mtime_ns for p in files] == stamps
    assert _rel(ref, second(x)) < 1e-4 and _rel(ref, first(x)) < 1e-4
    assert _rel(ref_changed, first_changed(x)) < 1e-4  # the new weights' outputs, not the cached model's
    assert _rel(ref, ref_changed) > 1e-3


def test_corrupt_cache_entry_is_rebuilt_with_a_log_line(exported, tmp_path, caplog) -> None:
    source, model, changed, _ = exported
    folder = tmp_path / "cache"
    shutil.copytree(source, folder)
    path = folder / f"{key_digest(export_key(model, SIZE))}.onnx"
    other = folder / f"{key_digest(export_key(changed, SIZE))}.onnx"
    path.write_bytes(path.read_bytes()[:2000])  # a truncated file, as a crash of another tool would leave
    with caplog.at_level(logging.WARNING, logger="hrnet"):
        runner = optimize_for_inference(model, "onnx", (1, 3, *SIZE), cache=folder)
    assert runner.exports == 1
    assert any("corrupt cache entry" in r.getMessage() and path.name in r.getMessage() for r in caplog.records)
    assert path.stat().st_size > 2000 and len(_exports(folder)) == 2
    x = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        assert _rel(model(x), runner(x)) < 1e-4
    # an entry holding another key's export (copied by hand) is discarded the same way
    path.write_bytes(other.read_bytes())
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hrnet"):
        again = optimize_for_inference(model, "onnx", (1, 3, *SIZE), cache=folder)
    assert again.exports == 1 and any("corrupt cache entry" in r.getMessage() for r in caplog.records)
    with torch.no_grad():
        assert _rel(model(x), again(x)) < 1e-4


def test_default_cache_is_the_environment_folder(exported, monkeypatch, tmp_path) -> None:
    source, model, _, _ = exported
    shutil.copytree(source, tmp_path / "runtime")
    monkeypatch.setenv("HRNET_CACHE", str(tmp_path))
    assert optimize_for_inference(model, "onnx", (1, 3, *SIZE)).exports == 0  # found there, not exported
    assert optimize_for_inference(model, "onnx", cache=False).cache is None


def test_auto_takes_the_fastest_runtime_once_setup_is_free(tmp_path) -> None:
    model, folder = _model(), tmp_path / "cache"
    x = torch.randn(5, 3, *SIZE)
    with torch.no_grad():
        ref = model(x)
    auto = optimize_for_inference(model, "auto", cache=folder, policy=FREE)
    assert isinstance(auto, AutoRunner)
    out = auto(x)  # one image eager (timed), then the export (checked against eager) for the other four
    assert auto.used == {SIZE: "onnx"} and auto._onnx is not None and auto._onnx.exports == 1
    assert _rel(ref, out) < 1e-4 and len(_exports(folder)) == 1
    # export not allowed and nothing cached: torch; with the export cached: onnx, loaded, not exported
    no_export = replace(FREE, export=False)
    cold = optimize_for_inference(model, "auto", cache=tmp_path / "empty", policy=no_export)
    assert _rel(ref, cold(x)) < 1e-4 and cold.used == {SIZE: "torch"}
    warm = optimize_for_inference(model, "auto", cache=folder, policy=no_export)
    assert _rel(ref, warm(x)) < 1e-4 and warm.used == {SIZE: "onnx"} and warm._onnx.exports == 0


def test_auto_decisions_follow_the_cost_model_by_hand() -> None:
    """torch at 0.8 of eager's time with a 1 s setup, onnx unavailable, eager 0.1 s per image."""
    policy = AutoPolicy(torch_speed=0.8, fuse_s=1.0, fuse_s_per_mparam=0.0)
    auto = AutoRunner(_model(), torch.device("cpu"), policy=policy, cache=False)
    auto.onnx_ok = False
    auto.eager_s[SIZE] = 0.1
    assert auto._choose(SIZE, 40) == ("eager", 0.0)  # 40 x 0.1 s x (1 - 0.8) = 0.8 s saved < 1 s setup
    assert auto._choose(SIZE, 60) == ("torch", 1.0)  # 1.2 s saved >= 1 s: pays within the batch, and is safe
    # a later small batch: 10 s seen so far pays (10 x 0.2 = 2 s), but is it safe? only with enough saved
    auto.seen_s, auto.saved_s = 10.0, 0.5
    assert auto._choose(SIZE, 10)[0] == "eager"  # 0.5 + 1 x 0.2 = 0.7 s < 1 s: could end behind eager
    auto.saved_s = 0.9
    assert auto._choose(SIZE, 10)[0] == "torch"  # 0.9 + 0.2 = 1.1 s >= 1 s
    auto.used[SIZE] = "torch"
    assert auto._choose(SIZE, 1000)[0] == "torch"  # nothing faster available


def test_auto_decides_for_the_announced_job() -> None:
    """Batches of 16 that cannot pay for a setup alone switch when 40 images are announced (expect)."""
    model = _model()
    batches: list[int] = []
    model.register_forward_hook(lambda _m, inputs, _out: batches.append(len(inputs[0])))
    auto = AutoRunner(model, torch.device("cpu"), cache=False)
    auto.onnx_ok = False
    x = torch.randn(16, 3, *SIZE)
    auto(x[:3])  # a small first batch runs eager whole, its multiply-adds counted: eager's cost t per image
    assert batches == [3]
    t = auto.eager_s[SIZE]
    auto.policy = replace(auto.policy, torch_speed=0.7, fuse_s=9 * t, fuse_s_per_mparam=0.0)  # pays from 30 images
    auto(x)  # 16 x 0.3 t = 4.8 t < 9 t, and the 19 t seen so far pays 5.7 t: eager
    assert auto.used == {SIZE: "eager"}
    auto.expect(40)  # 40 x 0.3 t = 12 t >= 9 t, and safe: the 40 images earn it back
    out = auto(x)
    assert auto.used == {SIZE: "torch"} and auto.pending == 24
    # the fused copy keeps the hook: torch's check image, eager's check image, then torch's batch
    assert batches == [3, 16, 1, 1, 16]
    with torch.no_grad():
        assert _rel(model(x), out) < 1e-4


def test_auto_on_w32_one_photo_stays_eager_and_a_folder_switches() -> None:
    """The default policy on pose W32 (28.5 M parameters, 7.65 GMAC per 256x192 crop, counted on the
    first crop): eager 7.65e9 / 75e9 = 0.102 s per crop; torch's setup 0.05 + 0.04 x 28.5 = 1.19 s,
    loading a cached export 0.1 + 0.04 x 28.5 = 1.24 s (all in reference seconds)."""
    torch.manual_seed(0)
    auto = AutoRunner(hrnet.create_model("pose_hrnet_w32").eval(), torch.device("cpu"), cache=False)
    auto.onnx_ok = False
    big = (256, 192)
    auto(torch.randn(1, 3, *big))  # one crop: eager, and its multiply-adds counted (docs/speed.md: 15.3 GFLOP)
    assert auto.eager_s[big] == pytest.approx(7.645e9 / 75e9, rel=1e-3) and auto.used == {big: "eager"}
    # one photo of 6 people, flip test: 12 crops, 11 after the counted one -> 11 x 0.102 x 0.3 = 0.34 s < 1.19 s
    assert auto._choose(big, 11)[0] == "eager"
    # a folder, first batch of 64 crops: 63 x 0.102 x 0.3 = 1.93 s >= 1.19 s
    assert auto._choose(big, 63)[0] == "torch"
    # with this model's export in the cache: 11 x 0.102 x 0.45 = 0.5 s < 1.24 s; 63 crops: 2.9 s >= 1.24 s
    auto.onnx_ok, auto.cached[big] = True, True
    assert auto._choose(big, 11)[0] == "eager" and auto._choose(big, 63)[0] == "onnx"
    # without it, an export (~36 s here) pays only once far more work has been seen and saved
    auto.cached[big] = False
    assert auto._choose(big, 63)[0] == "torch"
    auto.seen_s, auto.saved_s = 100.0, 40.0
    assert auto._choose(big, 63)[0] == "onnx"


def _choices(parser, *path: str) -> tuple:
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0])))
        parser = sub.choices[name]
    return tuple(next(a for a in parser._actions if a.dest == "runtime").choices)


def test_runtime_names_are_one_table() -> None:
    """Every predict verb offers exactly the runtime module's names."""
    assert RUNTIMES == ("auto", "eager", "torch", "compile", "onnx")
    parser = build_parser()
    for task in ("pose", "seg", "cls"):
        assert _choices(parser, task, "predict") == RUNTIMES
