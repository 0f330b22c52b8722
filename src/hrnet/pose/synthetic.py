"""A small COCO-format person-keypoint dataset rendered from scratch: the demo's data on a fresh machine.

Each image holds 1-3 articulated figures with the 17 COCO keypoints on a procedural background
(gradients, smooth noise, random shapes and distractor strokes). A figure has a torso, a head with eyes,
nose and ears, and limbs drawn as thick strokes with a colour per limb type (upper arm, forearm, thigh,
shin) and small discs at the joints. Left and right limbs share their colours on purpose: all figures
face the camera, so the person's left is told apart from the right by geometry, exactly as a mirrored
image expects; this keeps horizontal-flip augmentation and flip test consistent with the labels.

Pose angles, limb lengths (with foreshortening), scale, position, in-plane tilt, stroke thickness and
colours are random; later figures and random occluders hide earlier ones (visibility 1), figures may be
cut by the image border (keypoints outside get visibility 0 and coordinates 0, as in COCO). ``area`` is
the area of the convex hull of the visible part of the figure, a stand-in for a body silhouette, and
``segmentation`` is that hull as a polygon. Everything is a pure function of the seed.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hrnet.atomic import write_bytes, write_json

log = logging.getLogger(__name__)

KEYPOINT_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
# COCO's person skeleton, 1-based as written in the official category entry
SKELETON_1BASED = (
    (16, 14),
    (14, 12),
    (17, 15),
    (15, 13),
    (12, 13),
    (6, 12),
    (7, 13),
    (6, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (9, 11),
    (2, 3),
    (1, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
    (5, 7),
)
PERSON_CATEGORY = {
    "id": 1,
    "name": "person",
    "supercategory": "person",
    "keypoints": list(KEYPOINT_NAMES),
    "skeleton": [list(p) for p in SKELETON_1BASED],
}
# limb (joint a, joint b, limb type); types share a colour across left and right
_LIMBS = (
    (5, 7, 0),
    (6, 8, 0),
    (7, 9, 1),
    (8, 10, 1),
    (11, 13, 2),
    (12, 14, 2),
    (13, 15, 3),
    (14, 16, 3),
)
_LIMB_BASE_COLOURS = np.array([(230, 60, 50), (250, 200, 40), (40, 110, 230), (40, 190, 90)], np.float64)
_SHIFT = 4  # cv2 sub-pixel drawing: coordinates in 1/16 pixel
_VERSION = 1


@dataclass(frozen=True)
class _Figure:
    """One rendered person: keypoints (17, 2) in image pixels and the drawing parameters."""

    kpts: np.ndarray
    head_c: np.ndarray
    head_r: float
    limb_w: int
    joint_r: float
    colours: np.ndarray  # (4, 3) limb types
    torso_colour: tuple[int, int, int]
    skin: tuple[int, int, int]
    far_ear: int  # index of an ear hidden by the head turn, or -1


def _rot(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _direction(angle_deg: float) -> np.ndarray:
    """Unit vector at ``angle_deg`` measured from straight down, positive toward +x."""
    a = math.radians(angle_deg)
    return np.array([math.sin(a), math.cos(a)])


def _sample_figure(rng: np.random.Generator, size: tuple[int, int]) -> _Figure:
    """Random body proportions and pose in a unit frame (person height 1), placed into a W x H image."""
    w, h = size
    j = np.zeros((17, 2))
    jit = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    shoulder_w, hip_w = jit(0.20, 0.28), jit(0.14, 0.19)
    torso, neck, head_r = jit(0.28, 0.34), jit(0.03, 0.06), jit(0.055, 0.07)
    lean = jit(-0.05, 0.05)
    neck_pt = np.array([0.0, 0.0])
    pelvis = np.array([lean, torso])
    j[5], j[6] = neck_pt + [shoulder_w / 2, 0], neck_pt - [shoulder_w / 2, 0]  # person's left at +x
    j[11], j[12] = pelvis + [hip_w / 2, 0], pelvis - [hip_w / 2, 0]
    for side, (sh, el, wr) in ((1, (5, 7, 9)), (-1, (6, 8, 10))):
        up = jit(-30, 165)
        bend = up + jit(-140, 40)
        j[el] = j[sh] + jit(0.13, 0.18) * jit(0.65, 1.0) * _direction(side * up)
        j[wr] = j[el] + jit(0.12, 0.16) * jit(0.65, 1.0) * _direction(side * bend)
    for side, (hp, kn, an) in ((1, (11, 13, 15)), (-1, (12, 14, 16))):
        thigh = jit(-12, 55)
        shin = thigh + jit(-60, 25)
        j[kn] = j[hp] + jit(0.21, 0.25) * jit(0.7, 1.0) * _direction(side * thigh)
        j[an] = j[kn] + jit(0.21, 0.25) * jit(0.7, 1.0) * _direction(side * shin)
    head_c = neck_pt + [jit(-0.02, 0.02), -(neck + head_r)]
    yaw = jit(-0.5, 0.5)  # head turn: face features shift sideways
    j[0] = head_c + [yaw * head_r, 0.15 * head_r]
    j[1] = head_c + [(yaw + 0.38) * head_r, -0.25 * head_r]
    j[2] = head_c + [(yaw - 0.38) * head_r, -0.25 * head_r]
    j[3] = head_c + [(0.85 - 0.3 * max(yaw, 0)) * head_r, 0.0]
    j[4] = head_c - [(0.85 + 0.3 * min(yaw, 0)) * head_r, 0.0]
    far_ear = 4 if yaw > 0.3 else 3 if yaw < -0.3 else -1

    # place: height in pixels, in-plane tilt about the pelvis, position (may be cut by the border)
    height = jit(0.35, 0.95) * h
    tilt = math.radians(rng.normal(0, 12) if rng.random() < 0.85 else rng.uniform(-60, 60))
    centre = np.array([jit(-0.05, 1.05) * w, jit(0.1, 0.9) * h])
    mid = (j[5:].min(0) + j[5:].max(0)) / 2
    rot = _rot(tilt)
    to_img = lambda p: (p - mid) @ rot.T * height + centre  # noqa: E731
    colours = _LIMB_BASE_COLOURS * rng.uniform(0.75, 1.15, (4, 1)) + rng.normal(0, 12, (4, 3))
    colours = np.clip(colours, 0, 255)
    torso_colour = tuple(int(c) for c in rng.integers(40, 220, 3))
    skin = tuple(int(c) for c in np.clip(np.array([225, 180, 150]) * rng.uniform(0.5, 1.1), 0, 255))
    return _Figure(
        kpts=to_img(j),
        head_c=to_img(head_c),
        head_r=head_r * height,
        limb_w=max(2, int(round(jit(0.022, 0.04) * height))),
        joint_r=max(1.5, jit(0.012, 0.02) * height),
        colours=colours,
        torso_colour=torso_colour,
        skin=skin,
        far_ear=far_ear,
    )


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0] * (1 << _SHIFT))), int(round(p[1] * (1 << _SHIFT)))


def _draw_figure(canvas: np.ndarray, f: _Figure, mask_only: bool = False) -> None:
    """Draw figure ``f`` on ``canvas`` (RGB, or a single-channel mask when ``mask_only``)."""
    aa = cv2.LINE_8 if mask_only else cv2.LINE_AA
    col = (lambda c: 255) if mask_only else (lambda c: tuple(int(v) for v in c))  # noqa: E731
    k = f.kpts
    torso = np.array([_pt(k[5]), _pt(k[6]), _pt(k[12]), _pt(k[11])], np.int32)
    cv2.fillConvexPoly(canvas, torso, col(f.torso_colour), aa, _SHIFT)
    cv2.line(canvas, _pt((k[5] + k[6]) / 2), _pt(f.head_c), col(f.skin), max(2, f.limb_w), aa, _SHIFT)
    order = (4, 5, 6, 7, 0, 1, 2, 3)  # legs, then arms (arms in front of the torso)
    for idx in order:
        a, b, t = _LIMBS[idx]
        cv2.line(canvas, _pt(k[a]), _pt(k[b]), col(f.colours[t]), f.limb_w, aa, _SHIFT)
    r = int(round(f.joint_r * (1 << _SHIFT)))
    for i in range(5, 17):
        cv2.circle(canvas, _pt(k[i]), r, col((250, 250, 250)), -1, aa, _SHIFT)
        if not mask_only:
            cv2.circle(canvas, _pt(k[i]), max(1, r // 2), (20, 20, 20), -1, aa, _SHIFT)
    cv2.circle(canvas, _pt(f.head_c), int(round(f.head_r * (1 << _SHIFT))), col(f.skin), -1, aa, _SHIFT)
    if mask_only:
        return
    feat_r = max(1 << _SHIFT, int(round(0.13 * f.head_r * (1 << _SHIFT))))
    cv2.circle(canvas, _pt(k[1]), feat_r, (30, 30, 90), -1, aa, _SHIFT)
    cv2.circle(canvas, _pt(k[2]), feat_r, (30, 30, 90), -1, aa, _SHIFT)
    cv2.circle(canvas, _pt(k[0]), feat_r, (200, 40, 40), -1, aa, _SHIFT)
    for ear in (3, 4):
        if ear != f.far_ear:
            cv2.circle(canvas, _pt(k[ear]), feat_r, (120, 70, 40), -1, aa, _SHIFT)


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Gradient or smooth noise, then random shapes and a few limb-like distractor strokes."""
    kind = rng.integers(3)
    if kind == 0:
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        a = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        t = (xx * math.cos(a) + yy * math.sin(a)) / (w + h) + 0.5
        img = c0 + (c1 - c0) * np.clip(t, 0, 1)[..., None]
    else:
        coarse = rng.uniform(0, 255, (int(rng.integers(2, 8)), int(rng.integers(2, 8)), 3))
        img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        if kind == 2:
            img = img + rng.normal(0, 18, (h, w, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 9))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        s = int(rng.integers(5, max(6, min(w, h) // 3)))
        shape = rng.integers(3)
        if shape == 0:
            cv2.circle(img, (cx, cy), s, colour, -1, cv2.LINE_AA)
        elif shape == 1:
            cv2.rectangle(img, (cx - s, cy - s // 2), (cx + s, cy + s // 2), colour, -1)
        else:
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(img, (cx, cy), (s, s // 3 + 1), angle, 0, 360, colour, -1, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 3))):  # strokes in limb colours: the net must use the body's layout
        colour = tuple(int(c) for c in _LIMB_BASE_COLOURS[rng.integers(4)])
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (p0[0] + int(rng.integers(-40, 41)), p0[1] + int(rng.integers(-40, 41)))
        cv2.line(img, p0, p1, colour, int(rng.integers(2, 6)), cv2.LINE_AA)
    return img


def _render_image(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, list[dict]]:
    """One image and its person annotations (without ids)."""
    w, h = size
    img = _background(rng, w, h)
    figures = [_sample_figure(rng, size) for _ in range(int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2])))]
    figures.sort(key=lambda f: f.head_r)  # small (far) figures first: nearer ones hide them
    masks = []
    for f in figures:
        m = np.zeros((h, w), np.uint8)
        _draw_figure(m, f, mask_only=True)
        masks.append(m > 0)
        _draw_figure(img, f)
    occluder = np.zeros((h, w), np.uint8)
    if rng.random() < 0.25:  # a foreground object hiding part of someone
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        ax, ay = int(rng.integers(w // 12, w // 5)), int(rng.integers(h // 12, h // 4))
        cv2.rectangle(img, (cx - ax, cy - ay), (cx + ax, cy + ay), colour, -1)
        cv2.rectangle(occluder, (cx - ax, cy - ay), (cx + ax, cy + ay), 255, -1)
    anns = []
    for i, f in enumerate(figures):
        hidden = occluder > 0
        for m in masks[i + 1 :]:
            hidden = hidden | m
        visible_mask = masks[i] & ~hidden
        if visible_mask.sum() < 16:
            continue  # fully hidden or outside: not annotated, like an unlabelled person in the background
        kp = np.zeros((17, 3))
        for k, (x, y) in enumerate(f.kpts):
            xi, yi = int(round(x)), int(round(y))
            if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
                continue  # outside the image: v=0, x=y=0
            occluded = bool(hidden[yi, xi]) or k == f.far_ear
            kp[k] = (x, y, 1 if occluded else 2)
        ys, xs = np.nonzero(masks[i])  # amodal box of the figure inside the image
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        pts = np.stack(np.nonzero(visible_mask)[::-1], 1).astype(np.int32)
        hull = cv2.convexHull(pts).reshape(-1, 2).astype(np.float64)
        area = float(cv2.contourArea(hull.astype(np.float32)))
        anns.append(
            {
                "keypoints": [round(float(v), 2) if c < 2 else int(v) for row in kp for c, v in enumerate(row)],
                "num_keypoints": int((kp[:, 2] > 0).sum()),
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "area": round(max(area, 1.0), 2),
                "segmentation": [[round(float(v), 1) for v in hull.reshape(-1)]]
                if len(hull) >= 3
                else [[float(x0), float(y0), float(x1), float(y0), float(x1), float(y1), float(x0), float(y1)]],
                "iscrowd": 0,
                "category_id": 1,
            }
        )
    return img, anns


def _jittered_detections(
    rng: np.random.Generator, anns: list[dict], image_id: int, size: tuple[int, int]
) -> list[dict]:
    """GT boxes with noisy edges and high scores, plus a few low-score false positives."""
    w, h = size
    dets = []
    for a in anns:
        x, y, bw, bh = a["bbox"]
        dx0, dy0, dx1, dy1 = rng.normal(0, 0.05, 4) * [bw, bh, bw, bh]
        x0, y0 = max(0.0, x + dx0), max(0.0, y + dy0)
        x1, y1 = min(float(w), x + bw + dx1), min(float(h), y + bh + dy1)
        if x1 - x0 > 2 and y1 - y0 > 2:
            box = [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]
            score = round(float(rng.uniform(0.7, 1.0)), 4)
            dets.append({"image_id": image_id, "category_id": 1, "bbox": box, "score": score})
    for _ in range(int(rng.integers(0, 3))):
        bw, bh = rng.uniform(0.1, 0.4) * w, rng.uniform(0.2, 0.6) * h
        x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        box = [round(float(v), 2) for v in (x0, y0, bw, bh)]
        score = round(float(rng.uniform(0.02, 0.6)), 4)
        dets.append({"image_id": image_id, "category_id": 1, "bbox": box, "score": score})
    return dets


def make_synthetic_coco(
    out_dir: str | Path,
    num_train: int = 600,
    num_val: int = 100,
    image_size: tuple[int, int] = (256, 192),
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Render the dataset under ``out_dir`` and return its paths.

    Layout: ``images/{train,val}_NNNNNN.jpg``, ``annotations/person_keypoints_{train,val}.json`` and
    ``annotations/person_detections_val.json`` (official results format: jittered GT boxes and a few false
    positives). A folder already made with the same arguments is reused unless ``overwrite``.
    Returns keys ``root``, ``images``, ``train_json``, ``val_json``, ``detections``.
    """
    if num_train < 0 or num_val < 0:
        raise ValueError(f"num_train and num_val must be >= 0, got {num_train}, {num_val}")
    w, h = int(image_size[0]), int(image_size[1])
    if w < 32 or h < 32:
        raise ValueError(f"image_size (W, H) must be at least 32x32, got {image_size}")
    root = Path(out_dir)
    paths = {
        "root": root,
        "images": root / "images",
        "train_json": root / "annotations" / "person_keypoints_train.json",
        "val_json": root / "annotations" / "person_keypoints_val.json",
        "detections": root / "annotations" / "person_detections_val.json",
    }
    manifest = root / "synthetic.json"
    params = {"version": _VERSION, "num_train": num_train, "num_val": num_val, "image_size": [w, h], "seed": seed}
    if not overwrite and manifest.is_file() and all(p.exists() for p in paths.values()):
        try:
            if json.loads(manifest.read_text()) == params:
                log.info("reusing synthetic dataset in %s", root)
                return paths
        except json.JSONDecodeError:
            pass
    paths["images"].mkdir(parents=True, exist_ok=True)
    paths["val_json"].parent.mkdir(parents=True, exist_ok=True)
    manifest.unlink(missing_ok=True)
    ann_id = 1
    detections: list[dict] = []
    for split_no, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        images, annotations = [], []
        for i in range(count):
            image_id = split_no * 1_000_000 + i + 1
            rng = np.random.default_rng([seed, split_no, i])
            img, anns = _render_image(rng, (w, h))
            name = f"{split}_{image_id:07d}.jpg"
            bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
            ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
            if not ok:
                raise RuntimeError(f"{paths['images'] / name}: JPEG encoding failed")
            write_bytes(paths["images"] / name, buf.tobytes())
            images.append({"id": image_id, "file_name": name, "width": w, "height": h})
            for a in anns:
                annotations.append({"id": ann_id, "image_id": image_id, **a})
                ann_id += 1
            if split == "val":
                detections += _jittered_detections(rng, anns, image_id, (w, h))
        coco = {
            "info": {"description": "hrnet synthetic person keypoints", "version": str(_VERSION)},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": [PERSON_CATEGORY],
        }
        write_json(paths[f"{split}_json"], coco, indent=None)
    write_json(paths["detections"], detections, indent=None)
    write_json(manifest, params, indent=None)
    return paths
