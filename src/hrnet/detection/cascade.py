"""Cascade (Mask) R-CNN RoI heads from torchvision's parts (Cai & Vasconcelos; Table 8 / 10 of the paper).

torchvision has no cascade, so :class:`CascadeRoIHeads` is written here from its building blocks
(``MultiScaleRoIAlign``, ``TwoMLPHead``, ``Matcher``, ``BalancedPositiveNegativeSampler``, ``BoxCoder``,
``batched_nms``, the mask head and loss) and slots into a torchvision ``FasterRCNN`` in place of its
``RoIHeads``. The settings are those of mmdet's ``cascade_rcnn_r50_fpn`` (the recipe the HRNet
configs inherit):

- three stages, each its own 2-fc head with class-agnostic box regression;
- stage t matches proposals at IoU 0.5 / 0.6 / 0.7 and encodes with box-coder weights 1 / std of the
  configs' target stds (0.1, 0.1, 0.2, 0.2) / (0.05, 0.05, 0.1, 0.1) / (0.033, 0.033, 0.067, 0.067), i.e.
  (10, 10, 5, 5) / (20, 20, 10, 10) / (30.30, 30.30, 14.93, 14.93);
- stage losses weighted 1 / 0.5 / 0.25 (cross-entropy and smooth-L1 with beta 1);
- in training, stage t+1 sees stage t's sampled RoIs moved by its (detached) regression, minus the
  ground-truth boxes that stage t added;
- at test time each stage moves the boxes once more, the score is the softmax of the *mean of the three
  stages' logits*, and masks (Cascade Mask R-CNN) are the mean of the three mask heads' sigmoid outputs on
  the final boxes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.roi_heads import maskrcnn_loss
from torchvision.ops import boxes as box_ops

IOU_THRESHOLDS = (0.5, 0.6, 0.7)
# the target stds of the official cascade_rcnn_hrnetv2p_w32 and mmdet's cascade_rcnn_r50_fpn configs; torchvision's
# BoxCoder divides the deltas by its weights where mmdet multiplies them by the stds
TARGET_STDS = ((0.1, 0.1, 0.2, 0.2), (0.05, 0.05, 0.1, 0.1), (0.033, 0.033, 0.067, 0.067))
BOX_CODER_WEIGHTS = tuple(tuple(1.0 / s for s in stds) for stds in TARGET_STDS)
STAGE_LOSS_WEIGHTS = (1.0, 0.5, 0.25)


class AgnosticBoxPredictor(nn.Module):
    """Class scores (background first) and one class-agnostic box regression per RoI."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, 4)
        # mmdet's initialisation of the two output layers (normal 0.01 / 0.001, zero bias)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.flatten(start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)


class CascadeRoIHeads(nn.Module):
    """The three-stage cascade; the same call signature and outputs as torchvision's ``RoIHeads``.

    ``box_heads`` / ``box_predictors`` (and optionally ``mask_heads`` / ``mask_predictors``) hold one
    module per stage. Keys: ``box_heads.{t}.fc6``, ``box_predictors.{t}.cls_score``, ``mask_heads.{t}.{i}.0``.
    """

    def __init__(
        self,
        box_roi_pool: nn.Module,
        box_heads: Sequence[nn.Module],
        box_predictors: Sequence[nn.Module],
        iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
        box_coder_weights: Sequence[Sequence[float]] = BOX_CODER_WEIGHTS,
        stage_loss_weights: Sequence[float] = STAGE_LOSS_WEIGHTS,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
        smooth_l1_beta: float = 1.0,
        mask_roi_pool: nn.Module | None = None,
        mask_heads: Sequence[nn.Module] | None = None,
        mask_predictors: Sequence[nn.Module] | None = None,
    ) -> None:
        super().__init__()
        n = len(box_heads)
        lengths = {len(box_predictors), len(iou_thresholds), len(box_coder_weights), len(stage_loss_weights)}
        if lengths != {n}:
            raise ValueError(f"cascade: every per-stage setting needs {n} entries, got lengths {sorted(lengths)}")
        if (mask_heads is None) != (mask_predictors is None) or (mask_heads is not None and mask_roi_pool is None):
            raise ValueError("cascade: masks need mask_roi_pool, mask_heads and mask_predictors together")
        self.box_roi_pool = box_roi_pool
        self.box_heads = nn.ModuleList(box_heads)
        self.box_predictors = nn.ModuleList(box_predictors)
        self.matchers = [det_utils.Matcher(t, t, allow_low_quality_matches=False) for t in iou_thresholds]
        self.set_box_coder_weights(box_coder_weights)
        self.sampler = det_utils.BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self.stage_loss_weights = tuple(float(w) for w in stage_loss_weights)
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.smooth_l1_beta = smooth_l1_beta
        self.mask_roi_pool = mask_roi_pool
        self.mask_heads = nn.ModuleList(mask_heads) if mask_heads is not None else None
        self.mask_predictors = nn.ModuleList(mask_predictors) if mask_predictors is not None else None

    def set_box_coder_weights(self, weights: Sequence[Sequence[float]]) -> None:
        """One torchvision ``BoxCoder`` per stage (weights = 1 / the stage's target stds)."""
        if len(weights) != len(self.box_heads):
            raise ValueError(f"cascade: {len(self.box_heads)} stages but {len(weights)} box-coder weights")
        self.box_coder_weights = tuple(tuple(float(v) for v in w) for w in weights)
        self.box_coders = [det_utils.BoxCoder(w) for w in self.box_coder_weights]

    @property
    def num_stages(self) -> int:
        return len(self.box_heads)

    def has_mask(self) -> bool:
        return self.mask_heads is not None

    # ---- training ------------------------------------------------------------------------------------
    def _sample(self, stage: int, proposals: list[Tensor], targets: list[dict[str, Tensor]]):
        """Add the GT boxes, match at this stage's IoU, sample; per image: RoIs, labels, matched GT, is-GT."""
        rois, labels, matched, is_gt = [], [], [], []
        for props, tgt in zip(proposals, targets):
            gt = tgt["boxes"]
            props = torch.cat([props, gt])
            gt_flag = torch.cat(
                [
                    torch.zeros(len(props) - len(gt), dtype=torch.bool, device=gt.device),
                    torch.ones(len(gt), dtype=torch.bool, device=gt.device),
                ]
            )
            if gt.numel() == 0:
                lab = torch.zeros(len(props), dtype=torch.int64, device=props.device)
                idx = torch.zeros(len(props), dtype=torch.int64, device=props.device)
            else:
                m = self.matchers[stage](box_ops.box_iou(gt, props))
                idx = m.clamp(min=0)
                lab = tgt["labels"][idx].to(torch.int64)
                lab[m == det_utils.Matcher.BELOW_LOW_THRESHOLD] = 0
                lab[m == det_utils.Matcher.BETWEEN_THRESHOLDS] = -1
            rois.append(props)
            labels.append(lab)
            matched.append(idx)
            is_gt.append(gt_flag)
        pos, neg = self.sampler(labels)
        out = []
        for r, lab, idx, g, p, q in zip(rois, labels, matched, is_gt, pos, neg):
            keep = torch.where(p | q)[0]
            out.append((r[keep], lab[keep], idx[keep], g[keep]))
        return out

    def _stage_losses(self, stage: int, cls: Tensor, deltas: Tensor, samples, targets) -> dict[str, Tensor]:
        labels = torch.cat([s[1] for s in samples])
        reg_targets = torch.cat(
            [
                self.box_coders[stage].encode_single(t["boxes"][s[2]] if t["boxes"].numel() else s[0], s[0])
                for s, t in zip(samples, targets)
            ]
        )
        loss_cls = F.cross_entropy(cls, labels)
        pos = torch.where(labels > 0)[0]
        loss_box = F.smooth_l1_loss(deltas[pos], reg_targets[pos], beta=self.smooth_l1_beta, reduction="sum")
        loss_box = loss_box / max(labels.numel(), 1)
        w = self.stage_loss_weights[stage]
        return {f"loss_classifier_{stage}": w * loss_cls, f"loss_box_reg_{stage}": w * loss_box}

    def _mask_loss(self, stage: int, features, samples, targets, image_shapes) -> Tensor:
        assert self.mask_roi_pool is not None and self.mask_heads is not None and self.mask_predictors is not None
        pos_rois, pos_idx = [], []
        for rois, labels, idx, _ in samples:
            keep = torch.where(labels > 0)[0]
            pos_rois.append(rois[keep])
            pos_idx.append(idx[keep])
        x = self.mask_roi_pool(features, pos_rois, image_shapes)
        logits = self.mask_predictors[stage](self.mask_heads[stage](x))
        loss = maskrcnn_loss(logits, pos_rois, [t["masks"] for t in targets], [t["labels"] for t in targets], pos_idx)
        return self.stage_loss_weights[stage] * loss

    def _forward_train(self, features, proposals, image_shapes, targets) -> dict[str, Tensor]:
        losses: dict[str, Tensor] = {}
        for stage in range(self.num_stages):
            samples = self._sample(stage, proposals, targets)
            rois = [s[0] for s in samples]
            x = self.box_heads[stage](self.box_roi_pool(features, rois, image_shapes))
            cls, deltas = self.box_predictors[stage](x)
            losses.update(self._stage_losses(stage, cls, deltas, samples, targets))
            if self.has_mask():
                losses[f"loss_mask_{stage}"] = self._mask_loss(stage, features, samples, targets, image_shapes)
            if stage + 1 < self.num_stages:
                moved = self.box_coders[stage].decode_single(deltas.detach(), torch.cat(rois))
                proposals = []
                for part, s, shape in zip(moved.split([len(r) for r in rois]), samples, image_shapes):
                    proposals.append(box_ops.clip_boxes_to_image(part[~s[3]], shape))
        return losses

    # ---- inference -----------------------------------------------------------------------------------
    def _forward_test(self, features, proposals, image_shapes) -> list[dict[str, Tensor]]:
        counts = [len(p) for p in proposals]
        boxes = proposals
        logits_sum: Tensor | None = None
        for stage in range(self.num_stages):
            x = self.box_heads[stage](self.box_roi_pool(features, boxes, image_shapes))
            cls, deltas = self.box_predictors[stage](x)
            logits_sum = cls if logits_sum is None else logits_sum + cls
            moved = self.box_coders[stage].decode_single(deltas, torch.cat(boxes))
            boxes = [box_ops.clip_boxes_to_image(b, s) for b, s in zip(moved.split(counts), image_shapes)]
        assert logits_sum is not None
        scores = F.softmax(logits_sum / self.num_stages, dim=-1)
        results = []
        for b, sc in zip(boxes, scores.split(counts)):
            results.append(self._select(b, sc))
        if self.has_mask():
            self._predict_masks(features, results, image_shapes)
        return results

    def _select(self, boxes: Tensor, scores: Tensor) -> dict[str, Tensor]:
        """Per class above the score threshold, class-wise NMS, the top ``detections_per_img``."""
        num_classes = scores.shape[1]
        labels = torch.arange(1, num_classes, device=scores.device).view(1, -1).expand(len(boxes), -1)
        boxes = boxes[:, None, :].expand(-1, num_classes - 1, -1).reshape(-1, 4)
        scores, labels = scores[:, 1:].reshape(-1), labels.reshape(-1)
        keep = torch.where(scores > self.score_thresh)[0]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = box_ops.remove_small_boxes(boxes, min_size=1e-2)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = box_ops.batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
        return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}

    def _predict_masks(self, features, results: list[dict[str, Tensor]], image_shapes) -> None:
        assert self.mask_roi_pool is not None and self.mask_heads is not None and self.mask_predictors is not None
        boxes = [r["boxes"] for r in results]
        x = self.mask_roi_pool(features, boxes, image_shapes)
        labels = torch.cat([r["labels"] for r in results])
        rows = torch.arange(len(labels), device=labels.device)
        probs: Tensor | None = None
        for head, predictor in zip(self.mask_heads, self.mask_predictors):
            p = predictor(head(x)).sigmoid()[rows, labels][:, None]
            probs = p if probs is None else probs + p
        assert probs is not None
        probs = probs / len(self.mask_heads)
        for r, m in zip(results, probs.split([len(b) for b in boxes])):
            r["masks"] = m

    def forward(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError("cascade RoI heads need targets in training mode")
            return [], self._forward_train(features, proposals, image_shapes, targets)
        return self._forward_test(features, proposals, image_shapes), {}
