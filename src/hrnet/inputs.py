"""What a user points predict at: files, folders, quoted globs and videos, as a stream of frames.

Every task's facade (``predict``) and predict command read their inputs here, so they accept the
same things. Each input keeps its path relative to the common folder of all inputs (``rel``), which
names its outputs: ``a/x.jpg``, ``a/x.png`` and ``b/x.jpg`` stay three different pictures. A frame
that cannot be read carries its error instead of raising, so the caller decides to stop or skip.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hrnet.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, ImageReadError, as_rgb_array, read_image

MEDIA_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class InputFile:
    """One image or video file; ``rel`` is its path below the inputs' common folder."""

    path: Path
    rel: Path

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower() in VIDEO_SUFFIXES


@dataclass
class Frame:
    """One image to run: from a file (``source``), a video frame (``index``) or an array given in Python.

    ``image`` is RGB uint8, or None with ``error`` saying why it could not be read.
    """

    image: np.ndarray | None
    source: InputFile | None = None
    index: int | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        """How results and messages name this frame: the relative path, plus ``#frame`` for videos."""
        if self.source is None:
            return f"array {self.index}" if self.index is not None else "array"
        base = str(self.source.rel)
        return f"{base}#{self.index}" if self.source.is_video else base


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL (``scheme://...``) rather than a path."""
    return _URL.match(text) is not None


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def expand_inputs(sources: Sequence[str | Path]) -> list[InputFile]:
    """Files, folders (searched recursively, sorted) and quoted globs -> image / video files.

    A missing path, a folder or glob without media, or a file of an unknown type is a
    ``FileNotFoundError`` / ``ValueError`` naming it. Files listed twice are run once. A URL
    (``rtsp://``, ``http://`` ...) is named as given, never read as a path (which would fold its ``//``).
    """
    found: list[Path] = []
    for src in sources:
        text = str(src)
        if is_url(text) and not Path(text).exists():
            raise ValueError(
                f"{text}: cannot open a URL (streams and downloads are not supported yet); "
                f"save the images or video to a file and pass its path"
            )
        path = Path(text)
        if path.is_dir():
            media = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
            if not media:
                raise FileNotFoundError(f"{path}: folder holds no images or videos ({', '.join(MEDIA_SUFFIXES)})")
            found.extend(media)
        elif path.is_file():
            if path.suffix.lower() not in MEDIA_SUFFIXES:
                raise ValueError(f"{path}: not an image or video file (suffixes: {', '.join(MEDIA_SUFFIXES)})")
            found.append(path)
        elif _is_glob(text):
            media = sorted(
                Path(p)
                for p in glob.glob(text, recursive=True)
                if Path(p).is_file() and Path(p).suffix.lower() in MEDIA_SUFFIXES
            )
            if not media:
                raise FileNotFoundError(f"{text}: the pattern matches no images or videos")
            found.extend(media)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise FileNotFoundError("no inputs given")
    root = Path(os.path.commonpath([p.parent for p in unique]))
    return [InputFile(p, p.relative_to(root)) for p in unique]


def read_frames(files: Iterable[InputFile]) -> Iterator[Frame]:
    """Frames of ``files`` in order: one per image, every frame of a video (decoded lazily)."""

    for f in files:
        if not f.is_video:
            try:
                yield Frame(read_image(f.path), f)
            except ImageReadError as err:
                yield Frame(None, f, error=str(err))
            continue
        cap = cv2.VideoCapture(str(f.path))
        try:
            if not cap.isOpened():
                yield Frame(None, f, 0, error=f"{f.path}: cannot open the video")
                continue
            index = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                yield Frame(np.ascontiguousarray(bgr[:, :, ::-1]), f, index)
                index += 1
            if index == 0:
                yield Frame(None, f, 0, error=f"{f.path}: the video has no readable frame")
        finally:
            cap.release()


def video_fps(path: Path) -> float:
    """Frames per second of a video file (25 when the container does not say)."""

    cap = cv2.VideoCapture(str(path))
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        cap.release()
    return fps if fps > 0 else 25.0


def as_frames(images: Any) -> Iterator[Frame]:
    """What a facade's ``predict`` accepts: one or many paths, folders, globs, videos or RGB arrays."""
    if isinstance(images, (str, Path, np.ndarray)):
        images = [images]
    files: list[str | Path] = []
    for i, item in enumerate(images):
        if isinstance(item, (str, Path)):
            files.append(item)
            continue
        if files:
            yield from read_frames(expand_inputs(files))
            files = []
        yield Frame(as_rgb_array(item), None, i)
    if files:
        yield from read_frames(expand_inputs(files))


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
