"""Sliding-window, multi-scale and flip inference agree with whole-image inference where they must."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hrnet.labels import flip_permutation
from hrnet.segmentation.datasets import LIPDataset
from hrnet.segmentation.inference import predict_probs, slide_logits, whole_logits, window_starts
from hrnet.segmentation.transforms import hflip_label, to_tensor


class PixelModel(nn.Module):
    """A per-pixel linear classifier (1x1 conv, full resolution): its output at a pixel depends only on
    that pixel, so every window, padding or mirror of the image predicts the same value there."""

    def __init__(self, num_classes: int = 5):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, num_classes, 1)

    def forward(self, x):
        return self.conv(x)


def test_window_starts_hand_values():
    assert window_starts(100, 40, 27) == [0, 27, 54, 60]
    assert window_starts(40, 40, 27) == [0]
    assert window_starts(30, 40, 27) == [0]
    assert window_starts(81, 40, 20) == [0, 20, 40, 41]


def test_slide_with_one_window_equals_whole(city_files, tiny_model):
    from hrnet.io import read_image

    model = tiny_model()
    x = to_tensor(read_image(city_files["image"])).unsqueeze(0)  # 128x256
    whole = whole_logits(model, x)
    assert whole.shape == (1, 19, 128, 256)
    one = slide_logits(model, x, crop_size=(128, 256))
    torch.testing.assert_close(one, whole, rtol=0, atol=0)
    probs = predict_probs(model, x, mode="slide", crop_size=(128, 256))
    torch.testing.assert_close(probs, whole.softmax(1), rtol=1e-6, atol=1e-6)
    # scale 1.0 and no flip is the whole-image softmax; a second scale changes the answer
    torch.testing.assert_close(predict_probs(model, x, scales=(1.0,)), whole.softmax(1), rtol=1e-6, atol=1e-6)
    # two scales: the mean of the softmax of each scale's logits, upsampled to the image size
    two = predict_probs(model, x, scales=(0.5, 1.0))
    half = whole_logits(model, torch.nn.functional.interpolate(x, size=(64, 128), mode="bilinear"))
    half = torch.nn.functional.interpolate(half, size=(128, 256), mode="bilinear")
    torch.testing.assert_close(two, (half.softmax(1) + whole.softmax(1)) / 2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(two.sum(1), torch.ones(1, 128, 256), rtol=1e-5, atol=1e-5)


def test_overlapping_windows_average_exactly():
    """With a per-pixel model every window sees the same pixel values, so the average must equal whole."""
    model = PixelModel()
    x = torch.randn(2, 3, 37, 53)
    whole = whole_logits(model, x)
    for crop, stride in [((16, 16), None), ((20, 30), (7, 11)), ((64, 64), None)]:
        torch.testing.assert_close(slide_logits(model, x, crop, stride), whole, rtol=1e-5, atol=1e-5)


def test_flip_averaging_and_channel_swap():
    model = PixelModel(num_classes=6)
    x = torch.randn(1, 3, 12, 20)
    p = whole_logits(model, x).softmax(1)
    # a per-pixel model is mirror-equivariant: flip averaging changes nothing without a swap
    torch.testing.assert_close(predict_probs(model, x, flip=True), p, rtol=1e-5, atol=1e-6)
    # with left/right pairs the mirrored branch's channels are exchanged before averaging
    perm = flip_permutation(6, ((1, 2), (4, 5)))
    got = predict_probs(model, x, flip=True, flip_perm=perm)
    torch.testing.assert_close(got, (p + p[:, perm]) / 2, rtol=1e-5, atol=1e-6)


def test_lip_flip_swap_on_the_real_label(lip_root):
    ds = LIPDataset(lip_root, "train")
    _, label = ds.load(0)
    assert set(np.unique(label)) == {0, 2, 5, 13, 14, 15}
    flipped = hflip_label(label, ds.flip_pairs)
    w = label.shape[1]
    # mirrored position, left arm <-> right arm, everything else unchanged
    ys, xs = np.nonzero(label == 14)
    assert (flipped[ys, w - 1 - xs] == 15).all()
    ys, xs = np.nonzero(label == 15)
    assert (flipped[ys, w - 1 - xs] == 14).all()
    keep = ~np.isin(label, [14, 15])
    ys, xs = np.nonzero(keep)
    np.testing.assert_array_equal(flipped[ys, w - 1 - xs], label[ys, xs])
    assert (flipped == 14).sum() == (label == 15).sum() and (flipped == 15).sum() == (label == 14).sum()
    np.testing.assert_array_equal(hflip_label(flipped, ds.flip_pairs), label)  # an involution


def test_lip_pipeline_flips_image_and_label_together(lip_root):
    """Through the training transform: when the image comes out mirrored, so does the swapped label."""
    from hrnet.segmentation.transforms import TrainTransform

    ds = LIPDataset(lip_root, "train")
    image, label = ds.load(0)
    h, w = label.shape
    ds.transform = TrainTransform(crop_size=(h, w), scale_range=(1.0, 1.0), flip=True, flip_pairs=ds.flip_pairs)
    plain = to_tensor(image)
    seen = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        sample = ds[0]
        if torch.allclose(sample["image"], plain):
            np.testing.assert_array_equal(sample["label"].numpy(), label)
            seen.add("plain")
        else:
            torch.testing.assert_close(sample["image"], plain.flip(-1))
            np.testing.assert_array_equal(sample["label"].numpy(), hflip_label(label, ds.flip_pairs))
            seen.add("flipped")
    assert seen == {"plain", "flipped"}


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_predict_probs_output_size(mode, tiny_model):
    model = tiny_model(num_classes=4)
    x = torch.randn(1, 3, 50, 70)
    probs = predict_probs(model, x, out_size=(100, 140), mode=mode, crop_size=(32, 48), scales=(0.75, 1.0), flip=True)
    assert probs.shape == (1, 4, 100, 140)
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 100, 140), rtol=1e-5, atol=1e-5)
