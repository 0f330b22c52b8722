"""Fixtures of the classification tests: the real ImageNet sample and an ImageFolder view of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

SAMPLE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "imagenet_sample"
# the small HRNet-C of the CPU tests: hrnet_w18_small_v1's topology at width 8, one unit per branch
TINY = dict(width=8, stage_blocks=(1, 1, 1), stem_width=16, stage1_channels=16)


@pytest.fixture(scope="session")
def sample() -> Path:
    """``../shared/data/imagenet_sample`` (21 real ImageNet images, one per class); skip when absent."""
    if not (SAMPLE / "labels.json").is_file():
        pytest.skip(f"ImageNet sample not found at {SAMPLE.resolve()} (see shared/data/README.md)")
    return SAMPLE.resolve()


@pytest.fixture(scope="session")
def labels(sample: Path) -> list[dict]:
    """labels.json of the sample: file_name, wnid, class_index, class_name for each image."""
    return json.loads((sample / "labels.json").read_text())


@pytest.fixture(scope="session")
def sample_folder(sample: Path, labels: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample in the ImageFolder layout: ``root/<wnid>/<image>`` (21 classes, one image each)."""
    root = tmp_path_factory.mktemp("imagenet_folder")
    for entry in labels:
        folder = root / entry["wnid"]
        folder.mkdir()
        shutil.copyfile(sample / entry["file_name"], folder / Path(entry["file_name"]).name)
    return root


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One intra-op thread (session scope, so it is set before the module-scoped training run): the test
    machine's cores are shared, and more threads only spin."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
