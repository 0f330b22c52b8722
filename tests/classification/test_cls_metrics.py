"""Top-k accuracy against hand counts on fixed logits."""

from __future__ import annotations

import pytest
import torch

from hrnet.classification.metrics import TopKMeter, topk_correct

# 6 samples, 7 classes; the rank of the target (1 = best) is written next to each row, counted by hand
LOGITS = torch.tensor(
    [
        [9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # target 0: rank 1
        [0.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0],  # target 2: rank 2
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],  # target 2: rank 5 (7, 6, 5, 4 above it)
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],  # target 1: rank 6
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -1.0],  # target 6: rank 7
        [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0],  # target 6: rank 1
    ]
)
TARGETS = torch.tensor([0, 2, 2, 1, 6, 6])


def test_topk_matches_hand_count():
    # top-1: rows 0, 5 -> 2; top-5: ranks <= 5 -> rows 0, 1, 2, 5 -> 4; top-2: rows 0, 1, 5 -> 3
    assert topk_correct(LOGITS, TARGETS, (1, 2, 5)) == {1: 2, 2: 3, 5: 4}
    meter = TopKMeter((1, 5))
    meter.update(LOGITS, TARGETS)
    out = meter.compute()
    assert out["top1"] == pytest.approx(2 / 6) and out["top5"] == pytest.approx(4 / 6)
    assert out["count"] == 6 and out["skipped"] == 0


def test_meter_sums_counts_over_uneven_batches():
    meter = TopKMeter((1, 5))
    for lo, hi in ((0, 1), (1, 4), (4, 6)):  # batches of 1, 3, 2: averaging batch accuracies would give 5/9
        meter.update(LOGITS[lo:hi], TARGETS[lo:hi])
    assert meter.compute()["top1"] == pytest.approx(2 / 6)
    assert meter.compute()["top5"] == pytest.approx(4 / 6)


def test_k_larger_than_classes_and_bad_shapes():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    assert topk_correct(logits, torch.tensor([2, 0]), (1, 5)) == {1: 1, 5: 2}  # 3 classes: top-5 = all
    with pytest.raises(ValueError, match="targets"):
        topk_correct(logits, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="logits"):
        topk_correct(torch.zeros(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="zero samples"):
        TopKMeter().compute()
