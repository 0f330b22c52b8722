"""Facial landmark data (WFLW, 300W, COFW, AFLW) as they are published, and the NME protocol.

Two file formats are read, each with its box convention:

- mmpose's COCO-style files (``images`` / ``annotations``, ``keypoints`` = K x [x, y, v]). WFLW, 300W and
  AFLW annotations carry the official ``center`` and ``scale`` (face box side / 200 px); COFW carries a
  ``bbox`` only, which becomes center / scale as any COCO box does (grown to the crop's aspect ratio).
  AFLW adds ``box_size``, its NME normaliser.
- the CSV files of HRNet-Facial-Landmark-Detection: a header line, then ``image, scale, center_w,
  center_h, x0, y0, x1, y1, ...`` (AFLW: ``image, scale, box_size, center_w, center_h, ...``).

Both ways the crop is the official one: ``scale`` x 1.25 around ``center``. COFW's official ``.mat`` files
are not read; mmpose's ``cofw_{train,test}.json`` hold the same faces.

NME (normalised mean error) is the mean landmark distance over a per-face normaliser (the official
``compute_nme``): the outer-eye-corner distance for WFLW (landmarks 60 / 72) and 300W (36 / 45), the
inter-pupil distance for COFW (8 / 9), the face box size for AFLW. The failure rate counts faces above
0.1 and AUC is the area under the cumulative error curve up to 0.1, divided by 0.1.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hrnet.pose.datasets import PoseAugment, TopDownDataset, read_coco_keypoints
from hrnet.pose.keypoints import KeypointSet
from hrnet.pose.transforms import PIXEL_STD, box_to_center_scale

FACE_PADDING = 1.25  # the official loaders' ``scale *= 1.25``


@dataclass(frozen=True)
class Normalizer:
    """How a face's NME is normalised: the distance of two ground-truth landmarks, or the face box size."""

    kind: str  # "keypoints" | "box"
    a: int = -1
    b: int = -1

    def describe(self) -> str:
        """'landmarks 60-72 distance' or 'box size': what the metrics file says it used."""
        return "box size" if self.kind == "box" else f"distance of landmarks {self.a} and {self.b}"


# the official compute_nme, by keypoint-set name (0-based landmark indices)
NORMALIZERS: dict[str, Normalizer] = {
    "wflw": Normalizer("keypoints", 60, 72),  # outer eye corners (inter-ocular)
    "300w": Normalizer("keypoints", 36, 45),  # outer eye corners (inter-ocular)
    "cofw": Normalizer("keypoints", 8, 9),  # pupils (inter-pupil)
    "aflw": Normalizer("box", -1, -1),  # the face box size of each annotation
}
FAILURE_THR = 0.1


def parse_normalizer(spec: str, keypoint_set: KeypointSet) -> Normalizer:
    """``auto`` (the data set's official normaliser, by keypoint-set name), ``box``, or ``keypoints:A,B``
    (0-based landmark indices) -> :class:`Normalizer`; errors say what is accepted."""
    k = keypoint_set.num_keypoints
    if spec == "auto":
        if keypoint_set.name not in NORMALIZERS:
            raise ValueError(
                f"test.nme_norm=auto needs a shipped face keypoint set ({', '.join(NORMALIZERS)}), not "
                f"{keypoint_set.name!r}; set test.nme_norm to 'box' or 'keypoints:A,B' (two 0-based indices)"
            )
        return NORMALIZERS[keypoint_set.name]
    if spec == "box":
        return Normalizer("box")
    if spec.startswith("keypoints:"):
        try:
            a, b = (int(v) for v in spec[len("keypoints:") :].split(","))
        except ValueError as err:
            raise ValueError(f"test.nme_norm {spec!r}: expected 'keypoints:A,B' with two integers") from err
        if not (0 <= a < k and 0 <= b < k) or a == b:
            raise ValueError(f"test.nme_norm {spec!r}: need two different indices in 0..{k - 1}")
        return Normalizer("keypoints", a, b)
    raise ValueError(f"test.nme_norm must be 'auto', 'box' or 'keypoints:A,B', got {spec!r}")


def normalizing_sizes(gt: np.ndarray, norm: Normalizer, box_sizes: np.ndarray | None = None) -> np.ndarray:
    """(N,) normalising distances of ground truth ``gt`` (N, K, 2): a landmark distance, or ``box_sizes``."""
    if norm.kind == "box":
        if box_sizes is None or np.any(~np.isfinite(box_sizes)) or np.any(np.asarray(box_sizes) <= 0):
            raise ValueError("NME by box size needs a positive box size for every face (AFLW: 'box_size')")
        return np.asarray(box_sizes, dtype=np.float64)
    return np.linalg.norm(gt[:, norm.a] - gt[:, norm.b], axis=-1)


def nme_per_face(pred: np.ndarray, gt: np.ndarray, sizes: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """(N,) NME of each face: mean distance over its labelled landmarks (all when ``visible`` is None)
    divided by its normalising size (as a fraction; x100 is the percent that tables print)."""
    dist = np.linalg.norm(np.asarray(pred, dtype=np.float64) - np.asarray(gt, dtype=np.float64), axis=-1)
    mask = np.ones_like(dist) if visible is None else (np.asarray(visible) > 0).astype(np.float64)
    counts = mask.sum(axis=1)
    if np.any(counts == 0):
        raise ValueError("a face without labelled landmarks cannot be scored by NME")
    if np.any(np.asarray(sizes) <= 0):
        raise ValueError("a face's normalising distance is 0 (its two normalising landmarks coincide)")
    return (dist * mask).sum(axis=1) / counts / np.asarray(sizes, dtype=np.float64)


def failure_rate(nmes: np.ndarray, thr: float = FAILURE_THR) -> float:
    """Fraction of faces whose NME is above ``thr`` (the official FR@0.1 and FR@0.08)."""
    return float(np.mean(np.asarray(nmes) > thr))


def auc(nmes: np.ndarray, thr: float = FAILURE_THR) -> float:
    """Area under the cumulative error distribution on [0, ``thr``], divided by ``thr`` (1 = every face
    error-free, 0 = every face above ``thr``): the exact integral of the CED step function."""
    e = np.sort(np.asarray(nmes, dtype=np.float64))
    n = e.size
    if n == 0:
        return 0.0
    # CED(x) = #{e_i <= x} / n is a step function: integrate it piece by piece up to thr
    inside = e[e < thr]
    area = sum((i + 1) / n * ((inside[i + 1] if i + 1 < inside.size else thr) - inside[i]) for i in range(inside.size))
    return float(area / thr)


def nme_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    norm: Normalizer,
    box_sizes: np.ndarray | None = None,
) -> dict[str, float]:
    """NME (percent), FR@0.08 / FR@0.1 (percent of faces) and AUC@0.1 of a set of faces."""
    nmes = nme_per_face(pred, gt, normalizing_sizes(gt, norm, box_sizes), visible)
    return {
        "NME": 100.0 * float(nmes.mean()),
        "FR@0.08": 100.0 * failure_rate(nmes, 0.08),
        "FR@0.1": 100.0 * failure_rate(nmes, FAILURE_THR),
        "AUC@0.1": auc(nmes, FAILURE_THR),
    }


# ----------------------------------------------------------------------------------------------- data


def read_face_csv(path: Path, num_keypoints: int) -> list[dict[str, Any]]:
    """Rows of an official landmark CSV: ``image, scale, [box_size,] center_w, center_h, x, y, ...``.

    The header's column count tells whether ``box_size`` is there (AFLW); a line of another count, or a
    value that is not a number, is a ``ValueError`` naming the file and the line."""
    if not path.is_file():
        raise FileNotFoundError(f"landmark annotation file not found: {path}")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        raise ValueError(f"{path}: no faces (an official landmark CSV has a header line, then one face per line)")
    plain, with_box = 4 + 2 * num_keypoints, 5 + 2 * num_keypoints
    columns = len(rows[0])  # the header line decides the layout; every face line must have as many columns
    if columns not in (plain, with_box):
        raise ValueError(
            f"{path}: line 1 (the header) has {columns} columns; a face of {num_keypoints} landmarks needs {plain} "
            f"(image, scale, center_w, center_h, x, y, ...) or {with_box} (AFLW, with box_size after scale)"
        )
    box = columns == with_box
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != columns:
            raise ValueError(f"{path}: line {line} has {len(row)} columns, the header {columns}")
        try:
            values = [float(v) for v in row[1:]]
        except ValueError as err:
            raise ValueError(f"{path}: line {line}: {err}") from err
        out.append(
            {
                "file_name": row[0],
                "scale": values[0],
                "box_size": values[1] if box else None,
                "center": values[2:4] if box else values[1:3],
                "joints": np.asarray(values[4:] if box else values[3:], dtype=np.float64).reshape(-1, 2),
                "line": line,
            }
        )
    return out


class FaceLandmarks(TopDownDataset):
    """One face per item, cropped as the official landmark code does; the ground truth stays in
    :meth:`ground_truth` for NME. ``ann_file`` is a COCO-style ``.json`` (mmpose) or an official ``.csv``."""

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        keypoint_set: KeypointSet | str,
        input_size: tuple[int, int] = (256, 256),
        train: bool = False,
        heatmap_size=None,
        sigma: float = 1.5,
        augment: PoseAugment | None = None,
        use_joint_weights: bool = False,
        padding: float = FACE_PADDING,
        check_files: bool = True,
    ) -> None:
        super().__init__(keypoint_set, input_size, heatmap_size, sigma, train, augment, use_joint_weights)
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        self.padding = padding
        k = self.keypoint_set.num_keypoints
        if self.ann_file.suffix.lower() == ".csv":
            self._from_csv(k)
        else:
            self._from_coco(k)
        if not self.records:
            raise ValueError(f"{self.ann_file}: no faces to use")
        if check_files:
            missing = sorted({str(r["file"]) for r in self.records if not Path(r["file"]).is_file()})
            if missing:
                more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
                raise FileNotFoundError(
                    f"{len(missing)} images named in {self.ann_file} are missing: {', '.join(missing[:3])}{more}"
                )
        self._report_skips(str(self.ann_file))

    def _center_scale(self, center: Any, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """The official square face box (side ``scale`` x 200 px) as a crop of this input's aspect ratio."""
        side = float(scale) * PIXEL_STD
        c = np.asarray(center, dtype=np.float64)
        return box_to_center_scale([c[0] - side / 2, c[1] - side / 2, side, side], self.aspect_ratio, self.padding)

    def _add(self, file: Path, image_id: int, ann_id: int, center, scale, joints, visible, box_size) -> None:
        self.records.append(
            {
                "file": file,
                "image_id": image_id,
                "ann_id": ann_id,
                "center": center,
                "scale": scale,
                "joints": joints,
                "visible": visible,
                "score": 1.0,
                "area": float(scale[0] * scale[1] * PIXEL_STD**2),
                "box_size": box_size,
            }
        )

    def _from_coco(self, k: int) -> None:
        coco = read_coco_keypoints(self.ann_file, k, "landmark annotation file", self.keypoint_set.name)
        for ann in coco.data["annotations"]:
            kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(k, 3)
            if not (kp[:, 2] > 0).any():
                self.skipped["without labelled landmarks"] += 1
                continue
            if "center" in ann and "scale" in ann:
                center, scale = self._center_scale(ann["center"], float(ann["scale"]))
            else:
                x, y, w, h = (float(v) for v in ann["bbox"])
                if w <= 0 or h <= 0:
                    self.skipped["zero-area box"] += 1
                    continue
                center, scale = box_to_center_scale([x, y, w, h], self.aspect_ratio, self.padding)
            box_size = ann.get("box_size")
            self._add(
                self.image_dir / coco.images[ann["image_id"]]["file_name"],
                int(ann["image_id"]),
                int(ann["id"]),
                center,
                scale,
                kp[:, :2].copy(),
                (kp[:, 2] > 0).astype(np.float64),
                None if box_size is None else float(box_size),
            )

    def _from_csv(self, k: int) -> None:
        ids: dict[str, int] = {}
        for row in read_face_csv(self.ann_file, k):
            if row["scale"] <= 0:
                self.skipped["zero-area box"] += 1
                continue
            center, scale = self._center_scale(row["center"], row["scale"])
            image_id = ids.setdefault(row["file_name"], len(ids))
            self._add(
                self.image_dir / row["file_name"],
                image_id,
                row["line"],
                center,
                scale,
                row["joints"],
                np.ones(k),
                row["box_size"],
            )

    def ground_truth(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Landmarks (N, K, 2), visibility (N, K) and box sizes (N,) or None when a face lacks one."""
        joints = np.stack([r["joints"] for r in self.records])
        vis = np.stack([r["visible"] for r in self.records])
        sizes = [r["box_size"] for r in self.records]
        return joints, vis, None if any(s is None for s in sizes) else np.asarray(sizes, dtype=np.float64)
