"""Pose experiments as Python functions: datasets, loss and evaluation handed to the shared engine.

``train(cfg, out)`` and ``evaluate(cfg, weights)`` are what ``hrnet pose train`` / ``eval``
run and what the demo calls. Training uses the shared :class:`hrnet.engine.trainer.Trainer`; evaluation
shards crops over DDP ranks, gathers the predictions and scores them once (COCO protocol or PCKh).
Relative data paths in the config are taken relative to ``data.root``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hrnet.atomic import write_json
from hrnet.engine.distributed import DistInfo, all_gather_object, init_distributed
from hrnet.engine.launch import RunContext, TrainSetup, run_training
from hrnet.models.weights import load_weights
from hrnet.paths import under_root
from hrnet.pose.check import check_pose_data
from hrnet.pose.codec import HeatmapCodec
from hrnet.pose.config import PoseConfig, resolve_keypoint_set
from hrnet.pose.datasets import CocoKeypoints, MPIIKeypoints, PoseAugment, TopDownDataset
from hrnet.pose.evaluation import coco_results, evaluate_coco, evaluate_wholebody, pckh_table
from hrnet.pose.hand_metrics import coco_hand_metrics
from hrnet.pose.inference import predict_dataset
from hrnet.pose.keypoints import KeypointSet
from hrnet.pose.landmarks import FaceLandmarks, nme_metrics, parse_normalizer
from hrnet.pose.loss import JointsMSELoss
from hrnet.pose.model import build_model, make_card
from hrnet.pose.wholebody import NUM_WHOLEBODY, is_wholebody

log = logging.getLogger("hrnet.pose")


def build_dataset(cfg: PoseConfig, train: bool, keypoint_set: KeypointSet | None = None) -> TopDownDataset:
    """The training or validation dataset of ``cfg`` (validation uses ``test.boxes``)."""
    d, t = cfg.data, cfg.test
    ks = keypoint_set or resolve_keypoint_set(d)
    aug = PoseAugment(
        rot_factor=d.rot_factor,
        rot_prob=d.rot_prob,
        scale_factor=d.scale_factor,
        flip=d.flip,
        half_body_prob=d.half_body_prob,
        num_joints_half_body=d.num_joints_half_body,
        sampling=d.aug_sampling,
    )
    ann = under_root(d.root, d.train_ann if train else d.val_ann)
    images = under_root(d.root, d.train_images if train else d.val_images)
    common = dict(
        keypoint_set=ks,
        input_size=tuple(d.input_size),
        train=train,
        heatmap_size=d.heatmap_size,
        sigma=d.sigma,
        augment=aug,
        use_joint_weights=d.use_joint_weights,
    )
    if d.dataset == "mpii":
        return MPIIKeypoints(ann, images, **common)
    if d.dataset == "face":
        return FaceLandmarks(ann, images, **common)
    boxes: str | Path = "gt" if train or t.boxes == "gt" else under_root(d.root, t.boxes)
    return CocoKeypoints(ann, images, boxes=boxes, det_score_thr=0.0 if train else t.det_score_thr, **common)


def make_evaluator(cfg: PoseConfig, dataset: TopDownDataset, results_out: list | None = None):
    """``evaluate(model, dist) -> metrics`` for the engine: shard, predict, gather, score on rank 0, share.

    ``results_out``, when given, receives the COCO results (on the main rank) for writing to a file.
    """
    ks, t = dataset.keypoint_set, cfg.test
    codec: HeatmapCodec = dataset.codec.with_dark(t.dark)

    def evaluate(model: nn.Module, dist: DistInfo) -> dict[str, float]:
        preds = predict_dataset(
            model,
            dataset,
            codec,
            ks.flip_pairs,
            batch_size=t.batch_size,
            workers=t.workers,
            flip_test=t.flip_test,
            shift_heatmap=t.shift_heatmap,
            rank=dist.rank,
            world_size=dist.world_size,
        )
        gathered = [p for part in all_gather_object(preds) for p in part]
        metrics: dict[str, float] = {}
        error = None
        if dist.is_main:
            gathered.sort(key=lambda p: p["index"])
            try:
                metrics = score_predictions(cfg, dataset, gathered, results_out)
            except (ValueError, KeyError, TypeError) as err:  # raised on every rank below, so none waits forever
                error = err
        metrics, failed = all_gather_object((metrics, None if error is None else f"{type(error).__name__}: {error}"))[0]
        if error is not None:
            raise error
        if failed is not None:
            raise ValueError(f"scoring on the main process failed: {failed}")
        return metrics

    return evaluate


def score_predictions(
    cfg: PoseConfig, dataset: TopDownDataset, preds: list[dict], results_out: list | None = None
) -> dict[str, float]:
    """Metrics of per-crop predictions: COCO AP/AR (rescoring + OKS-NMS + pycocotools; per part for
    COCO-WholeBody), MPII PCKh, or facial-landmark NME / failure rate / AUC. The ``hand`` set adds mmpose's
    PCK@0.2 / AUC / EPE to its COCO metrics (its published numbers are those; ground-truth boxes only)."""
    ks, t = dataset.keypoint_set, cfg.test
    if not preds:
        raise ValueError("no predictions to evaluate (empty validation set?)")
    kpts = np.stack([p["keypoints"] for p in preds])
    kscores = np.stack([p["keypoint_scores"] for p in preds])
    if isinstance(dataset, MPIIKeypoints):
        joints, vis, heads = dataset.ground_truth()
        return pckh_table(
            kpts,
            joints[[p["index"] for p in preds]],
            vis[[p["index"] for p in preds]],
            heads[[p["index"] for p in preds]],
            ks.names,
        )
    if isinstance(dataset, FaceLandmarks):
        joints, vis, box_sizes = dataset.ground_truth()
        order = [p["index"] for p in preds]
        norm = parse_normalizer(t.nme_norm, ks)
        if norm.kind == "box" and box_sizes is None:
            raise ValueError(
                f"{dataset.ann_file}: NME by box size needs 'box_size' for every face (AFLW files have it)"
            )
        return nme_metrics(kpts, joints[order], vis[order], norm, None if box_sizes is None else box_sizes[order])
    sigmas = ks.require_sigmas()
    results = coco_results(
        [p["image_id"] for p in preds],
        kpts,
        kscores,
        [p["score"] for p in preds],
        [p["area"] for p in preds],
        sigmas,
        t.in_vis_thr,
        t.oks_thr,
        t.use_nms,
    )
    if results_out is not None:
        results_out.extend(results)
    if ks.num_keypoints == NUM_WHOLEBODY and is_wholebody(dataset.coco.data):  # type: ignore[attr-defined]
        return evaluate_wholebody(dataset.coco.data, results, sigmas)  # type: ignore[attr-defined]
    metrics = evaluate_coco(dataset.ann_file, results, sigmas)  # type: ignore[attr-defined]
    if ks.name == "hand" and isinstance(dataset, CocoKeypoints):
        metrics.update(coco_hand_metrics(dataset, preds))
    return metrics


def _train_collate(batch: list[dict]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([b[k] for b in batch]) for k in ("image", "target", "target_weight")}


def train(
    cfg: PoseConfig,
    out: str | Path | None,
    resume: str | Path | None = None,
    device: str | None = None,
    *,
    exist_ok: bool = False,
    dist: DistInfo | None = None,
) -> dict[str, float]:
    """Train ``cfg`` into a run folder (checkpoints, metrics.jsonl, model_best.safetensors); returns the last
    evaluation metrics (AP ... for COCO, PCKh ... for MPII). The folder follows the engine's rule
    (:mod:`hrnet.engine.rundir`): ``out`` when missing or empty, else a fresh ``out/run-NNN``; ``exist_ok``
    writes into ``out``; ``resume`` continues in the checkpoint's folder. ``cfg`` is not changed."""
    ks = resolve_keypoint_set(cfg.data)
    if cfg.data.dataset == "coco" and cfg.train.eval_every > 0:
        ks.require_sigmas("evaluation during training (train.eval_every > 0)")  # fail now, not after an epoch

    def build(ctx: RunContext) -> TrainSetup:
        c = ctx.cfg
        criterion = JointsMSELoss(use_target_weight=True)

        def loss_fn(model: nn.Module, batch: dict, dev: torch.device) -> tuple[torch.Tensor, dict[str, float]]:
            out = model(batch["image"].to(dev, non_blocking=True))
            loss = criterion(out.float(), batch["target"].to(dev), batch["target_weight"].to(dev))
            return loss, {}

        return TrainSetup(
            model=build_model(c, keypoint_set=ks),
            train_set=build_dataset(c, train=True, keypoint_set=ks),
            loss_fn=loss_fn,
            evaluate=make_evaluator(c, build_dataset(c, train=False, keypoint_set=ks)),
            collate_fn=_train_collate,
            best_metric={"mpii": "PCKh", "face": "NME"}.get(c.data.dataset, "AP"),
            higher_is_better=c.data.dataset != "face",  # NME is an error
            card=make_card(c, keypoint_set=ks),
        )

    return run_training(
        cfg,
        out,
        build,
        task="pose",
        check=lambda c: check_pose_data(c, ks, level="quick"),
        logger=log,
        resume=resume,
        exist_ok=exist_ok,
        device=device,
        dist=dist,
    )


def evaluate(
    cfg: PoseConfig,
    weights: str | Path | None,
    device: str | None = None,
    *,
    dist: DistInfo | None = None,
    results_file: str | Path | None = None,
    model: nn.Module | None = None,
) -> dict[str, float]:
    """Evaluate ``weights`` (or ``model``) on the validation set of ``cfg``; optionally write COCO results."""
    dist = dist or init_distributed(device)
    ks = resolve_keypoint_set(cfg.data)
    if model is None:
        model = build_model(cfg, keypoint_set=ks, pretrained=weights is None)
        if weights is not None:
            load_weights(model, weights, on_head_mismatch="error")
    model = model.to(dist.device).eval()
    dataset = build_dataset(cfg, train=False, keypoint_set=ks)
    results: list[dict] = []
    with torch.no_grad():
        metrics = make_evaluator(cfg, dataset, results)(model, dist)
    if results_file is not None and dist.is_main:
        write_json(results_file, results, indent=1)
    return metrics
