"""Official HRNet-Object-Detection and mmdet v2 checkpoints load into our torchvision detectors.

The checkpoint files are written here from the upstream configs, never by our converter: key names and
shapes follow HRNet-Object-Detection (``mmdet/models/backbones/hrnet.py``, ``necks/hrfpn.py``,
``configs/hrnet/*.py``: ``neck.reduction_conv.0``, ``neck.fpn_conv.i``, ``bbox_head.fc_cls`` with 81 rows,
background first, ``fc_reg`` 81 x 4) and mmdetection 2.x (``configs/hrnet/*_coco.py`` on
``configs/_base_/models/*_r50_fpn.py``: ``neck.reduction_conv.conv``, ``neck.fpn_convs.i.conv``,
``roi_head.bbox_head.fc_cls`` with 80 classes + background *last*, ``fc_reg`` 80 x 4, ``conv_logits`` 80,
Cascade ``bbox_head.{0,1,2}`` with class-agnostic ``fc_reg`` 4). Both have the RPN ``rpn_head.rpn_conv /
rpn_cls / rpn_reg`` with 3 anchors: 3 objectness and 12 box rows, no classes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hrnet
from hrnet.detection import Detector, build_detector, load_detection_weights
from hrnet.detection.checkpoints import convert_state_dict, detect_layout
from hrnet.detection.model import convert_checkpoint
from hrnet.io import read_image

from .conftest import TINY_BACKBONE

Shapes = dict[str, tuple[int, ...]]

# HRNetV2 of the configs: (stage1 blocks, stage1 channels), modules / blocks per branch of stages 2-4, widths
W32 = dict(stage1=(4, 64), modules=(1, 4, 3), blocks=(4, 4, 4), channels=(32, 64, 128, 256))
# hrnet_w18_small_v1 (the small test backbone: one module per stage)
W18_SMALL_V1 = dict(stage1=(1, 32), modules=(1, 1, 1), blocks=(2, 2, 2), channels=(16, 32, 64, 128))


def hrnet_backbone(cfg: dict) -> Shapes:
    """``backbone.*`` keys and shapes of the upstream ``HighResolutionNet`` (identical in HRNet-Object-Detection
    and mmdet): stem, ``layer1`` bottlenecks, ``transition{1,2,3}``, and ``stage{2,3,4}`` modules whose
    ``branches`` are basic blocks and whose ``fuse_layers`` join every pair of branches (multi-scale output
    everywhere in the detection backbones)."""
    keys: Shapes = {}

    def conv(name: str, out: int, inp: int, k: int) -> None:
        keys[f"backbone.{name}.weight"] = (out, inp, k, k)

    def bn(name: str, c: int) -> None:
        for p in ("weight", "bias", "running_mean", "running_var"):
            keys[f"backbone.{name}.{p}"] = (c,)
        keys[f"backbone.{name}.num_batches_tracked"] = ()

    conv("conv1", 64, 3, 3)
    bn("bn1", 64)
    conv("conv2", 64, 64, 3)
    bn("bn2", 64)
    blocks1, c1 = cfg["stage1"]
    inplanes = 64
    for b in range(blocks1):  # Bottleneck, expansion 4
        conv(f"layer1.{b}.conv1", c1, inplanes, 1)
        bn(f"layer1.{b}.bn1", c1)
        conv(f"layer1.{b}.conv2", c1, c1, 3)
        bn(f"layer1.{b}.bn2", c1)
        conv(f"layer1.{b}.conv3", 4 * c1, c1, 1)
        bn(f"layer1.{b}.bn3", 4 * c1)
        if b == 0:
            conv("layer1.0.downsample.0", 4 * c1, inplanes, 1)
            bn("layer1.0.downsample.1", 4 * c1)
        inplanes = 4 * c1
    pre = [inplanes]
    for s, (modules, blocks) in enumerate(zip(cfg["modules"], cfg["blocks"]), start=2):
        channels = cfg["channels"][:s]
        t = f"transition{s - 1}"
        for i, c in enumerate(channels):
            if i < len(pre):
                if c != pre[i]:
                    conv(f"{t}.{i}.0", c, pre[i], 3)
                    bn(f"{t}.{i}.1", c)
            else:
                for j in range(i + 1 - len(pre)):
                    out = c if j == i - len(pre) else pre[-1]
                    conv(f"{t}.{i}.{j}.0", out, pre[-1], 3)
                    bn(f"{t}.{i}.{j}.1", out)
        for m in range(modules):
            for b, c in enumerate(channels):
                for k in range(blocks):
                    conv(f"stage{s}.{m}.branches.{b}.{k}.conv1", c, c, 3)
                    bn(f"stage{s}.{m}.branches.{b}.{k}.bn1", c)
                    conv(f"stage{s}.{m}.branches.{b}.{k}.conv2", c, c, 3)
                    bn(f"stage{s}.{m}.branches.{b}.{k}.bn2", c)
            for i, ci in enumerate(channels):
                for j, cj in enumerate(channels):
                    f = f"stage{s}.{m}.fuse_layers.{i}.{j}"
                    if j > i:
                        conv(f"{f}.0", ci, cj, 1)
                        bn(f"{f}.1", ci)
                    for k in range(i - j):  # j < i: stride-2 3x3 convs, the last one to branch i's width
                        out = ci if k == i - j - 1 else cj
                        conv(f"{f}.{k}.0", out, cj, 3)
                        bn(f"{f}.{k}.1", out)
        pre = list(channels)
    return keys


def checkpoint_shapes(
    framework: str, source: str, cfg: dict, classes: int = 80, neck: int = 256, fc: int = 1024
) -> Shapes:
    """Every key and shape of a ``framework`` checkpoint (``faster_rcnn``, ``mask_rcnn``, ``cascade_rcnn``,
    ``cascade_mask_rcnn``) as ``source`` (``official`` = HRNet-Object-Detection, ``mmdet`` = mmdetection 2.x)
    saves it."""
    mmdet = source == "mmdet"
    keys = hrnet_backbone(cfg)
    concat = sum(cfg["channels"])
    if mmdet:  # HRFPN of ConvModules
        keys["neck.reduction_conv.conv.weight"], keys["neck.reduction_conv.conv.bias"] = (neck, concat, 1, 1), (neck,)
        for i in range(5):
            keys[f"neck.fpn_convs.{i}.conv.weight"], keys[f"neck.fpn_convs.{i}.conv.bias"] = (neck, neck, 3, 3), (neck,)
    else:  # HRFPN of plain convs: reduction_conv = Sequential(Conv2d), fpn_conv = ModuleList(Conv2d)
        keys["neck.reduction_conv.0.weight"], keys["neck.reduction_conv.0.bias"] = (neck, concat, 1, 1), (neck,)
        for i in range(5):
            keys[f"neck.fpn_conv.{i}.weight"], keys[f"neck.fpn_conv.{i}.bias"] = (neck, neck, 3, 3), (neck,)
    for name, out, k in (("rpn_conv", neck, 3), ("rpn_cls", 3, 1), ("rpn_reg", 12, 1)):  # 3 anchors, sigmoid
        keys[f"rpn_head.{name}.weight"], keys[f"rpn_head.{name}.bias"] = (out, neck, k, k), (out,)
    roi = "roi_head." if mmdet else ""
    cascade = framework.startswith("cascade")
    stages = [f".{s}" for s in range(3)] if cascade else [""]
    for st in stages:
        h = f"{roi}bbox_head{st}"
        keys[f"{h}.shared_fcs.0.weight"], keys[f"{h}.shared_fcs.0.bias"] = (fc, neck * 49), (fc,)
        keys[f"{h}.shared_fcs.1.weight"], keys[f"{h}.shared_fcs.1.bias"] = (fc, fc), (fc,)
        keys[f"{h}.fc_cls.weight"], keys[f"{h}.fc_cls.bias"] = (classes + 1, fc), (classes + 1,)
        reg = 4 if cascade else 4 * classes if mmdet else 4 * (classes + 1)
        keys[f"{h}.fc_reg.weight"], keys[f"{h}.fc_reg.bias"] = (reg, fc), (reg,)
        if framework.endswith("mask_rcnn"):
            h = f"{roi}mask_head{st}"
            for i in range(4):
                keys[f"{h}.convs.{i}.conv.weight"], keys[f"{h}.convs.{i}.conv.bias"] = (
                    (256, neck if i == 0 else 256, 3, 3),
                    (256,),
                )
            keys[f"{h}.upsample.weight"], keys[f"{h}.upsample.bias"] = (256, 256, 2, 2), (256,)  # ConvTranspose2d
            masks = classes if mmdet else classes + 1
            keys[f"{h}.conv_logits.weight"], keys[f"{h}.conv_logits.bias"] = (masks, 256, 1, 1), (masks,)
    return keys


def fill(shapes: Shapes, seed: int = 0, scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Random tensors that keep activations of the order of one (weights ~ 1/sqrt(fan in), BN near identity)."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            out[key] = 1 + 0.1 * torch.rand(shape, generator=g)
        elif key.endswith(("running_mean", ".bias")):
            out[key] = 0.05 * torch.randn(shape, generator=g)
        elif len(shape) == 1:  # BN weight
            out[key] = 0.4 + 0.05 * torch.randn(shape, generator=g)  # damped: residual sums stay of order one
        else:
            fan_in = math.prod(shape[1:]) if "upsample" not in key else shape[0]
            out[key] = torch.randn(shape, generator=g) * scale / math.sqrt(fan_in)
    return out


def _indexed(shapes: Shapes) -> dict[str, torch.Tensor]:
    """Every tensor filled with its own index (so each one can be found again), the class-order tensors of
    the heads with their row numbers (so their order can be checked)."""
    out = {}
    for i, (key, shape) in enumerate(shapes.items()):
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(i)
        elif any(h in key for h in ("fc_cls", "fc_reg", "conv_logits", "rpn_reg", "rpn_cls")):
            out[key] = torch.arange(shape[0], dtype=torch.float32).view(-1, *[1] * (len(shape) - 1)).expand(shape)
            out[key] = out[key] + 1000.0 * (i + 1)
        else:
            out[key] = torch.full(shape, float(i))
    return out


@pytest.mark.parametrize(
    ("framework", "source"),
    [
        ("faster_rcnn", "mmdet"),
        ("mask_rcnn", "mmdet"),
        ("cascade_rcnn", "mmdet"),
        ("cascade_mask_rcnn", "mmdet"),
        ("faster_rcnn", "official"),
        ("mask_rcnn", "official"),
        ("cascade_rcnn", "official"),
    ],
)
def test_w32_checkpoints_load_strictly_with_every_key_used(framework, source):
    shapes = checkpoint_shapes(framework, source, W32)
    state = _indexed(shapes)
    ckpt = {"meta": {"mmdet_version": "2.1.0" if source == "mmdet" else "0.6.0+3493751"}, "state_dict": state}
    assert detect_layout(hrnet.read_state_dict(ckpt)) == source
    model = build_detector(f"{framework}_hrnet_w32", num_classes=80)
    result = load_detection_weights(model, ckpt)  # strict: no key missing, none unexpected
    assert result.missing == [] and result.unexpected == []
    converted = convert_state_dict(hrnet.read_state_dict(ckpt))
    assert len(converted) == len(state) == len(model.state_dict())  # every key of the file is one of ours
    own = model.state_dict()
    # every file tensor is somewhere in the model: the index it was filled with (its largest value) is found
    found = {float(v.max()) for k, v in own.items() if not k.endswith("num_batches_tracked")}
    assert {float(v.max()) for k, v in state.items() if not k.endswith("num_batches_tracked")} <= found

    # the RPN has no classes: its 12 box rows (3 anchors x 4) and 3 objectness rows are taken as they are
    rpn_reg = state["rpn_head.rpn_reg.weight"]
    assert torch.equal(own["rpn.head.bbox_pred.weight"], rpn_reg)
    assert torch.equal(own["rpn.head.cls_logits.weight"], state["rpn_head.rpn_cls.weight"])
    roi = "roi_head." if source == "mmdet" else ""
    stages = [(".0", "s.0"), (".2", "s.2")] if framework.startswith("cascade") else [("", "")]
    for st, ours in stages:
        cls = own[f"roi_heads.box_predictor{ours}.cls_score.weight"][:, 0]
        theirs = state[f"{roi}bbox_head{st}.fc_cls.weight"][:, 0]
        if source == "mmdet":  # background last there, first here
            assert torch.equal(cls, torch.cat([theirs[-1:], theirs[:-1]]))
        else:
            assert torch.equal(cls, theirs)
        reg = own[f"roi_heads.box_predictor{ours}.bbox_pred.weight"][:, 0]
        reg_theirs = state[f"{roi}bbox_head{st}.fc_reg.weight"][:, 0]
        if framework.startswith("cascade"):  # class-agnostic: 4 rows, untouched
            assert torch.equal(reg, reg_theirs)
        elif source == "mmdet":  # 80 x 4 rows -> a zero background box first
            assert torch.equal(reg, torch.cat([torch.zeros(4), reg_theirs]))
        else:
            assert torch.equal(reg, reg_theirs)
        if framework.endswith("mask_rcnn"):
            logits = own[f"roi_heads.mask_predictor{ours}.mask_fcn_logits.weight"][:, 0, 0, 0]
            theirs = state[f"{roi}mask_head{st}.conv_logits.weight"][:, 0, 0, 0]
            if source == "mmdet":  # 80 channels -> a zero background channel first
                theirs = torch.cat([torch.zeros(1), theirs])
            assert torch.equal(logits, theirs)


def test_unknown_keys_are_named_not_dropped():
    shapes = checkpoint_shapes("faster_rcnn", "mmdet", W18_SMALL_V1, classes=3, neck=16)
    state = fill(shapes)
    state["roi_head.semantic_head.conv_logits.weight"] = torch.zeros(183, 16, 1, 1)  # HTC's, which we do not have
    model = build_detector(
        "faster_rcnn_hrnet_w18_small_v1", num_classes=3, backbone_overrides=TINY_BACKBONE, neck_channels=16
    )
    with pytest.raises(ValueError, match="unexpected keys.*semantic_head"):
        load_detection_weights(model, {"state_dict": state})


K = 3  # object classes of the small checkpoints


def _small(framework: str, **kwargs) -> torch.nn.Module:
    return build_detector(
        f"{framework}_hrnet_w18_small_v1",
        num_classes=K,
        backbone_overrides=TINY_BACKBONE,
        neck_channels=16,
        min_size=96,
        max_size=128,
        box_score_thresh=0.0,
        box_detections_per_img=20,
        **kwargs,
    ).eval()


def _mmdet_from_official(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same network in mmdet v2's class order, by the two configs: ``roi_head.`` prefix, HRFPN
    ConvModules, background score last, no background box row (class-specific heads) or mask channel."""
    out = {}
    for key, v in official.items():
        new = key.replace("neck.reduction_conv.0.", "neck.reduction_conv.conv.")
        if key.startswith("neck.fpn_conv."):
            i = key.split(".")[2]
            new = f"neck.fpn_convs.{i}.conv.{key.split('.', 3)[3]}"
        if key.startswith(("bbox_head", "mask_head")):
            new = "roi_head." + key
            if ".fc_cls." in key:
                v = torch.cat([v[1:], v[:1]])
            elif ".fc_reg." in key and v.shape[0] == 4 * (K + 1):
                v = v[4:]
            elif ".conv_logits." in key:
                v = v[1:]
        out[new] = v
    return out


@pytest.mark.parametrize("framework", ["mask_rcnn", "cascade_mask_rcnn"])
def test_official_and_mmdet_files_of_one_network_predict_the_same(tmp_path, framework):
    """One set of random weights written in both layouts: loaded, the two models hold the same tensors and,
    run with the same conventions, predict the same boxes and masks (mmdet's class order is undone)."""
    official = fill(checkpoint_shapes(framework, "official", W18_SMALL_V1, classes=K, neck=16), scale=1.5)
    for key, v in official.items():  # no background box row or mask channel exists in mmdet's file
        if ".fc_reg." in key and v.shape[0] == 4 * (K + 1) or ".conv_logits." in key:
            v[: 4 if ".fc_reg." in key else 1] = 0
    mmdet = _mmdet_from_official(official)
    assert len(mmdet) == len(checkpoint_shapes(framework, "mmdet", W18_SMALL_V1, classes=K, neck=16))
    paths = {}
    for name, state in (("official", official), ("mmdet", mmdet)):
        paths[name] = tmp_path / f"{name}.pth"
        torch.save({"meta": {}, "state_dict": {k: v.clone() for k, v in state.items()}}, paths[name])
    few = dict(layout="hrnet", rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=50)
    a, b = _small(framework, **few), _small(framework, **few)
    load_detection_weights(a, paths["official"])
    load_detection_weights(b, paths["mmdet"])
    for key, v in a.state_dict().items():
        assert torch.equal(b.state_dict()[key], v), key
    image = [torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(3))]
    with torch.no_grad():
        pa, pb = a(image)[0], b(image)[0]
    assert len(pa["boxes"]) > 0
    torch.testing.assert_close(pa["boxes"], pb["boxes"])
    torch.testing.assert_close(pa["masks"], pb["masks"])


OFFICIAL_MEAN = (123.675, 116.28, 103.53)  # HRNet-Object-Detection configs: img_norm_cfg, RGB order, to_rgb=False
OFFICIAL_STD = (58.395, 57.12, 57.375)


def test_converted_official_checkpoint_is_carded_rgb_and_detector_feeds_rgb(tmp_path, det_dir):
    """An official file converted to a carded file says RGB with the official mean / std; ``Detector`` feeds
    RGB: its boxes are those of the network fed the image normalised by hand in RGB order, and the same
    image with red and blue swapped gives other boxes."""
    official = fill(checkpoint_shapes("faster_rcnn", "official", W18_SMALL_V1, classes=K, neck=16), scale=1.5)
    src = tmp_path / "faster_rcnn_official.pth"
    torch.save({"meta": {"mmdet_version": "0.6.0"}, "state_dict": official}, src)
    out = convert_checkpoint(
        src,
        tmp_path / "converted.safetensors",
        "faster_rcnn_hrnet_w18_small_v1",
        num_classes=K,
        backbone_overrides=TINY_BACKBONE,
        neck_channels=16,
    )
    card = hrnet.read_card(out)
    assert card.meta["bgr"] is False and card.meta["layout"] == "official"
    np.testing.assert_allclose(np.array(card.mean) * 255, OFFICIAL_MEAN, atol=1e-9)
    np.testing.assert_allclose(np.array(card.std) * 255, OFFICIAL_STD, atol=1e-9)
    assert card.meta["anchor_style"] == "mmdet_legacy" and card.meta["anchor_offset"] == 0.5

    rgb = read_image(det_dir / "images" / "000000391895.jpg")[::4, ::4].copy()  # a real photo, 160 x 90
    det = Detector(out, score_thr=0.0, min_size=96, max_size=160, runtime="eager", device="cpu")
    # the reference: the same network fed the image normalised by the official config, in RGB order
    ref = hrnet.load_model(out).eval()
    ref.transform.image_mean, ref.transform.image_std, ref.transform.bgr = [0.0] * 3, [1.0] * 3, False
    ref.transform.min_size, ref.transform.max_size = (96,), 160
    x = (torch.from_numpy(rgb).permute(2, 0, 1).float() - torch.tensor(OFFICIAL_MEAN)[:, None, None]) / torch.tensor(
        OFFICIAL_STD
    )[:, None, None]
    with torch.no_grad():
        expected = ref([x])[0]
    got = det(rgb)
    assert len(expected["boxes"]) > 0
    np.testing.assert_allclose(got.boxes, expected["boxes"].numpy(), atol=1e-3)
    swapped = det(np.ascontiguousarray(rgb[..., ::-1]))
    assert len(swapped.boxes) != len(got.boxes) or np.abs(swapped.boxes - got.boxes).max() > 0.5
    # the uncarded file beside its model name runs the same way (the model takes the file's layout)
    named = Detector(
        "faster_rcnn_hrnet_w18_small_v1",
        weights=src,
        num_classes=K,
        backbone_overrides=TINY_BACKBONE,
        neck_channels=16,
        score_thr=0.0,
        min_size=96,
        max_size=160,
        runtime="eager",
        device="cpu",
    )
    assert named.model.conventions.settings.layout == "official"
    np.testing.assert_allclose(named(rgb).boxes, got.boxes, atol=1e-3)


def test_our_files_round_trip_and_head_mismatch(tmp_path):
    src = _small("faster_rcnn")
    path = hrnet.save_weights(src, tmp_path / "det.safetensors")
    dst = _small("faster_rcnn")
    hrnet.load_weights(dst, path)  # the shared loader reads detector files too ("backbone." keys kept)
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in src.state_dict().items())
    other = build_detector(
        "faster_rcnn_hrnet_w18_small_v1", num_classes=K + 2, backbone_overrides=TINY_BACKBONE, neck_channels=16
    )
    with pytest.raises(ValueError, match="predict"):
        load_detection_weights(other, path)
    result = load_detection_weights(other, path, on_head_mismatch="reinit")
    assert sorted({k.rsplit(".", 1)[0] for k in result.reinitialized}) == [
        "roi_heads.box_predictor.bbox_pred",
        "roi_heads.box_predictor.cls_score",
    ]
    assert torch.equal(other.backbone.body.conv1.weight, src.backbone.body.conv1.weight)


def test_wrong_file_is_one_clear_error(tmp_path):
    model = _small("faster_rcnn")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_detection_weights(model, tmp_path / "missing.pth")
    path = hrnet.save_weights(hrnet.create_model("hrnet_w18_small_v1", **TINY_BACKBONE), tmp_path / "cls.safetensors")
    with pytest.raises(ValueError, match="cls.safetensors"):
        load_detection_weights(model, path)
