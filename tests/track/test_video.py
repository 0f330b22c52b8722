"""Video as an input: webcams and URLs, streaming with flat memory, tracking through the facades and the
command line, and a run stopped by SIGINT that keeps a playable video and a parseable JSON."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
import tracemalloc
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from hrnet.cli import main
from hrnet.inputs import as_frames, expand_inputs, read_frames
from hrnet.pose import PoseEstimator

MODEL = "pose_hrnet_w18_small_v1"  # random weights: the tests check the plumbing, never the poses
FAST = dict(detector=None, input_size=(32, 32), flip_test=False, runtime="eager", device="cpu")
CLI_FAST = ["--model", MODEL, "--input-size", "32", "32", "--no-flip", "--runtime", "eager", "--device", "cpu"]


def make_video(path: Path, frames: int, size: tuple[int, int] = (64, 96), fps: float = 10.0) -> Path:
    """A clip of a bright block sliding over a dark background, written with OpenCV."""
    h, w = size
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for i in range(frames):
        img = np.full((h, w, 3), 30, np.uint8)
        x = (2 * i) % (w - 20)
        img[10:50, x : x + 20] = (40, 200, 230)
        out.write(img)
    out.release()
    return path


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


# ------------------------------------------------------------------------------------------------------
# inputs: webcams and URLs


def test_webcam_indices_and_urls_are_live_inputs(tmp_path, monkeypatch):
    cam, url = expand_inputs(["0", "rtsp://cam.example:554/live/1"])
    assert (cam.stream, str(cam.rel), cam.is_video, cam.is_stream) == ("0", "webcam0", True, True)
    assert (url.stream, str(url.rel)) == ("rtsp://cam.example:554/live/1", "cam_example_554_live_1")
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "a.png").write_bytes(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    monkeypatch.chdir(tmp_path)
    assert not expand_inputs(["0"])[0].is_stream  # a folder named 0 is a folder


def test_a_file_url_streams_every_frame_and_a_dead_url_is_named(tmp_path):
    video = make_video(tmp_path / "v.mp4", 7)
    frames = list(read_frames(expand_inputs([f"file://{video}"])))
    assert len(frames) == 7 and all(f.error is None and f.fps == 10.0 for f in frames)
    assert [f.index for f in frames] == list(range(7)) and frames[-1].time >= frames[0].time
    (dead,) = read_frames(expand_inputs(["rtsp://127.0.0.1:1/x"]))  # a closed local port: fails at once
    assert dead.error == "rtsp://127.0.0.1:1/x: cannot open the stream"


def test_a_webcam_index_opens_that_camera(monkeypatch):
    """No camera here: OpenCV's capture is replaced by one that hands out three frames for index 0."""
    opened = []

    class FakeCapture:
        def __init__(self, source):  # noqa: ANN001
            opened.append(source)
            self.left = 3

        def isOpened(self):  # noqa: N802 - OpenCV's name
            return True

        def get(self, prop):  # noqa: ANN001
            return 30.0

        def read(self):
            self.left -= 1
            return (self.left >= 0), np.zeros((4, 6, 3), np.uint8)

        def release(self):
            pass

    monkeypatch.setattr("hrnet.inputs.cv2", types.SimpleNamespace(VideoCapture=FakeCapture, CAP_PROP_FPS=5))
    frames = list(as_frames(0))
    assert opened == [0] and len(frames) == 3 and frames[0].name == "webcam0#0" and frames[0].fps == 30.0


# ------------------------------------------------------------------------------------------------------
# streaming


def test_predict_stream_keeps_memory_flat_over_a_long_video(tmp_path):
    """100 frames through ``predict(stream=True)``: the Python heap (tracemalloc) at frame 25 and at frame
    100 is the same within 0.3 MB, while keeping the results (what the list form does) grows it by more
    than 1 MB (75 frames of 18 kB), so the measurement would see a leak."""
    video = make_video(tmp_path / "long.mp4", 100)
    est = PoseEstimator(MODEL, **FAST)
    stream = est.predict(video, stream=True, batch_size=10)
    assert isinstance(stream, types.GeneratorType)

    def measure(keep: bool) -> tuple[int, int]:
        kept, marks = [], {}
        tracemalloc.start()
        try:
            for n, res in enumerate(est.predict(video, stream=True, batch_size=10), 1):
                if keep:
                    kept.append(res)
                if n in (25, 100):
                    marks[n] = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        return marks[25], marks[100]

    early, late = measure(keep=False)
    assert late - early < 300_000, (early, late)
    early, late = measure(keep=True)
    assert late - early > 1_000_000, (early, late)


def test_sigint_keeps_a_playable_video_and_parseable_json(tmp_path):
    video = make_video(tmp_path / "long.mp4", 400)
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "hrnet", "pose", "track", str(video), "--detector", "none", "--out", str(out)]
    # SIGINT restored to its default in the child: a shell that starts the suite in the background makes its
    # children ignore SIGINT, and Python then never turns it into KeyboardInterrupt
    restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen(
        cmd + CLI_FAST + ["--batch-size", "1"], stderr=subprocess.PIPE, text=True, preexec_fn=restore
    )
    lines = out / "run-001" / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if lines.is_file() and len(lines.read_text().splitlines()) >= 5:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    report = json.loads((out / "run-001" / "results.json").read_text())
    done = report["done"]
    assert report["stopped_by"] == "interrupted" and 5 <= done < 400
    assert report["last"] == f"long.mp4#{done - 1}" and f"pose track: stopped after long.mp4#{done - 1}" in err
    assert [r["frame"] for r in report["results"]] == list(range(done))
    assert count_frames(out / "run-001" / "long.mp4") == done  # the video was closed: it plays
    assert len((out / "run-001" / "long.mot.txt").read_text().splitlines()) == done


# ------------------------------------------------------------------------------------------------------
# tracking through the pose facade and command


def _walkers(n_frames: int):
    """A detector callable: two people walking apart at 2 px a frame (boxes by frame count)."""
    calls = []

    def detect(rgb: np.ndarray) -> np.ndarray:
        f = len(calls)
        calls.append(f)
        return np.array([[10 + 2 * f, 5, 40 + 2 * f, 60, 0.9], [200 - 2 * f, 5, 230 - 2 * f, 60, 0.8]])

    return detect, calls


def test_pose_track_keeps_ids_smooths_video_only_and_skips_the_detector(tmp_path):
    video = make_video(tmp_path / "walk.mp4", 9, size=(64, 240))
    detect, calls = _walkers(9)
    est = PoseEstimator(MODEL, **FAST)
    tracked = est.track(video, detector=detect, det_every=3)
    assert len(calls) == 3  # frames 0, 3 and 6
    assert [r.boxes_source for r in tracked[:4]] == ["detector", "tracked", "tracked", "detector"]
    assert {tuple(r.track_ids) for r in tracked} == {(1, 2)}
    assert [r.frame_index for r in tracked] == list(range(9)) and tracked[3].time == pytest.approx(0.3)
    record = tracked[4].to_json()
    assert [p["track_id"] for p in record["people"]] == [1, 2] and record["time"] == pytest.approx(0.4)

    # the same frame-by-frame run without and with smoothing (predict batches frames, which moves the
    # network's outputs by float rounding)
    plain = est.track(video, detector=_walkers(9)[0], smooth="none")
    smooth = est.track(video, detector=_walkers(9)[0])  # video: one-euro by default
    for p, s in zip(plain, smooth):
        np.testing.assert_array_equal(p.scores, s.scores)  # scores are never smoothed
    assert not np.allclose(plain[-1].keypoints, smooth[-1].keypoints)
    assert np.abs(plain[-1].keypoints - smooth[-1].keypoints).max() < 30

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(read_frames(expand_inputs([video]))):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f.image[:, :, ::-1])
    images = est.track(folder, detector=_walkers(9)[0])  # images: no smoothing by default
    plain = est.predict(folder, detector=_walkers(9)[0])
    for p, s in zip(plain, images):
        np.testing.assert_allclose(p.keypoints, s.keypoints)


def test_pose_track_command_writes_csv_mot_and_scores_against_ground_truth(tmp_path, capsys):
    video = make_video(tmp_path / "clip.mp4", 6)
    gt = tmp_path / "gt.txt"  # the whole frame is the one person (what --detector none tracks), as ID 7
    gt.write_text("".join(f"{f},7,0,0,95,63,1,1,1\n" for f in range(1, 7)))
    out = tmp_path / "o"
    args = ["pose", "track", str(video), "--detector", "none", "--csv", "--eval", str(gt), "--out", str(out)]
    assert main(args + CLI_FAST) == 0
    err = capsys.readouterr().err
    run = out / "run-001"
    report = json.loads((run / "results.json").read_text())
    metrics = report["tracking_metrics"]
    assert (metrics["mota"], metrics["idf1"], metrics["num_switches"]) == (1.0, 1.0, 0)
    assert "tracking: ground_truth" in err and "mota 1.0000" in err
    assert report["track_files"] == ["clip.mot.txt", "clip.tracks.csv"] and report["tracking"]["smooth"] == "auto"
    assert [r["people"][0]["track_id"] for r in report["results"]] == [1] * 6
    with open(run / "clip.tracks.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:5] == ["frame", "time", "id", "box_score", "box_x1"]
    assert rows[0][8:11] == ["nose_x", "nose_y", "nose_score"] and len(rows[0]) == 8 + 3 * 17
    assert [r[:3] for r in rows[1:3]] == [["0", "0.0", "1"], ["1", "0.1", "1"]] and len(rows) == 7
    assert count_frames(run / "clip.mp4") == 6


def test_track_command_errors_are_one_line_before_any_work(tmp_path, capsys):
    video = make_video(tmp_path / "clip.mp4", 3)
    bad = tmp_path / "gt.txt"
    bad.write_text("1,1,0,0\n")
    out = tmp_path / "o"
    code = main(["pose", "track", str(video), "--detector", "none", "--eval", str(bad), "--out", str(out)] + CLI_FAST)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines[-1].startswith(f"hrnet: error: {bad}:1: a MOT line needs at least") and not out.exists()
    code = main(["pose", "track", str(video), "--detector", "none", "--smooth", "ema", "--ema-alpha", "2"] + CLI_FAST)
    assert code == 2 and capsys.readouterr().err.strip().splitlines()[-1] == (
        "hrnet: error: ema alpha must be in (0, 1], got 2.0"
    )
