"""COCO evaluation through pycocotools on the real sample: GT-as-predictions, id mapping, empty output, DDP."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
from torch import nn

from hrnet.detection.datasets import CocoDetection
from hrnet.detection.evaluation import STAT_NAMES, evaluate_model, evaluate_results, to_coco_results
from hrnet.engine.distributed import DistInfo

ANN = "instances_sample.json"
IOU = ("bbox", "segm")


class Oracle(nn.Module):
    """Returns the ground truth of whichever sample image it is shown (recognised by its pixel sum)."""

    def __init__(self, dataset: CocoDetection, drop_label: int | None = None) -> None:
        super().__init__()
        self.by_sum = {}
        for i in range(len(dataset)):
            t = dataset.target(i)
            keep = t["labels"] != (-1 if drop_label is None else drop_label)
            self.by_sum[round(float(dataset.load_image(i).sum()), 2)] = {
                "boxes": t["boxes"][keep],
                "labels": t["labels"][keep],
                "scores": torch.ones(int(keep.sum())),
                "masks": t["masks"][keep][:, None].float(),
            }

    def forward(self, images):
        return [self.by_sum[round(float(im.sum()), 2)] for im in images]


@pytest.fixture(scope="module")
def dataset(det_dir):
    return CocoDetection(det_dir / ANN, det_dir / "images")


def test_ground_truth_as_predictions_scores_one(dataset):
    metrics = evaluate_model(Oracle(dataset), dataset, iou_types=("bbox", "segm"), batch_size=3)
    assert [k for k in metrics if k.startswith("bbox_")] == [f"bbox_{n}" for n in STAT_NAMES]
    for iou in ("bbox", "segm"):
        assert metrics[f"{iou}_AP"] == pytest.approx(1.0) and metrics[f"{iou}_AP50"] == pytest.approx(1.0)
        assert metrics[f"{iou}_AR100"] == pytest.approx(1.0)


def test_category_mapping_round_trips(dataset):
    oracle = Oracle(dataset)
    results = []
    for i in range(len(dataset)):
        out = oracle([dataset.load_image(i)])[0]
        image_id = dataset.image_ids[i]
        results += to_coco_results(out, image_id, dataset.category_ids)
    # every result carries the file's category id of its annotation
    gt = {
        (a["image_id"], tuple(round(v, 1) for v in a["bbox"])): a["category_id"]
        for a in dataset.coco.dataset["annotations"]
        if not a["iscrowd"]
    }
    assert all(gt[(r["image_id"], tuple(round(v, 1) for v in r["bbox"]))] == r["category_id"] for r in results)
    assert evaluate_results(dataset.coco, results)["bbox_AP"] == pytest.approx(1.0)
    # labels taken for file ids (no mapping back): COCO's gaps misplace the classes from id 12 on
    wrong = []
    for i in range(len(dataset)):
        wrong += to_coco_results(oracle([dataset.load_image(i)])[0], dataset.image_ids[i], list(range(1, 81)))
    assert evaluate_results(dataset.coco, wrong)["bbox_AP"] < 0.9


def test_no_detection_scores_zero(dataset):
    class Blind(nn.Module):
        def forward(self, images):
            return [
                {
                    "boxes": torch.zeros(0, 4),
                    "labels": torch.zeros(0, dtype=torch.int64),
                    "scores": torch.zeros(0),
                    "masks": torch.zeros(0, 1, *im.shape[-2:]),
                }
                for im in images
            ]

    metrics = evaluate_model(Blind(), dataset, iou_types=("bbox", "segm"))
    assert len(metrics) == 24 and all(v == 0.0 for v in metrics.values())


def test_per_class_ap(dataset):
    person = dataset.cat_to_label[1]
    metrics = evaluate_model(Oracle(dataset, drop_label=person), dataset, iou_types=("bbox",), per_class=True)
    per_class = {k[len("bbox_AP[") : -1]: v for k, v in metrics.items() if k.startswith("bbox_AP[")}
    labels = [lab for i in range(len(dataset)) for lab in dataset.target(i)["labels"].tolist()]
    present = {dataset.class_names[lab - 1] for lab in labels}
    assert set(per_class) == present
    assert per_class["person"] == 0.0 and all(v == pytest.approx(1.0) for n, v in per_class.items() if n != "person")
    assert metrics["bbox_AP"] == pytest.approx(sum(per_class.values()) / len(per_class))


# ---- DDP --------------------------------------------------------------------------------------------------
class NoisyOracle(Oracle):
    """The ground truth shifted a few pixels, every third object missed, scores falling: AP strictly in (0, 1)."""

    def forward(self, images):
        outs = []
        for out in super().forward(images):
            n = len(out["boxes"])
            keep = torch.tensor([k % 3 != 2 for k in range(n)], dtype=torch.bool)
            shift = torch.tensor([[float(k % 7)] * 4 for k in range(n)]).reshape(-1, 4)
            outs.append(
                {
                    "boxes": (out["boxes"] + shift)[keep],
                    "labels": out["labels"][keep],
                    "scores": torch.tensor([1.0 / (1 + k) for k in range(n)])[keep],
                    "masks": out["masks"][keep],
                }
            )
        return outs


def _worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        ds = CocoDetection(f"{root}/{ANN}", f"{root}/images")
        with torch.no_grad():
            metrics = evaluate_model(NoisyOracle(ds), ds, DistInfo(rank=rank, world_size=world), iou_types=IOU)
        torch.save(metrics, f"{out}/rank{rank}.pt")
    finally:
        tdist.destroy_process_group()


def test_ddp_evaluation_equals_one_process(det_dir, dataset, tmp_path):
    single = evaluate_model(NoisyOracle(dataset), dataset, iou_types=IOU)
    half = evaluate_model(NoisyOracle(dataset), dataset, DistInfo(rank=0, world_size=2), iou_types=IOU)
    assert 0.1 < single["bbox_AP"] < 0.9 and 0.1 < single["segm_AP"] < 0.9
    assert half["bbox_AP"] != pytest.approx(single["bbox_AP"])  # rank 0's share alone: the gathering matters
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        mp.spawn(_worker, args=(2, port, str(det_dir), str(tmp_path)), nprocs=2, join=True)
    except Exception as err:  # pragma: no cover - sandboxes without local sockets
        pytest.skip(f"cannot start a 2-process gloo group here: {err}")
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got == pytest.approx(single, abs=1e-12)
