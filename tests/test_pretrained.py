"""The pretrained-weights zoo: the table's facts, the cards its entries become, and name -> verified,
carded file through a loopback HTTP mirror (tests never touch the network)."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import hrnet
from hrnet import pretrained
from hrnet.detection.checkpoints import load_detection_weights
from hrnet.detection.labels import COCO_CATEGORY_IDS, COCO_CLASSES
from hrnet.detection.model import build_detector
from hrnet.loader import model_from_card
from hrnet.models.download import DownloadError, cache_dir
from hrnet.pose.keypoints import load_keypoint_set
from hrnet.pose.model import card_keypoint_set
from hrnet.segmentation.labels import dataset_classes

from .detection.test_det_checkpoints import W18_SMALL_V1, checkpoint_shapes, fill
from .models.official_layout import official_pose, official_seg, random_state

ENTRIES = pretrained.list_entries()
HEX = re.compile(r"[0-9a-f]{8,64}")
# head sizes of the data sets, from the data sets' definitions
HEADS = {
    ("pose", "coco"): 17,
    ("pose", "mpii"): 16,
    ("pose", "crowdpose"): 14,
    ("pose", "aic"): 14,
    ("pose", "coco_wholebody"): 133,
    ("pose", "hand"): 21,
    ("pose", "wflw"): 98,
    ("pose", "300w"): 68,
    ("pose", "cofw"): 29,
    ("pose", "aflw"): 19,
    ("seg", "cityscapes"): 19,
    ("seg", "pascal_context59"): 59,
    ("seg", "lip"): 20,
    ("det", "coco"): 80,
    ("cls", "imagenet"): 1000,
}
# #params the paper's tables give (Table 1 pose, Table 3 segmentation) and the official classification
# README: a card that builds another network than the published one fails here
PUBLISHED_PARAMS_M = {
    "pose_hrnet_w32": 28.5,
    "pose_hrnet_w48": 63.6,
    "seg_hrnet_w48": 65.9,
    "hrnet_w18_small_v1": 13.2,
    "hrnet_w18_small_v2": 15.6,
    "hrnet_w18": 21.3,
    "hrnet_w30": 37.7,
    "hrnet_w32": 41.2,
    "hrnet_w40": 57.6,
    "hrnet_w44": 67.1,
    "hrnet_w48": 77.5,
    "hrnet_w64": 128.1,
}


# ------------------------------------------------------------------------------------------- the table


def test_names_are_unique_model_dot_tag():
    names = [e.name for e in ENTRIES]
    assert len(names) == len(set(names)) >= 30
    for e in ENTRIES:
        assert e.name == f"{e.model}.{e.tag}" and "." not in e.tag
        family = "pose" if e.model.startswith("pose_") else "seg" if e.model.startswith("seg_") else None
        family = family or ("det" if "rcnn_hrnet_w" in e.model else "cls")
        assert e.task == family, e.name


def test_every_entry_has_url_layout_licence_metric():
    for e in ENTRIES:
        assert e.urls and all(u.startswith(("https://", "hf-hub:")) for u in e.urls), e.name
        assert e.layout in pretrained.LAYOUTS, e.name
        assert e.licence in ("Apache-2.0", "MIT"), e.name
        assert e.source and e.checked, e.name
        assert 0 < e.metric.value <= 100 and e.metric.dataset, e.name
        if e.paper is not None:
            # the same setting in the paper: a typo (7.44 for 74.4) or a wrong table row shows here
            assert abs(e.paper.value - e.metric.value) < 3.5, e.name


def test_every_direct_download_pins_a_sha256():
    """Files on download hosts carry a digest; only the upstreams that publish none (official seg release
    assets, timm's hub copies, which the hub client fetches) are unpinned."""
    for e in ENTRIES:
        if e.sha256 is None:
            assert e.layout in ("official_seg", "timm"), e.name
        else:
            assert HEX.fullmatch(e.sha256), e.name


def test_openmmlab_digests_are_the_ones_in_the_file_names():
    """OpenMMLab's publish_model names a file ``...-<sha256[:8]>[_<date>].pth``: the pin must be that."""
    mmlab = [e for e in ENTRIES if "download.openmmlab.com" in e.urls[0]]
    assert len(mmlab) >= 20
    for e in mmlab:
        match = re.search(r"-([0-9a-f]{8})(?:_\d{8})?\.pth$", e.urls[0])
        assert match and e.sha256 == match.group(1), e.name
        assert e.layout in ("mmpose0", "mmpose1", "mmseg", "mmdet2"), e.name
        assert ("/mmpose/v1/" in e.urls[0]) == (e.layout == "mmpose1"), e.name


def test_required_coverage():
    names = {e.name for e in ENTRIES}
    for w in (32, 48):
        for size in ("256x192", "384x288"):
            assert f"pose_hrnet_w{w}.coco_{size}" in names
            assert f"pose_hrnet_w{w}.coco_{size}_dark" in names
        assert f"pose_hrnet_w{w}.mpii_256x256" in names
    assert {"pose_hrnet_w32.crowdpose_256x192", "pose_hrnet_w32.aic_256x192"} <= names
    assert {"seg_hrnet_w48.cityscapes", "seg_hrnet_w18.cityscapes", "seg_hrnet_w18_small_v2.cityscapes"} <= names
    assert {"seg_hrnet_w48.pascal_context59", "seg_hrnet_w48.lip"} <= names
    assert {"faster_rcnn_hrnet_w32.coco", "mask_rcnn_hrnet_w32.coco", "cascade_mask_rcnn_hrnet_w32.coco"} <= names
    assert {f"hrnet_w{w}.ms_in1k" for w in (18, 30, 32, 40, 44, 48, 64)} <= names
    assert pretrained.entry("seg_hrnet_w48.cityscapes").layout == "official_seg"
    assert pretrained.entry("seg_hrnet_w18.cityscapes").layout == "mmseg"
    assert all(e.layout == "mmdet2" for e in ENTRIES if e.task == "det")


def test_one_default_tag_per_model():
    models = sorted({e.model for e in ENTRIES})
    for model in models:
        defaults = [e for e in ENTRIES if e.model == model and e.default]
        assert len(defaults) == 1, model
        assert pretrained.default_tag(model) == defaults[0].tag
        assert pretrained.entry(model) is defaults[0]
    assert pretrained.default_tag("pose_hrnet_w32") == "coco_256x192"
    assert pretrained.entry("hrnet_w18_small").name == "hrnet_w18_small_v1.ms_in1k"  # the zoo's alias
    assert pretrained.default_tag("pose_hrnet_w18") is None


def test_unknown_names_are_one_line_with_suggestions():
    with pytest.raises(ValueError, match=r"did you mean pose_hrnet_w32\.coco_256x192"):
        pretrained.entry("pose_hrnet_w32.coco_265x192")
    with pytest.raises(ValueError, match="no pretrained weights for 'pose_hrnet_w18'"):
        pretrained.entry("pose_hrnet_w18")
    assert pretrained.ENTRIES == tuple(ENTRIES)


def test_entry_fields_are_validated():
    e = pretrained.entry("pose_hrnet_w32.coco_256x192")
    for bad in (
        dict(layout="mmpose2"),
        dict(sha256="81c58e4"),
        dict(sha256="zz" * 4),
        dict(urls=()),
        dict(name="pose_hrnet_w32"),
        dict(input_size=(256,)),
        dict(card={"labels": ["x"]}),
    ):
        with pytest.raises(ValueError, match="pretrained entry"):
            dataclasses.replace(e, **bad)
    assert dataclasses.replace(e, sha256="81C58E40").sha256 == "81c58e40"


# ------------------------------------------------------------------------------------------- the cards


@pytest.mark.parametrize("name", [e.name for e in ENTRIES])
def test_every_card_builds_its_network(name):
    e = pretrained.entry(name)
    card = pretrained.entry_card(e)
    assert (card.task, card.model) == (e.task, e.model)
    assert card.num_outputs == len(card.labels) == HEADS[(e.task, e.dataset)]
    assert card.input_size == list(e.input_size)
    assert card.train["weights"]["entry"] == name and card.train["value"] == e.metric.value
    assert card.train["licence"] == e.licence
    params = pretrained.param_count(e)  # builds the network on the meta device
    if e.model in PUBLISHED_PARAMS_M:
        assert round(params / 1e6, 1) == pytest.approx(PUBLISHED_PARAMS_M[e.model], abs=0.1), name


def test_pose_cards_carry_the_shipped_keypoint_sets_and_test_settings():
    for e in (x for x in ENTRIES if x.task == "pose"):
        card = pretrained.entry_card(e)
        ks, ref = card_keypoint_set(card), load_keypoint_set(e.dataset)
        assert ks.names == ref.names and ks.flip_pairs == ref.flip_pairs and ks.skeleton == ref.skeleton, e.name
        if ref.sigmas is None:  # face landmark sets: scored by NME, no OKS sigmas
            assert ks.sigmas is None, e.name
        else:
            assert np.allclose(ks.sigmas, ref.sigmas), e.name
        assert card.test == {"flip_test": True, "shift_heatmap": True, "dark": e.tag.endswith("_dark")}, e.name


def test_segmentation_and_detection_presets_equal_the_task_tables():
    for e in (x for x in ENTRIES if x.task == "seg"):
        card = pretrained.entry_card(e)
        names, palette, pairs = dataset_classes(e.dataset)
        assert card.labels == list(names), e.name
        assert card.meta["palette"][: len(names)] == [list(c) for c in palette], e.name
        assert card.meta["flip_pairs"] == [list(p) for p in pairs], e.name
        assert card.test["protocol"] in ("official-cityscapes", "official-generic"), e.name
        assert card.overrides == {}, e.name  # the official files use align_corners=False: the seg_ default
    lip = pretrained.entry_card(pretrained.entry("seg_hrnet_w48.lip"))
    assert lip.test["resize_to"] == [473, 473] and lip.test["flip"] is True
    for e in (x for x in ENTRIES if x.task == "det"):
        card = pretrained.entry_card(e)
        assert card.labels == list(COCO_CLASSES) and card.meta["category_ids"] == list(COCO_CATEGORY_IDS)
        assert card.meta["bgr"] is False and (card.meta["min_size"], card.meta["max_size"]) == (800, 1333)


def test_layout_check_names_the_expected_keys():
    pretrained.check_layout({"module.conv1.weight": 0, "final_layer.weight": 0}, "official_pose", "f")
    pretrained.check_layout({"model.conv1.weight": 0, "model.last_layer.3.weight": 0}, "official_seg", "f")
    pretrained.check_layout(
        {"backbone.conv1.weight": 0, "rpn_head.rpn_conv.weight": 0, "roi_head.bbox_head.2.fc_cls.weight": 0}
        | {"roi_head.bbox_head.0.fc_cls.weight": 0},
        "mmdet2",
        "f",
    )
    with pytest.raises(ValueError, match=r"f: not a mmpose1 file \(expected keys backbone.conv1.weight"):
        pretrained.check_layout({"backbone.conv1.weight": 0, "keypoint_head.final_layer.weight": 0}, "mmpose1", "f")


def test_table_lists_every_entry_with_its_columns():
    rows = pretrained.pretrained_table(task="seg")
    assert [r["name"] for r in rows] == [e.name for e in ENTRIES if e.task == "seg"]
    row = next(r for r in rows if r["name"] == "seg_hrnet_w48.cityscapes")
    assert row["metric"] == "mIoU 80.9" and row["paper"] == 81.1 and row["input"] == "1024x2048"
    assert round(row["params"] / 1e6, 1) == 65.9 and row["licence"] == "MIT" and row["default"] is True
    lines = pretrained.format_pretrained_table(rows)
    assert lines[0].split()[:3] == ["name", "task", "metric"] and len(lines) == len(rows) + 1
    mask = next(r for r in pretrained.pretrained_table(task="det") if r["name"] == "mask_rcnn_hrnet_w32.coco")
    assert mask["metric"] == "box AP 41.2, mask AP 37.1"


# ---------------------------------------------------------------------------- through a loopback mirror


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet test output
        pass


@dataclasses.dataclass
class Mirror:
    """The served folder and the paths requested from it."""

    root: Path
    requests: list[str]


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    """A folder served over HTTP on 127.0.0.1 as ``HRNET_MIRROR``, and an empty ``HRNET_HOME``."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = type("Handler", (_Handler,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HRNET_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("HRNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HRNET_OFFLINE", raising=False)
    try:
        yield Mirror(root, handler.requests)
    finally:
        server.shutdown()
        server.server_close()


def _official_pose_file(path: Path, width: int = 8) -> dict[str, torch.Tensor]:
    """A checkpoint in the official pose_hrnet layout: key names and shapes from the official repository's
    naming (tests/models/official_layout.py), values random."""
    state = random_state(official_pose(width), seed=3, scale=0.1, batches=5)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def _test_entry(mirror: Mirror, file: str = "zoo/pose_w8.pth", **changes) -> tuple[pretrained.PretrainedEntry, dict]:
    state = _official_pose_file(mirror.root / file)
    digest = hashlib.sha256((mirror.root / file).read_bytes()).hexdigest()
    base = pretrained.entry("pose_hrnet_w32.coco_256x192")
    fields = dict(
        name="pose_hrnet_w8.coco_test",
        layout="official_pose",
        urls=(f"https://weights.example.invalid/{file}",),
        sha256=digest,
        input_size=(64, 48),
    )
    return dataclasses.replace(base, **{**fields, **changes}), state


def test_resolve_downloads_verifies_converts_once(mirror, monkeypatch):
    item, served = _test_entry(mirror)
    path = pretrained.resolve_entry(item, progress=False)
    assert path == Path(cache_dir()) / "pretrained" / "pose_hrnet_w8.coco_test.safetensors"
    assert mirror.requests == ["/zoo/pose_w8.pth"]

    card = hrnet.read_card(path)
    weights = card.train["weights"]
    assert weights["sha256"] == hashlib.sha256((mirror.root / "zoo/pose_w8.pth").read_bytes()).hexdigest()
    assert weights["url"] == item.urls[0] and weights["layout"] == "official_pose"
    assert (card.train["metric"], card.train["value"], card.train["licence"]) == ("AP", 74.6, "Apache-2.0")
    assert card.model == "pose_hrnet_w8" and card.input_size == [64, 48] and card.num_outputs == 17
    assert card.test == {"flip_test": True, "shift_heatmap": True, "dark": False}

    # every official tensor is in the converted file under its own name, unchanged
    converted = load_file(str(path))
    assert set(converted) == set(served)
    assert all(torch.equal(converted[k], served[k]) for k in served)
    # and the carded file rebuilds a network that computes what the official tensors define
    model = hrnet.load_model(path)
    reference = hrnet.create_model("pose_hrnet_w8").eval()
    reference.load_state_dict(served, strict=True)
    x = torch.randn(1, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))

    # later calls: the cached carded file, no request and nothing unpickled
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load called for a cached entry")

    monkeypatch.setattr(torch, "load", refuse)
    assert pretrained.resolve_entry(item) == path
    assert mirror.requests == ["/zoo/pose_w8.pth"]
    monkeypatch.setenv("HRNET_OFFLINE", "1")
    assert pretrained.resolve_entry(item) == path


def test_a_changed_entry_is_converted_again(mirror):
    item, _ = _test_entry(mirror)
    path = pretrained.resolve_entry(item, progress=False)
    dark = dataclasses.replace(item, card={**item.card, "test": {"flip_test": True, "dark": True}})
    assert pretrained.resolve_entry(dark, progress=False) == path
    assert hrnet.read_card(path).test["dark"] is True
    assert mirror.requests == ["/zoo/pose_w8.pth"]  # the upstream file was already in the cache


def test_a_file_with_another_digest_is_refused_and_not_kept(mirror):
    item, _ = _test_entry(mirror, sha256="0123abcd")
    with pytest.raises(ValueError, match="sha256 mismatch") as err:
        pretrained.resolve_entry(item, progress=False)
    assert "\n" not in str(err.value)
    home = Path(cache_dir())
    assert not [p for p in home.rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def test_a_file_of_another_layout_is_named_as_such(mirror):
    item, _ = _test_entry(mirror, layout="mmpose1")
    with pytest.raises(ValueError, match=r"pose_hrnet_w8\.coco_test: .*pose_w8\.pth: not a mmpose1 file"):
        pretrained.resolve_entry(item, progress=False)
    assert not (Path(cache_dir()) / "pretrained" / f"{item.name}.safetensors").exists()


def test_offline_with_an_empty_cache_names_entry_url_and_place(mirror, monkeypatch):
    item, _ = _test_entry(mirror)
    monkeypatch.setenv("HRNET_OFFLINE", "1")
    with pytest.raises(DownloadError) as err:
        pretrained.resolve_entry(item, progress=False)
    message = str(err.value)
    assert "pose_hrnet_w8.coco_test" in message and item.urls[0] in message
    assert str(Path(cache_dir()) / "downloads" / "pose_w8.pth") in message
    assert mirror.requests == [] and "\n" not in message


def _prefill(name: str) -> Path:
    """Put an entry's converted file where the cache expects it, as `hrnet download` leaves it (random
    weights; the card is the entry's own)."""
    item = pretrained.entry(name)
    card = pretrained.entry_card(item)
    return hrnet.save_weights(model_from_card(card), pretrained.cached_file(name), card=card)


def test_cli_download_cache_and_clean(mirror, capsys):
    parser = argparse.ArgumentParser(prog="hrnet")
    pretrained.add_pretrained_commands(parser.add_subparsers(dest="command", required=True))
    name = "seg_hrnet_w18_small_v2.cityscapes"
    assert not pretrained.is_cached(name)
    path = _prefill(name)
    assert pretrained.is_cached("seg_hrnet_w18_small_v2")

    args = parser.parse_args(["download", "seg_hrnet_w18_small_v2"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB)"
    assert mirror.requests == []  # converted already: nothing to download

    row = next(r for r in pretrained.pretrained_table("seg") if r["name"] == name)
    assert row["cached"] is True and row["size_mb"] == round(path.stat().st_size / 1e6, 1)

    args = parser.parse_args(["cache"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [f"{path.stat().st_size / 1e6:.1f}", "MB", f"pretrained/{name}.safetensors"]
    assert out[-1].endswith(f"in 1 file(s) under {cache_dir()}")

    args = parser.parse_args(["cache", "--clean", name])
    assert args.func(args) == 0
    assert capsys.readouterr().out.startswith("removed 1 file(s)")
    assert not path.exists() and not pretrained.is_cached(name)

    with pytest.raises(ValueError, match="unknown pretrained weights"):
        args = parser.parse_args(["download", "seg_hrnet_w18.cityscape"])
        args.func(args)


def _random(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.tensor(5) if k.endswith("num_batches_tracked") else torch.rand(s, generator=g) + 0.5
        for k, s in shapes.items()
    }


def _upstream_file(layout: str) -> tuple[object, dict[str, torch.Tensor]]:
    """A file in ``layout`` (key names of the upstream configs: mmpose's ``backbone`` + ``keypoint_head`` /
    ``head``, mmseg's ``decode_head.convs.0`` / ``conv_seg``, the official seg ``model.`` wrapper) and the
    official-layout tensors that the converted file must hold, by our (= the official) key names."""
    if layout in ("mmpose0", "mmpose1"):
        ours = _random(official_pose(8), 1)
        head = "keypoint_head" if layout == "mmpose0" else "head"
        state = {(f"{head}.{k}" if k.startswith("final_layer.") else f"backbone.{k}"): v for k, v in ours.items()}
        meta = {"epoch": 210}
        if layout == "mmpose1":  # mmpose 1.x keeps the data set's arrays as NumPy objects
            meta["dataset_meta"] = {"sigmas": np.full(17, 0.05, dtype=np.float32), "flip_indices": list(range(17))}
        return {"meta": meta, "state_dict": state}, ours
    ours = _random(official_seg(8), 2)
    if layout == "official_seg":
        return {f"model.{k}": v for k, v in ours.items()} | {"loss.criterion.weight": torch.ones(19)}, ours
    # mmseg: FCNHead(num_convs=1, kernel_size=1) = conv (no bias) + BN + ReLU, then conv_seg
    renames = {
        "last_layer.0.": "decode_head.convs.0.conv.",
        "last_layer.1.": "decode_head.convs.0.bn.",
        "last_layer.3.": "decode_head.conv_seg.",
    }
    state = {}
    for k, v in ours.items():
        prefix = next((p for p in renames if k.startswith(p)), None)
        if prefix is None:
            state[f"backbone.{k}"] = v
        elif k != "last_layer.0.bias":
            state[renames[prefix] + k[len(prefix) :]] = v
    ours["last_layer.0.bias"] = torch.zeros_like(ours["last_layer.0.bias"])  # the same function as no bias
    return {"meta": {"iter": 160000}, "state_dict": state}, ours


@pytest.mark.parametrize("layout", ["mmpose0", "mmpose1", "official_seg", "mmseg"])
def test_each_upstream_layout_converts_by_key_name(mirror, layout):
    obj, ours = _upstream_file(layout)
    file = mirror.root / f"zoo/{layout}.pth"
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, file)
    task_entry = "pose_hrnet_w32.coco_256x192" if layout.startswith("mmpose") else "seg_hrnet_w18.cityscapes"
    base = pretrained.entry(task_entry)
    item = dataclasses.replace(
        base,
        name=f"{base.model.replace('w32', 'w8').replace('w18', 'w8')}.{layout}_test",
        layout=layout,
        urls=(f"https://weights.example.invalid/zoo/{layout}.pth",),
        sha256=hashlib.sha256(file.read_bytes()).hexdigest(),
        input_size=(64, 64),
    )
    converted = load_file(str(pretrained.resolve_entry(item, progress=False)))
    assert set(converted) == set(ours)
    assert all(torch.equal(converted[k], ours[k]) for k in ours), layout


def _through_the_zoo(mirror: Mirror, base_name: str, file_obj: object, **changes) -> tuple[Path, Path]:
    """``file_obj`` saved on the mirror and resolved as a copy of entry ``base_name`` (``changes`` applied):
    the upstream file and the carded file the zoo makes of it."""
    file = mirror.root / f"zoo/{changes['layout']}.pth"
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(file_obj, file)
    item = dataclasses.replace(
        pretrained.entry(base_name),
        urls=(f"https://weights.example.invalid/zoo/{file.name}",),
        sha256=hashlib.sha256(file.read_bytes()).hexdigest(),
        **changes,
    )
    return file, pretrained.resolve_entry(item, progress=False)


def test_official_pose_layout_converts_by_key_name(mirror):
    """The official pose_hrnet file (a bare state dict under the official key names) becomes a carded file
    holding exactly those tensors, and its network runs the COCO card (17 heatmaps at a quarter of the crop)."""
    ours = _random(official_pose(8), 4)
    _, carded = _through_the_zoo(
        mirror, "pose_hrnet_w32.coco_256x192", ours, name="pose_hrnet_w8.official_test", layout="official_pose"
    )
    converted = load_file(str(carded))
    assert set(converted) == set(ours) and all(torch.equal(converted[k], ours[k]) for k in ours)
    model = hrnet.load_model(carded)
    assert len(card_keypoint_set(model.card).names) == 17
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 48)).shape == (1, 17, 16, 12)


def test_timm_layout_converts_and_predicts_as_timm(mirror):
    """A timm HRNet-C file (timm's own state dict: its key names by construction) goes through the zoo and
    the converted classifier gives timm's logits on the same image."""
    timm = pytest.importorskip("timm")
    reference = timm.create_model("hrnet_w18_small", pretrained=False).eval()
    _, carded = _through_the_zoo(
        mirror, "hrnet_w18_small_v1.ms_in1k", reference.state_dict(), name="hrnet_w18_small_v1.timm_test", layout="timm"
    )
    model = hrnet.load_model(carded).eval()
    x = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-4)


def test_mmdet_layout_converts_and_runs_with_mmdet_conventions(mirror):
    """An mmdetection 2.x Faster R-CNN file (key names and shapes from mmdet's HRNet configs, written in
    tests/detection) becomes a carded detector that runs as mmdet ran it: anchors at k*s, aligned RoIAlign,
    background last in the file and first here; its boxes equal those of the same file loaded into a
    detector built with the mmdet layout by hand."""
    state = fill(checkpoint_shapes("faster_rcnn", "mmdet", W18_SMALL_V1, classes=80, neck=16), scale=1.5)
    base = pretrained.entry("faster_rcnn_hrnet_w32.coco")
    card = {**dict(base.card), "meta": {**dict(base.card["meta"]), "options": {"neck_channels": 16}}}
    _, carded = _through_the_zoo(
        mirror,
        "faster_rcnn_hrnet_w32.coco",
        {"meta": {"mmdet_version": "2.1.0"}, "state_dict": state},
        name="faster_rcnn_hrnet_w18_small_v1.mmdet_test",
        layout="mmdet2",
        card=card,
    )
    model = hrnet.load_model(carded).eval()
    s = model.conventions.settings
    assert (s.layout, s.anchor_style, s.anchor_offset, s.roi_aligned) == ("mmdet", "mmdet", 0.0, True)
    assert model.card.meta["layout"] == "mmdet"
    hand = build_detector("faster_rcnn_hrnet_w18_small_v1", num_classes=80, neck_channels=16, layout="mmdet")
    load_detection_weights(hand, state)
    for key, v in hand.state_dict().items():
        assert torch.equal(model.state_dict()[key], v), key
    image = [torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(3))]
    for m in (model, hand):
        m.eval()
        m.transform.min_size, m.transform.max_size = (96,), 128
        m.roi_heads.score_thresh = 0.0
    with torch.no_grad():
        a, b = model(image)[0], hand.eval()(image)[0]
    assert len(a["boxes"]) > 0
    torch.testing.assert_close(a["boxes"], b["boxes"])
