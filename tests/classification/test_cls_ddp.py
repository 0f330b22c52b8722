"""Evaluation sharded over two gloo processes gives the single-process top-1 / top-5 and skip count."""

from __future__ import annotations

import os
import shutil
import socket

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

from hrnet.classification.datasets import build_dataset
from hrnet.classification.evaluation import evaluate_classifier
from hrnet.classification.transforms import eval_transform


def _model() -> torch.nn.Module:
    torch.manual_seed(0)  # the same weights in every process
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 21),
    )


def _worker(rank: int, world: int, port: int, root: str, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        ds = build_dataset(root, eval_transform(32, 37))
        queue.put((rank, evaluate_classifier(_model(), ds, batch_size=4, rank=rank, world_size=world)))
    finally:
        tdist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_evaluation_equals_one_process(sample_folder, tmp_path):
    if not tdist.is_available():
        pytest.skip("torch.distributed is not available")
    root = tmp_path / "data"
    shutil.copytree(sample_folder, root)
    (root / "n01440764" / "broken.jpg").write_bytes(b"not a jpeg")  # 22 files, 21 readable
    single = evaluate_classifier(_model(), build_dataset(root, eval_transform(32, 37)), batch_size=5)
    assert single["count"] == 21 and single["skipped"] == 1

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, str(root), queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert results[0] == results[1] == single  # counts summed exactly: identical on every rank
