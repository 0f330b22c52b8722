"""The track files of ``hrnet <task> track``, written frame by frame as the run goes.

Per sequence (a video, or the run's images): ``<name>.mot.txt`` (MOT-challenge lines, what ``--eval``
scores and other MOT tools read) and, with ``--csv``, ``<name>.tracks.csv``: one row per tracked object
and frame, ``frame, time, id`` and the task's columns (``<keypoint>_x, <keypoint>_y, <keypoint>_score``
named by the keypoint set for pose), which spreadsheets and biomechanics tools read. Both are streamed and
flushed after every frame, so a run that is stopped keeps every finished frame (they are logs, not
atomic files).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from hrnet.inputs import Frame, InputFile
from hrnet.track.mot import evaluate_mot, mot_lines, motmetrics, read_mot
from hrnet.track.session import sequence_name


class TrackedResult(Protocol):
    """What a task's result offers once tracked (``PoseResult``, ``DetResult``)."""

    track_ids: np.ndarray | None
    frame_index: int | None
    time: float | None

    def tracked_boxes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N,) IDs, (N, 4) xyxy boxes and (N,) scores of the objects."""
        ...

    def track_table(self) -> tuple[list[str], list[list[Any]]]:
        """The task's CSV columns (after frame, time, id) and one row per tracked object (ID first)."""
        ...


def check_eval(eval_gt: str | Path, files: list[InputFile]) -> None:
    """Before a run with ``--eval``: motmetrics is installed, the ground truth reads, and the inputs are one
    sequence (one video or stream, or images only); otherwise one error line, before any work."""
    motmetrics()
    read_mot(eval_gt, ground_truth=True)
    videos = [f for f in files if f.is_video]
    if len(videos) > 1 or (videos and len(files) > len(videos)):
        raise ValueError(
            f"--eval {eval_gt}: scores one sequence (one video, or a folder of frames); got "
            f"{len(videos)} videos and {len(files) - len(videos)} images"
        )


class _Sequence:
    """The open files of one sequence."""

    def __init__(self, run_dir: Path, name: str, with_csv: bool) -> None:
        base = run_dir / name
        base.parent.mkdir(parents=True, exist_ok=True)
        self.mot_path = base.with_name(base.name + ".mot.txt")
        self.csv_path = base.with_name(base.name + ".tracks.csv") if with_csv else None
        self.mot: IO[str] = open(self.mot_path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.csv_file: IO[str] | None = None
        self.csv: Any = None
        if self.csv_path is not None:
            self.csv_file = open(self.csv_path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self.csv = csv.writer(self.csv_file)

    def close(self) -> None:
        self.mot.close()
        if self.csv_file is not None:
            self.csv_file.close()


class TrackFiles:
    """Writes each tracked frame's MOT lines (and CSV rows); with ``eval_gt`` scores the one sequence
    against that MOT ground truth when closed. Usable as a ``run_predict`` writer."""

    def __init__(self, run_dir: Path, *, csv: bool = False, eval_gt: str | Path | None = None) -> None:
        self.run_dir, self.with_csv = Path(run_dir), csv
        self.eval_gt = Path(eval_gt) if eval_gt is not None else None
        self.current: _Sequence | None = None
        self.key: str | None = None
        self.written: list[str] = []

    def write(self, frame: Frame, result: TrackedResult) -> list[str]:
        """Append ``result``'s tracked objects; returns the files (relative to the run folder) it went to."""
        name = sequence_name(frame)
        if name != self.key:
            self._close_current()
            self.key, self.current = name, _Sequence(self.run_dir, name, self.with_csv)
            self.written.append(str(self.current.mot_path.relative_to(self.run_dir)))
            if self.current.csv_path is not None:
                self.written.append(str(self.current.csv_path.relative_to(self.run_dir)))
        seq = self.current
        assert seq is not None
        index = int(result.frame_index or 0)
        ids, boxes, scores = result.tracked_boxes()
        seq.mot.writelines(mot_lines(index + 1, ids, boxes, scores))
        seq.mot.flush()
        files = [str(seq.mot_path.relative_to(self.run_dir))]
        if seq.csv is not None and seq.csv_file is not None and seq.csv_path is not None:
            columns, rows = result.track_table()
            if seq.csv_file.tell() == 0:
                seq.csv.writerow(["frame", "time", "id", *columns])
            time = round(float(result.time or 0.0), 4)
            seq.csv.writerows([[index, time, *row] for row in rows])
            seq.csv_file.flush()
            files.append(str(seq.csv_path.relative_to(self.run_dir)))
        return files

    def _close_current(self) -> None:
        if self.current is not None:
            self.current.close()

    def close(self) -> dict[str, Any]:
        """Close the files; the report's ``track_files`` and, with ``eval_gt``, ``tracking_metrics``."""
        self._close_current()
        report: dict[str, Any] = {"track_files": list(self.written)}
        if self.eval_gt is not None and self.current is not None:
            metrics = evaluate_mot(self.eval_gt, self.current.mot_path)
            report["tracking_metrics"] = {"ground_truth": str(self.eval_gt), **metrics}
        return report
