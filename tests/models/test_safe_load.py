"""Torch files load without unpickling code: mmpose 1.x ``meta`` with NumPy arrays (written by NumPy 1.x
or 2.x), legacy non-zip files and ``.pth.tar`` containers load; a pickle that carries code is refused."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import hrnet
from hrnet.models.sources import looks_like_weights


def _mmpose1_checkpoint() -> tuple[dict, dict[str, torch.Tensor]]:
    """A checkpoint shaped as mmpose 1.x publishes them: ``meta`` (mmengine keys, ``dataset_meta`` from
    ``parse_pose_metainfo``: NumPy arrays and scalars) and ``state_dict`` with data_preprocessor,
    backbone and head keys."""
    torch.manual_seed(0)
    conv, head = torch.randn(64, 3, 3, 3), torch.randn(17, 32, 1, 1)
    state = {
        "data_preprocessor.mean": torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1),
        "backbone.conv1.weight": conv,
        "head.final_layer.weight": head,
        "head.final_layer.bias": torch.zeros(17),
    }
    dataset_meta = {
        "dataset_name": "coco",
        "num_keypoints": 17,
        "flip_indices": [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15],
        "sigmas": np.array([0.026, 0.025, 0.025] + [0.035] * 14, dtype=np.float32),
        "dataset_keypoint_weights": np.ones(17, dtype=np.float32),
        "keypoint_colors": np.array([[51, 153, 255]] * 17, dtype=np.uint8),
        "skeleton_link_colors": np.array([[0, 255, 0]] * 19, dtype=np.uint8),
        "scale": np.float64(1.25),
        "ids": np.arange(17, dtype=np.int64),
        "mask": np.ones(17, dtype=bool),
    }
    meta = {"epoch": 210, "iter": 100, "mmengine_version": "0.7.0", "dataset_meta": dataset_meta}
    expected = {"conv1.weight": conv, "final_layer.weight": head, "final_layer.bias": torch.zeros(17)}
    return {"meta": meta, "state_dict": state}, expected


def _assert_state(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


def test_mmpose1_checkpoint_with_numpy_meta_loads(tmp_path: Path):
    ckpt, expected = _mmpose1_checkpoint()
    path = tmp_path / "td-hm_hrnet-w32_8xb64-210e_coco-256x192-81c58e40_20220909.pth"
    torch.save(ckpt, path)
    with pytest.raises(Exception, match="numpy"):  # what torch alone does: the reason for the allowlist
        torch.load(path, weights_only=True)
    _assert_state(hrnet.read_state_dict(path), expected)


def test_numpy1_written_meta_loads_under_numpy2_names(tmp_path: Path):
    """Published mmpose 1.x files were written by NumPy 1.x: their pickles name
    ``numpy.core.multiarray``, which NumPy 2 moved to ``numpy._core``. The legacy format keeps the
    protocol-2 pickle uncompressed, so the module name can be rewritten in place as NumPy 1 wrote it."""
    ckpt, expected = _mmpose1_checkpoint()
    path = tmp_path / "np1.pth"
    torch.save(ckpt, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    for core in (b"numpy._core.multiarray", b"numpy.core.multiarray"):
        data = data.replace(b"c" + core + b"\n", b"cnumpy.core.multiarray\n")
    assert data.count(b"cnumpy.core.multiarray\n") >= 2  # _reconstruct and scalar
    path.write_bytes(data)
    _assert_state(hrnet.read_state_dict(path), expected)


def test_legacy_and_pth_tar_files_load(tmp_path: Path):
    ckpt, expected = _mmpose1_checkpoint()
    legacy = tmp_path / "legacy.pth"
    torch.save(ckpt, legacy, _use_new_zipfile_serialization=False)
    assert not legacy.read_bytes().startswith(b"PK")  # really the pre-zip format
    _assert_state(hrnet.read_state_dict(legacy), expected)
    # the official repositories' "model_best.pth.tar": a torch file under a .tar suffix
    tar = tmp_path / "model_best.pth.tar"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in expected.items()}}, tar)
    _assert_state(hrnet.read_state_dict(tar), expected)
    assert looks_like_weights("model_best.pth.tar") and looks_like_weights("checkpoint.tar")
    assert not looks_like_weights("pose_hrnet_w32")


class _Payload:
    """Unpickling this runs ``os.system``: what a malicious checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Custom:
    """A plain user class: code the loader must not import either."""

    def __init__(self) -> None:
        self.value = 1


@pytest.mark.parametrize("kind", ["os.system", "custom class", "object array", "legacy os.system"])
def test_code_carrying_pickles_are_refused(tmp_path: Path, kind: str):
    marker = tmp_path / "ran"
    payload = {
        "os.system": _Payload(marker),
        "custom class": _Custom(),
        "object array": np.array([_Payload(marker)], dtype=object),
        "legacy os.system": _Payload(marker),
    }[kind]
    path = tmp_path / "evil.pth"
    ckpt = {"state_dict": {"conv1.weight": torch.ones(1)}, "meta": {"x": payload}}
    torch.save(ckpt, path, _use_new_zipfile_serialization=not kind.startswith("legacy"))
    with pytest.raises(ValueError) as err:
        hrnet.read_state_dict(path)
    assert str(err.value) == (
        f"{path}: not a readable weights file (UnpicklingError: it is not a weights file, "
        "or it holds pickled code, which is never loaded)"
    )
    assert not marker.exists()
    # the NumPy allowance ends with the load: torch alone still refuses NumPy arrays afterwards
    plain = tmp_path / "plain.pth"
    torch.save({"x": np.ones(2, dtype=np.float32)}, plain)
    with pytest.raises(Exception, match="numpy"):
        torch.load(plain, weights_only=True)
