"""CenterNet ("objects as points", Zhou et al. 2019) on the 1/4 HRNetV2 representation.

Not the paper's Table 9 entry: that row most likely used Duan et al.'s keypoint-triplet CenterNet (corner
pooling on Hourglass). This is the simpler centre-point design FairMOT runs on HRNet: three heads on the
15C-channel HRNetV2 concatenation at stride 4,

- ``hm``: one heatmap per class, trained with the penalty-reduced focal loss (alpha 2, beta 4) on Gaussian
  peaks of radius ``gaussian_radius(h, w, 0.7)`` (CornerNet's rule);
- ``wh``: box width / height in output pixels (L1, weight 0.1);
- ``reg``: the sub-pixel offset of the centre (L1, weight 1);

decoded by 3x3 max-pool peak picking and the top 100 peaks over all classes and positions (no IoU NMS).
Images are resized and batched by the same :class:`~hrnet.detection.transforms.DetTransform` as the other
detectors (keep-ratio resize, pad to 32) instead of Zhou's 512x512 affine crops, so one predict path serves
every framework.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hrnet.detection.transforms import DetTransform

STRIDE = 4
HM_BIAS = -2.19  # sigmoid(-2.19) = 0.1: the heatmap starts near "no object", as in the focal-loss papers


def head(in_channels: int, out_channels: int, mid: int = 256, bias: float = 0.0) -> nn.Sequential:
    """3x3 conv -> ReLU -> 1x1 conv; the last bias starts at ``bias``."""
    seq = nn.Sequential(
        nn.Conv2d(in_channels, mid, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(mid, out_channels, 1)
    )
    nn.init.constant_(seq[2].bias, bias)
    if bias == 0.0:
        nn.init.normal_(seq[2].weight, std=0.001)
    return seq


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CornerNet's radius: the largest corner shift that keeps IoU >= ``min_overlap`` (smallest of 3 cases)."""
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heatmap: Tensor, cx: int, cy: int, radius: int) -> None:
    """Max-merge a Gaussian peak (sigma = diameter / 6) centred at integer (cx, cy) into ``heatmap`` (H, W)."""
    h, w = heatmap.shape
    sigma = (2 * radius + 1) / 6
    ys = torch.arange(-radius, radius + 1, dtype=heatmap.dtype, device=heatmap.device)
    g = torch.exp(-(ys[:, None] ** 2 + ys[None, :] ** 2) / (2 * sigma**2))
    x0, x1 = max(0, cx - radius), min(w, cx + radius + 1)
    y0, y1 = max(0, cy - radius), min(h, cy + radius + 1)
    if x0 >= x1 or y0 >= y1:
        return
    patch = g[y0 - cy + radius : y1 - cy + radius, x0 - cx + radius : x1 - cx + radius]
    heatmap[y0:y1, x0:x1] = torch.maximum(heatmap[y0:y1, x0:x1], patch)


def focal_loss(pred: Tensor, gt: Tensor) -> Tensor:
    """Penalty-reduced pixel-wise focal loss (CornerNet / CenterNet), normalised by the number of peaks."""
    pred = pred.clamp(1e-4, 1 - 1e-4)
    pos = gt.eq(1).float()
    neg_weight = (1 - gt).pow(4)
    pos_loss = (torch.log(pred) * (1 - pred).pow(2) * pos).sum()
    neg_loss = (torch.log(1 - pred) * pred.pow(2) * neg_weight * (1 - pos)).sum()
    num_pos = pos.sum()
    return -(pos_loss + neg_loss) / num_pos.clamp(min=1.0)


class CenterNet(nn.Module):
    """Heads ``hm`` / ``wh`` / ``reg`` on a representation module (``backbone``) at stride 4.

    Call like a torchvision detector: ``model(images, targets)`` returns losses in training mode,
    ``model(images)`` a list of ``{"boxes", "scores", "labels"}`` (labels 1..num_classes) otherwise.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        transform: DetTransform | None = None,
        head_channels: int = 256,
        topk: int = 100,
        score_thresh: float = 0.0,
        wh_weight: float = 0.1,
        offset_weight: float = 1.0,
        min_overlap: float = 0.7,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.transform = transform if transform is not None else DetTransform(512, 512)
        c = backbone.out_channels
        self.hm = head(c, num_classes, head_channels, bias=HM_BIAS)
        self.wh = head(c, 2, head_channels)
        self.reg = head(c, 2, head_channels)
        self.num_classes = num_classes
        self.topk = topk
        self.score_thresh = score_thresh
        self.wh_weight = wh_weight
        self.offset_weight = offset_weight
        self.min_overlap = min_overlap

    # ---- training ------------------------------------------------------------------------------------
    def targets(self, targets: list[dict[str, Tensor]], size: tuple[int, int]) -> dict[str, Tensor]:
        """Heatmaps (N, C, H, W), and per object: batch / flat position, size and offset targets."""
        h, w = size
        n = len(targets)
        device = targets[0]["boxes"].device if n else torch.device("cpu")
        hm = torch.zeros(n, self.num_classes, h, w, device=device)
        batch, pos, wh, off = [], [], [], []
        for b, t in enumerate(targets):
            for box, label in zip(t["boxes"].tolist(), t["labels"].tolist()):
                x1, y1, x2, y2 = (v / STRIDE for v in box)
                bw, bh = x2 - x1, y2 - y1
                if bw <= 0 or bh <= 0:
                    continue
                cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                ix, iy = min(int(cx), w - 1), min(int(cy), h - 1)
                radius = max(0, int(gaussian_radius(math.ceil(bh), math.ceil(bw), self.min_overlap)))
                draw_gaussian(hm[b, int(label) - 1], ix, iy, radius)
                batch.append(b)
                pos.append(iy * w + ix)
                wh.append((bw, bh))
                off.append((cx - ix, cy - iy))
        as_t = lambda v, dt: torch.tensor(v, dtype=dt, device=device)  # noqa: E731
        return {
            "hm": hm,
            "batch": as_t(batch, torch.int64),
            "pos": as_t(pos, torch.int64),
            "wh": as_t(wh, torch.float32).reshape(-1, 2),
            "off": as_t(off, torch.float32).reshape(-1, 2),
        }

    def losses(self, out: dict[str, Tensor], tgt: dict[str, Tensor]) -> dict[str, Tensor]:
        loss_hm = focal_loss(out["hm"].float().sigmoid(), tgt["hm"])
        k = len(tgt["pos"])

        def gather(x: Tensor) -> Tensor:  # (N, 2, H, W) -> (k, 2) at the object centres
            return x.float().flatten(2)[tgt["batch"], :, tgt["pos"]]

        denom = 2 * k + 1e-4
        loss_wh = (gather(out["wh"]) - tgt["wh"]).abs().sum() / denom
        loss_off = (gather(out["reg"]) - tgt["off"]).abs().sum() / denom
        return {
            "loss_heatmap": loss_hm,
            "loss_wh": self.wh_weight * loss_wh,
            "loss_offset": self.offset_weight * loss_off,
        }

    # ---- inference -----------------------------------------------------------------------------------
    def decode(self, out: dict[str, Tensor], image_sizes: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        """3x3 max-pool peaks, top-k over classes and positions, boxes = centre +- size / 2 (input pixels)."""
        hm = out["hm"].float().sigmoid()
        hm = hm * (F.max_pool2d(hm, 3, stride=1, padding=1) == hm)
        n, c, h, w = hm.shape
        k = min(self.topk, c * h * w)
        scores, idx = hm.flatten(1).topk(k)
        labels = idx // (h * w)
        pos = idx % (h * w)
        ys, xs = (pos // w).float(), (pos % w).float()
        results = []
        for b in range(n):
            off = out["reg"][b].float().flatten(1)[:, pos[b]]
            wh = out["wh"][b].float().flatten(1)[:, pos[b]]
            cx, cy = xs[b] + off[0], ys[b] + off[1]
            boxes = torch.stack([cx - wh[0] / 2, cy - wh[1] / 2, cx + wh[0] / 2, cy + wh[1] / 2], dim=1) * STRIDE
            hh, ww = image_sizes[b]
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, ww)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, hh)
            keep = scores[b] > self.score_thresh
            results.append({"boxes": boxes[keep], "scores": scores[b][keep], "labels": labels[b][keep] + 1})
        return results

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None):
        original_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        batch, targets = self.transform(images, targets)
        feat = self.backbone(batch.tensors)
        out = {"hm": self.hm(feat), "wh": self.wh(feat), "reg": self.reg(feat)}
        if self.training:
            if targets is None:
                raise ValueError("CenterNet needs targets in training mode")
            return self.losses(out, self.targets(targets, tuple(feat.shape[-2:])))
        detections = self.decode(out, batch.image_sizes)
        return self.transform.postprocess(detections, batch.image_sizes, original_sizes)
