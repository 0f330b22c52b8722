"""Person boxes at predict time: one validator for every box source, and the one boxes-file loader.

Boxes reach ``PoseEstimator`` / ``hrnet pose predict`` from Python lists or arrays, a detector, or a file
in one of three formats (:data:`BOXES_HELP`). Whatever the source, :func:`validate_boxes` applies the same
rules, so a box means the same thing everywhere:

* coordinates are ``x1, y1, x2, y2`` image pixels (``score`` optional, 1 when absent);
* NaN / infinite values and boxes without area (``x2 <= x1`` or ``y2 <= y1``) are an error naming the box
  (:class:`BoxError`), or are skipped and counted under ``skip_bad``;
* boxes reaching beyond the image are clipped to it and counted (``clipped``); boxes wholly outside are
  dropped and counted (``outside``).

The image extent is ``[0, W] x [0, H]`` (COCO's box convention, also what torchvision detectors clip to),
so a detector box ending exactly on the border is not "clipped". Sizes are given as ``(H, W)``, the
order of ``image.shape[:2]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

BOXES_HELP = """person boxes (--boxes FILE), one of:
  {"img1.jpg": [[x1, y1, x2, y2, score], ...], ...}
        file name (or stem) -> boxes in pixels, corners; score optional (1)
  [{"image_id": 785, "category_id": 1, "bbox": [x, y, w, h], "score": 0.9}, ...]
        COCO detection results; image_id is matched to the numeric file stem (000000000785.jpg);
        entries of other categories than 1 (person) are ignored
  a COCO ground-truth file ({"images", "annotations", ...})
        its person boxes (bbox [x, y, w, h], score 1, crowd regions left out), matched by file name
Boxes scored below --det-thr (default 0.5, the detector's threshold too) are left out, and the
count is reported; a box without a score counts as 1. --boxes and --detector do not go together.
Boxes beyond the image are clipped to it and boxes wholly outside are dropped (both counted and
reported); a NaN, infinite or empty box (x2 <= x1 or y2 <= y1) stops the run naming the box, or is
skipped and counted with --skip-bad. An image the file has no entry for gets no people."""


class BoxError(ValueError):
    """A box (or boxes file) that cannot be used: NaN, infinite, no area, wrong shape or type."""


def _as_array(boxes: Any, source: str) -> np.ndarray:
    """Any box container -> float (N, 5); shape and type errors name the source."""
    if isinstance(boxes, np.ndarray) and boxes.dtype.kind in "fiu":
        b = boxes.astype(np.float64)
    elif (
        isinstance(boxes, list | tuple)
        and boxes
        and all(isinstance(r, list | tuple) for r in boxes)
        and {len(r) for r in boxes} == {4, 5}
    ):  # rows with and without a score: score 1 where absent
        return _as_array([list(r) + [1.0] * (5 - len(r)) for r in boxes], source)
    else:
        try:
            b = np.asarray(boxes.detach().cpu() if hasattr(boxes, "detach") else boxes, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise BoxError(f"{source}: boxes must be numbers [x1, y1, x2, y2(, score)] ({err})") from err
    if b.size == 0:
        return np.zeros((0, 5))
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] not in (4, 5):
        raise BoxError(f"{source}: boxes must be (N, 4) or (N, 5) x1, y1, x2, y2[, score], got shape {b.shape}")
    if b.shape[1] == 4:
        b = np.concatenate([b, np.ones((len(b), 1))], axis=1)
    return b


def _fmt(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def validate_boxes(
    boxes: Any, image_size: tuple[int, int], source: str = "boxes", skip_bad: bool = False
) -> tuple[np.ndarray, dict[str, int]]:
    """Boxes of one image -> (N, 5) float ``x1, y1, x2, y2, score`` clipped to the image, and the counts
    ``{"clipped": n, "outside": n, "bad": n}``.

    ``image_size`` is **(H, W)**, i.e. ``image.shape[:2]``. A NaN / infinite value or a box without area
    raises :class:`BoxError` naming ``source`` and the box index and values, unless ``skip_bad`` (then it
    is counted under ``bad``). Boxes wholly outside ``[0, W] x [0, H]`` are dropped (``outside``); the
    others are clipped to it (``clipped`` counts those that changed).
    """
    if len(image_size) != 2 or min(image_size) <= 0:
        raise ValueError(f"{source}: image_size must be (H, W) > 0, got {image_size}")
    h, w = float(image_size[0]), float(image_size[1])
    b = _as_array(boxes, source)
    counts = {"clipped": 0, "outside": 0, "bad": 0}
    keep = []
    for i, box in enumerate(b):
        x1, y1, x2, y2, _ = box
        problem = None
        if np.isnan(box).any():
            problem = "holds NaN"
        elif not np.isfinite(box).all():
            problem = "holds an infinite value"
        elif x2 <= x1 or y2 <= y1:
            problem = "has no area (needs x2 > x1 and y2 > y1)"
        if problem is not None:
            if not skip_bad:
                raise BoxError(
                    f"{source}: box {i} {_fmt(box)} {problem}; fix it or skip such boxes (--skip-bad / skip_bad=True)"
                )
            counts["bad"] += 1
            continue
        if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
            counts["outside"] += 1
            continue
        clipped = [min(max(x1, 0.0), w), min(max(y1, 0.0), h), min(max(x2, 0.0), w), min(max(y2, 0.0), h)]
        if clipped != [x1, y1, x2, y2]:
            counts["clipped"] += 1
        keep.append([*clipped, box[4]])
    return np.asarray(keep, dtype=np.float64).reshape(-1, 5), counts


def describe_counts(counts: dict[str, int]) -> str:
    """``{"clipped": 2, "outside": 1}`` -> ``"2 boxes clipped to the image, 1 box wholly outside dropped"``."""
    words = {
        "clipped": "clipped to the image",
        "outside": "wholly outside the image dropped",
        "bad": "NaN / infinite / empty skipped",
    }
    parts = [f"{n} box{'es' if n != 1 else ''} {words.get(k, k)}" for k, n in counts.items() if n]
    return ", ".join(parts)


# ----------------------------------------------------------------------------------------------------
# boxes files


def _number(value: Any) -> bool:
    """A JSON number (NaN / Infinity literals included: they are reported per box, later)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _xywh(bbox: Any, where: str) -> list[float]:
    if not isinstance(bbox, list | tuple) or len(bbox) != 4 or not all(_number(v) for v in bbox):
        raise BoxError(f"{where}: bbox must be four numbers [x, y, w, h], got {bbox!r}")
    x, y, bw, bh = (float(v) for v in bbox)
    return [x, y, x + bw, y + bh]


def _score(det: dict, where: str) -> float:
    score = det.get("score", 1.0)
    if not _number(score):
        raise BoxError(f"{where}: score must be a number, got {score!r}")
    return float(score)


def _person_categories(data: dict) -> set[int] | None:
    """Category ids of people in a COCO file: named ``person`` or declaring keypoints; None = no categories."""
    cats = [c for c in data.get("categories") or [] if isinstance(c, dict) and "id" in c]
    if not cats:
        return None
    people = {c["id"] for c in cats if c.get("keypoints") or str(c.get("name", "")).lower() == "person"}
    return people or {c["id"] for c in cats}


def _from_ground_truth(data: dict, p: Path) -> dict[str, list[list[float]]]:
    images = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img:
            raise BoxError(f"{p}: images[{i}] has no id")
        images[img["id"]] = img
    people = _person_categories(data)
    out: dict[str, list[list[float]]] = {}
    for i, ann in enumerate(data["annotations"]):
        where = f"{p}: annotation {ann.get('id', i) if isinstance(ann, dict) else i}"
        if not isinstance(ann, dict) or "bbox" not in ann:
            raise BoxError(f"{where}: not an annotation with a bbox")
        if ann.get("iscrowd", 0) or (people is not None and ann.get("category_id", 1) not in people):
            continue
        img = images.get(ann.get("image_id"))
        if img is None:
            raise BoxError(f"{where}: image_id {ann.get('image_id')!r} is not among the file's images")
        box = [*_xywh(ann["bbox"], where), 1.0]
        keys = {str(img["id"])}
        if isinstance(img.get("file_name"), str):
            keys |= {img["file_name"], Path(img["file_name"]).name}
        for key in keys:
            out.setdefault(key, []).append(box)
    return out


def _from_results(data: list, p: Path) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = {}
    for i, det in enumerate(data):
        where = f"{p}: entry {i}"
        if not isinstance(det, dict) or "image_id" not in det or "bbox" not in det:
            raise BoxError(f"{where} is not a detection {{image_id, bbox, score}}")
        if det.get("category_id", 1) != 1:
            continue
        out.setdefault(str(det["image_id"]), []).append([*_xywh(det["bbox"], where), _score(det, where)])
    return out


def _from_mapping(data: dict, p: Path) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = {}
    for name, boxes in data.items():
        where = f"{p}: boxes of {name!r}"
        if not isinstance(boxes, list):
            raise BoxError(f"{where} must be a list of [x1, y1, x2, y2(, score)] lists, got {boxes!r}")
        rows = []
        for j, box in enumerate(boxes):
            if not isinstance(box, list) or len(box) not in (4, 5) or not all(_number(v) for v in box):
                raise BoxError(f"{where}: box {j} must be 4 or 5 numbers [x1, y1, x2, y2(, score)], got {box!r}")
            rows.append([float(v) for v in box] + ([1.0] if len(box) == 4 else []))
        out[str(name)] = rows
    return out


def load_boxes_file(path: str | Path) -> dict[str, np.ndarray]:
    """A boxes file (any format of :data:`BOXES_HELP`) -> ``{file name, stem or image id: (N, 5) x1, y1, x2, y2,
    score}``. Structure and types are checked here; the boxes themselves are checked per image by
    :func:`validate_boxes` (which needs the image size)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: boxes file not found")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BoxError(f"{p}: not a JSON boxes file ({err})") from err
    if isinstance(data, dict) and isinstance(data.get("images"), list) and isinstance(data.get("annotations"), list):
        table = _from_ground_truth(data, p)
    elif isinstance(data, dict):
        table = _from_mapping(data, p)
    elif isinstance(data, list):
        table = _from_results(data, p)
    else:
        raise BoxError(
            f"{p}: expected a mapping file -> boxes, a list of COCO detections or a COCO "
            f"ground-truth file, got a JSON {type(data).__name__}"
        )
    return {k: np.asarray(v, dtype=np.float64).reshape(-1, 5) for k, v in table.items()}


DEFAULT_SCORE_THR = 0.5  # predict keeps person boxes (of a file or a detector) scored at least this


def drop_low_scores(table: dict[str, np.ndarray], score_thr: float) -> tuple[dict[str, np.ndarray], int]:
    """A loaded boxes table without the boxes scored below ``score_thr``, and how many were left out.

    Detection results files list every candidate down to tiny scores (a COCO person detections file
    holds dozens of boxes per image); predict keeps those a detector run with the same threshold would.
    """
    if not 0.0 <= score_thr <= 1.0:
        raise ValueError(f"--det-thr must be in [0, 1], got {score_thr:g}")
    kept = {k: v[(v[:, 4] >= score_thr) | np.isnan(v[:, 4])] for k, v in table.items()}  # NaN: reported later
    dropped = sum(len(v) for v in table.values()) - sum(len(v) for v in kept.values())
    return kept, dropped


def boxes_for(table: dict[str, np.ndarray], file: Path) -> np.ndarray | None:
    """The boxes of ``file`` in a loaded table: by file name, stem, or the numeric id of a COCO-style name
    (``000000000785.jpg`` -> ``785``); None when the table has no entry for it."""
    file = Path(file)
    keys = [file.name, file.stem]
    if file.stem.isdigit():
        keys.append(str(int(file.stem)))
    for key in keys:
        if key in table:
            return table[key]
    return None


__all__ = [
    "BOXES_HELP",
    "DEFAULT_SCORE_THR",
    "BoxError",
    "boxes_for",
    "describe_counts",
    "drop_low_scores",
    "load_boxes_file",
    "validate_boxes",
]
