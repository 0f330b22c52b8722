"""Evaluation under DDP: two gloo processes, each scoring its shard, report the single-process numbers."""

from __future__ import annotations

import os
import shutil
import socket

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
from torch import nn

from hrnet.segmentation.config import SegTestConfig
from hrnet.segmentation.datasets import CityscapesDataset
from hrnet.segmentation.train import evaluate_dataset
from hrnet.segmentation.transforms import EvalTransform


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(3, 19, 1).eval()  # a per-pixel classifier: deterministic, fast


def _dataset(root) -> CityscapesDataset:
    ds = CityscapesDataset(root, "val")
    ds.transform = EvalTransform()
    return ds


def _worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        scores = evaluate_dataset(_model(), _dataset(root), SegTestConfig(), "cpu", rank, world)
        torch.save(scores, f"{out}/rank{rank}.pt")
    finally:
        tdist.destroy_process_group()


def test_confusion_matrix_is_all_reduced(tmp_path, city_root):
    # three frames (the sample, and two copies with altered colours, so predictions differ) for 2 + 1 images
    root = tmp_path / "city"
    shutil.copytree(city_root / "leftImg8bit", root / "leftImg8bit")
    shutil.copytree(city_root / "gtFine", root / "gtFine")
    from PIL import Image, ImageOps

    d_img, d_lab = root / "leftImg8bit" / "val" / "frankfurt", root / "gtFine" / "val" / "frankfurt"
    src = "frankfurt_000000_000294"
    for i, op in ((1, ImageOps.invert), (2, lambda im: ImageOps.solarize(im, 100))):
        op(Image.open(d_img / f"{src}_leftImg8bit.png").convert("RGB")).save(
            d_img / f"frankfurt_00000{i}_000000_leftImg8bit.png"
        )
        shutil.copy(d_lab / f"{src}_gtFine_labelIds.png", d_lab / f"frankfurt_00000{i}_000000_gtFine_labelIds.png")
    single = evaluate_dataset(_model(), _dataset(root), SegTestConfig(), "cpu")
    shard = evaluate_dataset(_model(), _dataset(root), SegTestConfig(), "cpu", rank=1, world_size=2)
    assert shard["mIoU"] != pytest.approx(single["mIoU"], abs=1e-6)  # so the reduction matters
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        mp.spawn(_worker, args=(2, port, str(root), str(tmp_path)), nprocs=2, join=True)
    except Exception as err:  # pragma: no cover - sandboxes without local sockets
        pytest.skip(f"cannot start a 2-process gloo group here: {err}")
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["mIoU"] == pytest.approx(single["mIoU"], abs=1e-12)
        assert got["pixel_acc"] == pytest.approx(single["pixel_acc"], abs=1e-12)
        assert got["per_class"] == pytest.approx(single["per_class"])
