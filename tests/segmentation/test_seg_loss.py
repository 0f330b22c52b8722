"""Cross-entropy and OHEM against a direct numpy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hrnet.segmentation.loss import OhemCrossEntropy, SegCrossEntropy


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def test_cross_entropy_with_weights_and_ignore():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6, 5)
    target = torch.randint(0, 4, (2, 6, 5))
    target[0, :2] = 255
    w = [0.5, 1.0, 2.0, 1.5]
    got = SegCrossEntropy(w)(logits, target)
    lp = _log_softmax(logits.numpy().astype(np.float64))
    t = target.numpy()
    num = den = 0.0
    for n, y, x in np.ndindex(t.shape):
        if t[n, y, x] != 255:
            num += -w[t[n, y, x]] * lp[n, t[n, y, x], y, x]
            den += w[t[n, y, x]]
    assert float(got) == pytest.approx(num / den, rel=1e-5)


def test_logits_are_upsampled_to_the_label():
    logits = torch.randn(1, 3, 4, 4)
    target = torch.randint(0, 3, (1, 16, 16))
    up = F.interpolate(logits, size=(16, 16), mode="bilinear", align_corners=False)
    assert float(SegCrossEntropy()(logits, target)) == pytest.approx(float(F.cross_entropy(up, target)), rel=1e-6)


def test_ohem_keeps_hard_pixels_and_at_least_min_kept():
    torch.manual_seed(1)
    logits = torch.randn(1, 3, 10, 10) * 3
    target = torch.randint(0, 3, (1, 10, 10))
    target[0, 0] = 255
    p = torch.softmax(logits, 1).numpy()[0]
    t = target.numpy()[0]
    valid = t != 255
    prob = np.where(valid, np.take_along_axis(p, np.where(valid, t, 0)[None], 0)[0], np.inf)
    loss = -np.log(np.where(valid, prob, 1.0))
    hard = valid & (prob < 0.9)
    # min_kept below the number of hard pixels: exactly the pixels with p < 0.9
    got = OhemCrossEntropy(thresh=0.9, min_kept=5)(logits, target)
    assert float(got) == pytest.approx(loss[hard].mean(), rel=1e-5)
    # min_kept above it: the min_kept pixels with the lowest true-class probability
    k = int(hard.sum()) + 10
    order = np.argsort(prob[valid])
    expected = loss[valid][order[:k]].mean()
    got = OhemCrossEntropy(thresh=0.9, min_kept=k)(logits, target)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # everything ignored: zero loss that still backpropagates
    all_ignored = torch.full_like(target, 255)
    z = OhemCrossEntropy()(logits.requires_grad_(), all_ignored)
    z.backward()
    assert float(z.detach()) == 0.0
