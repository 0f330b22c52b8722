"""COCO-WholeBody (Jin et al., ECCV 2020): 133 keypoints in five parts, stored per part in the files.

A COCO-WholeBody annotation keeps the 17 body keypoints in ``keypoints`` and the rest in ``foot_kpts``
(6), ``face_kpts`` (68), ``lefthand_kpts`` (21) and ``righthand_kpts`` (21). The pose pipeline works on one
133-keypoint array per person (the ``coco_wholebody`` keypoint set, in this order), so
:func:`merge_wholebody` joins the parts once when the file is read; evaluation splits them again to score
every part with its own sigmas (:func:`hrnet.pose.evaluation.evaluate_wholebody`).
"""

from __future__ import annotations

from typing import Any

# part -> (first keypoint, end) in the 133-keypoint order, and the annotation field that holds it
WHOLEBODY_PARTS: dict[str, tuple[int, int]] = {
    "body": (0, 17),
    "foot": (17, 23),
    "face": (23, 91),
    "left_hand": (91, 112),
    "right_hand": (112, 133),
}
PART_FIELDS = {
    "body": "keypoints",
    "foot": "foot_kpts",
    "face": "face_kpts",
    "left_hand": "lefthand_kpts",
    "right_hand": "righthand_kpts",
}
NUM_WHOLEBODY = 133


def is_wholebody(data: Any) -> bool:
    """True when a parsed COCO file holds COCO-WholeBody parts (``foot_kpts`` in its first annotation)."""
    anns = data.get("annotations") if isinstance(data, dict) else None
    return bool(anns) and isinstance(anns[0], dict) and "foot_kpts" in anns[0]


def merge_wholebody(data: dict, source: str) -> int:
    """Replace each annotation's ``keypoints`` by the 133 of all parts (edited in place); returns how many
    annotations were merged. A part of the wrong length is a ``ValueError`` naming ``source`` and the id;
    an annotation already holding 133 keypoints is left as it is (a file merged before)."""
    merged = 0
    for i, ann in enumerate(data.get("annotations", [])):
        if not isinstance(ann, dict) or len(ann.get("keypoints") or []) == 3 * NUM_WHOLEBODY:
            continue
        values: list = []
        for part, (lo, hi) in WHOLEBODY_PARTS.items():
            field = PART_FIELDS[part]
            kp = ann.get(field)
            if not isinstance(kp, list) or len(kp) != 3 * (hi - lo):
                got = "missing" if kp is None else f"{len(kp) if isinstance(kp, list) else type(kp).__name__} values"
                raise ValueError(
                    f"{source}: annotation id {ann.get('id', f'#{i}')}: COCO-WholeBody field {field!r} must hold "
                    f"{3 * (hi - lo)} values ({hi - lo} keypoints x, y, v), got {got}"
                )
            values += kp
        ann["keypoints"] = values
        merged += 1
    return merged
