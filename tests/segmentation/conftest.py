"""Shared fixtures of the segmentation tests: the real data samples and a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CITY = SHARED_DATA / "cityscapes_sample"
CITY_STEM = "frankfurt_000000_000294"
CITY_IMAGE = CITY / "leftImg8bit" / "val" / "frankfurt" / f"{CITY_STEM}_leftImg8bit.png"
CITY_LABEL_IDS = CITY / "gtFine" / "val" / "frankfurt" / f"{CITY_STEM}_gtFine_labelIds.png"
CITY_TRAIN_IDS = CITY / "gtFine" / "val" / "frankfurt" / f"{CITY_STEM}_gtFine_labelTrainIds.png"
LIP = SHARED_DATA / "lip_sample"


@pytest.fixture(scope="session")
def city_root() -> Path:
    if not CITY_IMAGE.is_file():
        pytest.skip(f"real Cityscapes sample not found at {CITY}")
    return CITY


@pytest.fixture(scope="session")
def city_files(city_root) -> dict[str, Path]:
    """The image, raw-id label and train-id label of the one labelled Cityscapes frame."""
    return {"image": CITY_IMAGE, "label_ids": CITY_LABEL_IDS, "train_ids": CITY_TRAIN_IDS}


@pytest.fixture(scope="session")
def lip_root() -> Path:
    if not (LIP / "train_segmentations").is_dir():
        pytest.skip(f"real LIP sample not found at {LIP}")
    return LIP


@pytest.fixture(autouse=True)
def _few_threads():
    """The test machine is shared: keep torch to two threads."""
    old = torch.get_num_threads()
    torch.set_num_threads(min(old, 2))
    yield
    torch.set_num_threads(old)


@pytest.fixture
def tiny_model():
    """Factory of the smallest official segmentation network (one block per branch), in eval mode."""
    import hrnet

    def make(num_classes: int = 19, seed: int = 0) -> torch.nn.Module:
        torch.manual_seed(seed)
        model = hrnet.create_model("seg_hrnet_w18_small_v1", num_classes=num_classes, stage_blocks=(1, 1, 1))
        return model.eval()

    return make
