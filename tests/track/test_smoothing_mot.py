"""One-Euro and EMA against hand computations; MOT files and metrics against hand-counted cases."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from hrnet.track import EmaFilter, OneEuroFilter, TrackSmoother, evaluate_mot, read_mot
from hrnet.track.session import TrackOptions


def test_one_euro_matches_the_formula_by_hand():
    """min_cutoff 1 Hz, beta 0.5, d_cutoff 1 Hz; samples (t, x) = (0, 0), (0.1, 1), (0.2, 3).

    alpha(fc, dt) = 1 / (1 + 1 / (2 pi fc dt)):
      alpha(1, 0.1)      = 1 / (1 + 1.5915494)                  = 0.3858695
    sample 2: dx = 10, dxhat = 0.3858695 * 10                   = 3.858695
              fc = 1 + 0.5 * 3.858695                           = 2.9293477
              a  = 1 / (1 + 1 / (2 pi * 2.9293477 * 0.1))       = 0.6479572 -> xhat = 0.6479572
    sample 3: dx = (3 - 0.6479572) / 0.1                        = 23.520428
              dxhat = 0.3858695 * 23.520428 + 0.6141305 * 3.858695 = 11.445559
              fc = 1 + 0.5 * 11.445559                          = 6.7227797
              a  = 1 / (1 + 1 / (2 pi * 6.7227797 * 0.1))       = 0.8085775
              xhat = 0.8085775 * 3 + 0.1914225 * 0.6479572      = 2.5497661
    """
    f = OneEuroFilter(min_cutoff=1.0, beta=0.5, d_cutoff=1.0)
    out = [float(f(t, np.array(x))) for t, x in ((0.0, 0.0), (0.1, 1.0), (0.2, 3.0))]
    np.testing.assert_allclose(out, [0.0, 0.6479572, 2.5497661], atol=1e-6)


def test_one_euro_filters_each_coordinate_alone_and_needs_increasing_times():
    f = OneEuroFilter(1.0, 0.5, 1.0)
    f(0.0, np.array([0.0, 5.0]))
    a, b = f(0.1, np.array([1.0, 5.0]))
    assert a == pytest.approx(0.6479572, abs=1e-6) and b == 5.0  # a still coordinate stays put
    with pytest.raises(ValueError, match="sample times must increase"):
        f(0.1, np.array([1.0, 5.0]))


def test_ema_by_hand_and_smoother_state_dropped_with_the_track():
    e = EmaFilter(0.25)
    assert [float(e(t, np.array(x))) for t, x in ((0, 4.0), (1, 8.0), (2, 0.0))] == [4.0, 5.0, 3.75]
    s = TrackSmoother("ema", ema_alpha=0.25)
    s(1, 0.0, np.array([4.0]))
    assert float(s(1, 1.0, np.array([8.0]))[0]) == 5.0
    s.drop([1])
    assert float(s(1, 2.0, np.array([8.0]))[0]) == 8.0  # a track with that ID would start afresh
    assert float(TrackSmoother("none")(1, 0.0, np.array([3.0]))[0]) == 3.0


def test_bad_smoothing_options_are_one_line():
    with pytest.raises(ValueError, match="smooth must be one of auto, one-euro, ema, none"):
        TrackOptions(smooth="kalman")
    with pytest.raises(ValueError, match="unknown tracking option.*keep_alive"):
        TrackOptions.from_kwargs({"keepalive": 3})
    with pytest.raises(ValueError, match="one-euro needs min_cutoff > 0"):
        OneEuroFilter(min_cutoff=0)


def _write(path, rows):  # noqa: ANN001
    path.write_text("".join(",".join(str(v) for v in r) + "\n" for r in rows))
    return path


def test_mot_metrics_by_hand(tmp_path):
    """Two people over four frames. Tracks: person 1 right throughout as track 5; person 2 right as track 6
    in frames 1-2, then as track 7 (one ID switch), and a false box in frame 4; person 2 missed in frame 4.
    GT 8 boxes, FN 1, FP 1, IDSW 1 -> MOTA = 1 - 3 / 8 = 0.625."""
    gt = [[f, 1, 10, 10, 20, 40, 1, 1, 1] for f in range(1, 5)] + [
        [f, 2, 100, 10, 20, 40, 1, 1, 1] for f in range(1, 5)
    ]
    gt.append([2, 3, 300, 300, 20, 20, 0, 1, 1])  # conf 0: an "ignore" box, left out
    hyp = [[f, 5, 11, 10, 20, 40, 0.9, -1, -1, -1] for f in range(1, 5)]
    hyp += [[1, 6, 100, 10, 20, 40, 1, -1, -1, -1], [2, 6, 100, 10, 20, 40, 1, -1, -1, -1]]
    hyp += [[3, 7, 100, 10, 20, 40, 1, -1, -1, -1], [4, 8, 400, 400, 20, 40, 1, -1, -1, -1]]
    m = evaluate_mot(_write(tmp_path / "gt.txt", gt), _write(tmp_path / "t.txt", hyp))
    assert (m["num_misses"], m["num_false_positives"], m["num_switches"], m["num_frames"]) == (1, 1, 1, 4)
    assert m["mota"] == pytest.approx(0.625)
    # IDF1 = 2 IDTP / (GT + predictions): person 1 <-> 5 (4), person 2 <-> 6 (2): 2 * 6 / (8 + 8)
    assert m["idf1"] == pytest.approx(12 / 16)


def test_mot_file_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "gt.txt"
    bad.write_text("1,1,10,10,5,5,1\n2,x,1,1\n")
    with pytest.raises(ValueError, match=r"gt\.txt:2: not a MOT line"):
        read_mot(bad)
    with pytest.raises(FileNotFoundError, match="no such MOT file"):
        read_mot(tmp_path / "none.txt")


def test_missing_motmetrics_is_one_line_with_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "motmetrics", None)
    gt = _write(tmp_path / "gt.txt", [[1, 1, 0, 0, 5, 5, 1]])
    with pytest.raises(ImportError, match=r"^tracking metrics need py-motmetrics: pip install 'hrnet\[track\]'$"):
        evaluate_mot(gt, gt)
