"""COCO evaluation of detectors through pycocotools: box, mask (and keypoint) AP, sharded over DDP ranks.

Model outputs (boxes xyxy in image pixels, labels 1..K, scores, mask probabilities) become COCO results
(``bbox`` xywh, the file's ``category_id``, masks binarised at 0.5 and RLE-encoded); each rank predicts its
share of the images, the results are gathered, and rank 0 runs ``COCOeval`` once per IoU type: its 12
summary numbers, and optionally the AP of every class. An evaluation without a single detection (an
untrained model) scores 0 instead of failing inside pycocotools.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from hrnet.detection.datasets import collate
from hrnet.detection.model import MASK_FRAMEWORKS, framework_of
from hrnet.engine.distributed import DistInfo, all_gather_object

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
PREFIX = {"bbox": "bbox", "segm": "segm", "keypoints": "kpt"}
KEYPOINT_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """A binary (H, W) mask -> COCO compressed RLE with a ``str`` counts (JSON-ready)."""

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def to_coco_results(
    output: dict[str, Tensor], image_id: int, category_ids: Sequence[int], mask_thr: float = 0.5
) -> list[dict[str, Any]]:
    """One image's detections -> COCO result dicts (``label`` l -> ``category_ids[l - 1]``)."""
    boxes = output["boxes"].detach().float().cpu()
    if len(boxes) == 0:
        return []
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
    scores = output["scores"].detach().float().cpu().tolist()
    labels = output["labels"].detach().cpu().tolist()
    results = [
        {
            "image_id": int(image_id),
            "category_id": int(category_ids[int(lab) - 1]),
            "bbox": [round(v, 3) for v in box],
            "score": round(float(s), 5),
        }
        for box, s, lab in zip(xywh, scores, labels)
    ]
    if "masks" in output:
        masks = (output["masks"].detach().cpu()[:, 0] > mask_thr).numpy()
        for r, m in zip(results, masks):
            r["segmentation"] = encode_mask(m)
    if "keypoints" in output:
        kpts = output["keypoints"].detach().float().cpu()  # (N, K, 3), visibility 1
        for r, k in zip(results, kpts):
            r["keypoints"] = [round(float(v), 2) for v in k.reshape(-1)]
    return results


def _per_class_ap(ev: Any, names: dict[int, str]) -> dict[str, float]:
    """AP (IoU .50:.95, all areas, 100 detections) of each category with ground truth in the evaluated images."""
    precision = ev.eval["precision"]  # (T, R, K, A, M)
    out = {}
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        if p.size:
            out[names.get(cat_id, str(cat_id))] = float(p.mean())
    return out


def evaluate_results(
    coco_gt: Any,
    results: list[dict[str, Any]],
    iou_types: Iterable[str] = ("bbox",),
    image_ids: Sequence[int] | None = None,
    per_class: bool = False,
) -> dict[str, float]:
    """``COCOeval`` of ``results`` for each IoU type: ``bbox_AP`` ... ``bbox_ARl``, ``segm_AP`` ... (12 each).

    ``per_class`` adds ``bbox_AP[<class name>]`` (and ``segm_AP[...]``). No results: every number is 0.
    """

    metrics: dict[str, float] = {}
    names = {c["id"]: c["name"] for c in coco_gt.dataset["categories"]}
    for iou_type in iou_types:
        prefix = PREFIX[iou_type]
        stat_names = KEYPOINT_STAT_NAMES if iou_type == "keypoints" else STAT_NAMES
        usable = [
            r
            for r in results
            if iou_type == "bbox" or ("segmentation" in r if iou_type == "segm" else "keypoints" in r)
        ]
        if not usable:
            metrics.update({f"{prefix}_{n}": 0.0 for n in stat_names})
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes(usable)
            ev = COCOeval(coco_gt, coco_dt, iou_type)
            if image_ids is not None:
                ev.params.imgIds = sorted(int(i) for i in image_ids)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        metrics.update({f"{prefix}_{n}": float(v) for n, v in zip(stat_names, ev.stats)})
        if per_class:
            metrics.update({f"{prefix}_AP[{n}]": v for n, v in _per_class_ap(ev, names).items()})
    return metrics


def iou_types_of(model: nn.Module) -> list[str]:
    """Which COCO IoU types a detector's outputs can be scored on."""

    framework = framework_of(model)
    types = ["bbox"]
    if framework in MASK_FRAMEWORKS:
        types.append("segm")
    if framework == "keypoint_rcnn":
        types.append("keypoints")
    return types


@torch.no_grad()
def predict_results(
    model: nn.Module,
    dataset: Any,
    device: torch.device | str,
    *,
    batch_size: int = 1,
    workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> list[dict[str, Any]]:
    """COCO results of ``model`` on this rank's share (every ``world_size``-th image) of ``dataset``."""

    device = torch.device(device)
    shard = Subset(dataset, list(range(rank, len(dataset), world_size)))
    loader = DataLoader(shard, batch_size=batch_size, num_workers=workers, collate_fn=collate)
    model.eval()
    results: list[dict[str, Any]] = []
    for batch in loader:
        outputs = model([im.to(device) for im in batch["images"]])
        for out, image_id in zip(outputs, batch["image_ids"].tolist()):
            results += to_coco_results(out, image_id, dataset.category_ids)
    return results


def evaluate_model(
    model: nn.Module,
    dataset: Any,
    dist: DistInfo | None = None,
    *,
    batch_size: int = 1,
    workers: int = 0,
    per_class: bool = False,
    results_out: list[dict[str, Any]] | None = None,
    iou_types: Sequence[str] | None = None,
) -> dict[str, float]:
    """COCO metrics of ``model`` on ``dataset`` (:class:`~hrnet.detection.datasets.CocoDetection`, eval mode).

    Runs on every rank and returns the same dict everywhere (the engine's ``evaluate`` contract).
    ``results_out`` receives all COCO results on the main rank (for ``--results`` files); ``iou_types``
    default to what the detector outputs (:func:`iou_types_of`).
    """
    dist = dist or DistInfo()
    part = predict_results(
        model, dataset, dist.device, batch_size=batch_size, workers=workers, rank=dist.rank, world_size=dist.world_size
    )
    gathered = [r for chunk in all_gather_object(part) for r in chunk]
    metrics: dict[str, float] = {}
    if dist.is_main:
        gathered.sort(key=lambda r: (r["image_id"], -r["score"]))
        if results_out is not None:
            results_out.extend(gathered)
        types = list(iou_types) if iou_types is not None else iou_types_of(model)
        metrics = evaluate_results(dataset.coco, gathered, types, dataset.image_ids, per_class)
    return all_gather_object(metrics)[0]
