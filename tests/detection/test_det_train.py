"""Every framework trains through the engine on real COCO images, writes a carded model, and predicts.

A few CPU iterations on a 2-image subset per framework (finite losses, COCO metrics, a model card that
``hrnet.load_model`` rebuilds); the slow test fits the 16-image sample with the tiny recipe.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch

import hrnet
from hrnet.detection.config import DetConfig
from hrnet.detection.train import evaluate, train
from hrnet.engine.config import load_config

from .conftest import REPO, subset_json

FIT = REPO / "configs" / "det" / "sample" / "fit.yaml"
RCNN = (
    "{neck_channels: 32, rpn_pre_nms_top_n_train: 200, rpn_post_nms_top_n_train: 100, "
    "rpn_pre_nms_top_n_test: 100, rpn_post_nms_top_n_test: 30, box_batch_size_per_image: 32}"
)
# FCOS: GroupNorm(32) needs 2+ channels per group on the 1x1 stride-128 level of a tiny image
FRAMEWORKS = {
    "faster_rcnn": RCNN,
    "mask_rcnn": RCNN,
    "cascade_rcnn": RCNN,
    "cascade_mask_rcnn": RCNN,
    "keypoint_rcnn": RCNN,
    "fcos": "{neck_channels: 64, topk_candidates: 100}",
    "retinanet": "{neck_channels: 32, topk_candidates: 100}",
    "centernet": "{head_channels: 32}",
}
LOSSES = {
    "faster_rcnn": {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"},
    "mask_rcnn": {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"},
    "cascade_rcnn": {f"loss_{n}_{s}" for n in ("classifier", "box_reg") for s in range(3)}
    | {"loss_objectness", "loss_rpn_box_reg"},
    "cascade_mask_rcnn": {f"loss_{n}_{s}" for n in ("classifier", "box_reg", "mask") for s in range(3)}
    | {"loss_objectness", "loss_rpn_box_reg"},
    "keypoint_rcnn": {"loss_classifier", "loss_box_reg", "loss_keypoint", "loss_objectness", "loss_rpn_box_reg"},
    "fcos": {"classification", "bbox_regression", "bbox_ctrness"},
    "retinanet": {"classification", "bbox_regression"},
    "centernet": {"loss_heatmap", "loss_wh", "loss_offset"},
}


def _config(framework: str, ann: Path, images: Path, extra: tuple[str, ...] = ()) -> DetConfig:
    return load_config(
        DetConfig,
        FIT,
        [
            f"model.name={framework}_hrnet_w18_small_v1",
            "model.overrides={stage_modules: [1, 1, 1]}",
            f"model.options={FRAMEWORKS[framework]}",
            f"data.root={ann.parent}",
            f"data.train_ann={ann.name}",
            f"data.val_ann={ann.name}",
            f"data.train_images={images}",
            f"data.val_images={images}",
            "data.min_size=[128]",
            "data.max_size=160",
            "data.flip_prob=0.5",
            "data.aspect_ratio_group_factor=3",
            "train.epochs=1",
            "train.batch_size=2",
            "train.eval_every=1",
            "train.log_every=1",
            "test.detections_per_img=5",
            "test.batch_size=2",
            *extra,
        ],
    )


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_framework_trains_and_predicts(framework, det_dir, kpt_dir, tmp_path):
    if framework == "keypoint_rcnn":
        ann = subset_json(kpt_dir / "person_keypoints_sample.json", tmp_path / "kpt.json", 2)
        images = kpt_dir / "images"
    else:
        ann = subset_json(det_dir / "instances_sample.json", tmp_path / "det.json", 2)
        images = det_dir / "images"
    cfg = _config(framework, ann, images)
    metrics = train(cfg, tmp_path / "run", device="cpu")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    step = next(r for r in records if r["type"] == "train")
    assert LOSSES[framework] <= set(step) and all(math.isfinite(step[k]) for k in LOSSES[framework])
    assert "bbox_AP" in metrics and 0.0 <= metrics["bbox_AP"] <= 1.0
    assert ("segm_AP" in metrics) == ("mask" in framework)
    assert ("kpt_AP" in metrics) == (framework == "keypoint_rcnn")

    # the carded weights rebuild the detector by themselves and predict the documented schema
    weights = tmp_path / "run" / "model_best.safetensors"
    card = hrnet.read_card(weights)
    num = 1 if framework == "keypoint_rcnn" else 80
    assert card.task == "det" and card.num_outputs == num and len(card.meta["category_ids"]) == num
    model = hrnet.load_model(weights)
    image = torch.rand(3, 90, 120)
    with torch.no_grad():
        out = model([image])[0]
    assert out["boxes"].shape[1:] == (4,) and len(out["boxes"]) == len(out["scores"]) == len(out["labels"]) <= 5
    assert bool(((out["labels"] >= 1) & (out["labels"] <= num)).all())
    assert len(out["boxes"]) == 0 or float(out["boxes"][:, 2:].max()) <= 120
    if "mask" in framework:
        assert out["masks"].shape[1:] == (1, 90, 120)
    if framework == "keypoint_rcnn":
        assert out["keypoints"].shape[1:] == (17, 3)
    # the same file evaluates through `evaluate` (the function behind `hrnet det eval`)
    if framework == "faster_rcnn":
        again = evaluate(cfg, weights, device="cpu", results_file=tmp_path / "results.json", per_class=True)
        assert again["bbox_AP"] == pytest.approx(metrics["bbox_AP"])
        results = json.loads((tmp_path / "results.json").read_text())
        assert all(r["category_id"] in card.meta["category_ids"] for r in results)


@pytest.mark.slow
def test_faster_rcnn_fits_the_sample(tmp_path):
    """The tiny recipe memorises the 16 COCO images: box AP >= 0.5 on them (841 s on 2 CPU cores, box AP 0.68)."""
    cfg = load_config(DetConfig, FIT)
    start = time.perf_counter()
    metrics = train(cfg, tmp_path / "fit", device="cpu")
    print(f"fit: {time.perf_counter() - start:.0f} s, {metrics}")
    assert metrics["bbox_AP"] >= 0.5
