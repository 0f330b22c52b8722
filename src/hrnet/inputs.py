"""What a user points predict at: files, folders, quoted globs, videos, webcams and stream URLs, as frames.

Every task's facade (``predict`` / ``track``) and command read their inputs here, so they accept the
same things. Each input keeps its path relative to the common folder of all inputs (``rel``), which
names its outputs: ``a/x.jpg``, ``a/x.png`` and ``b/x.jpg`` stay three different pictures. A webcam
index (``0``) and a URL OpenCV opens (``rtsp://``, ``http(s)://``, ``file://``) are videos named
``webcam0`` or after the URL. Frames are read lazily, one at a time, so a long video or a live stream
never sits in memory. A frame that cannot be read carries its error instead of raising, so the caller
decides to stop or skip.
"""

from __future__ import annotations

import glob
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hrnet.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, ImageReadError, as_rgb_array, read_image

MEDIA_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
DEFAULT_FPS = 25.0  # a video or stream whose container does not say its rate


@dataclass(frozen=True)
class InputFile:
    """One image or video file, or a live source; ``rel`` is its path below the inputs' common folder.

    ``stream`` is what OpenCV opens for a webcam (its index as text, ``"0"``) or a URL; ``path`` and
    ``rel`` then only name the outputs (``webcam0``, ``cam.example_554_live``).
    """

    path: Path
    rel: Path
    stream: str | None = None

    @property
    def is_video(self) -> bool:
        return self.stream is not None or self.path.suffix.lower() in VIDEO_SUFFIXES

    @property
    def is_stream(self) -> bool:
        """A webcam or URL: read once, live, with no known length."""
        return self.stream is not None

    @property
    def label(self) -> str:
        """How messages name this input: the URL or ``camera N`` for streams, else the path."""
        if self.stream is None:
            return str(self.path)
        return f"camera {self.stream}" if self.stream.isdigit() else self.stream


@dataclass
class Frame:
    """One image to run: from a file (``source``), a video frame (``index``) or an array given in Python.

    ``image`` is RGB uint8, or None with ``error`` saying why it could not be read. Video frames carry
    ``time`` (seconds: ``index / fps`` for files, since the stream was opened for live sources) and
    the video's ``fps``.
    """

    image: np.ndarray | None
    source: InputFile | None = None
    index: int | None = None
    error: str | None = None
    time: float | None = None
    fps: float | None = None

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


def stream_input(source: str | int) -> InputFile | None:
    """The live source ``source`` names (a webcam index such as ``0`` or ``"0"``, or a URL), or None
    when it is a path. An existing file or folder of that name is a path."""
    text = str(source)
    if isinstance(source, bool) or Path(text).exists():
        return None
    if isinstance(source, int) or text.isdigit():
        if int(text) < 0:
            raise ValueError(f"{text}: a webcam index must be >= 0")
        name = Path(f"webcam{int(text)}")
        return InputFile(name, name, str(int(text)))
    if is_url(text):
        rest = text.split("://", 1)[1]
        name = Path(re.sub(r"[^A-Za-z0-9_-]+", "_", rest).strip("_")[:80] or "stream")
        return InputFile(name, name, text)
    return None


def expand_inputs(sources: Sequence[str | Path | int]) -> list[InputFile]:
    """Files, folders (searched recursively, sorted), quoted globs, webcams and URLs -> inputs.

    A missing path, a folder or glob without media, or a file of an unknown type is a
    ``FileNotFoundError`` / ``ValueError`` naming it. Files listed twice are run once. A URL
    (``rtsp://``, ``http://`` ...) is named as given, never read as a path (which would fold its ``//``);
    it is opened when its frames are read.
    """
    found: list[Path] = []
    streams: list[InputFile] = []
    for src in sources:
        live = stream_input(src) if isinstance(src, (str, int)) else None
        if live is not None:
            streams.append(live)
            continue
        text = str(src)
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
    if not unique and not streams:
        raise FileNotFoundError("no inputs given")
    files = []
    if unique:
        root = Path(os.path.commonpath([p.parent for p in unique]))
        files = [InputFile(p, p.relative_to(root)) for p in unique]
    return files + list(dict.fromkeys(streams))


def _open(f: InputFile) -> cv2.VideoCapture:
    if f.stream is None:
        return cv2.VideoCapture(str(f.path))
    return cv2.VideoCapture(int(f.stream) if f.stream.isdigit() else f.stream)


def read_frames(files: Iterable[InputFile]) -> Iterator[Frame]:
    """Frames of ``files`` in order: one per image, every frame of a video or stream (decoded lazily, one
    at a time). A stream ends when its source stops sending."""

    for f in files:
        if not f.is_video:
            try:
                yield Frame(read_image(f.path), f)
            except ImageReadError as err:
                yield Frame(None, f, error=str(err))
            continue
        cap = _open(f)
        try:
            if not cap.isOpened():
                what = "the webcam" if f.stream and f.stream.isdigit() else "the stream" if f.stream else "the video"
                yield Frame(None, f, 0, error=f"{f.label}: cannot open {what}")
                continue
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            fps = fps if 0 < fps < 1000 else DEFAULT_FPS
            start = time.monotonic()
            index = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                t = time.monotonic() - start if f.is_stream else index / fps
                yield Frame(np.ascontiguousarray(bgr[:, :, ::-1]), f, index, time=t, fps=fps)
                index += 1
            if index == 0:
                yield Frame(None, f, 0, error=f"{f.label}: the video has no readable frame")
        finally:
            cap.release()


def as_frames(images: Any) -> Iterator[Frame]:
    """What a facade's ``predict`` accepts: one or many paths, folders, globs, videos, webcam indices
    (``0``), stream URLs or RGB arrays, read lazily."""
    if isinstance(images, (str, Path, np.ndarray, int)):
        images = [images]
    files: list[str | Path | int] = []
    for i, item in enumerate(images):
        if isinstance(item, (str, Path, int)) and not isinstance(item, bool):
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


def stream_results(frames: Iterable[Frame], size: int, run: Callable[[list[Frame]], list[Any]]) -> Iterator[Any]:
    """``run`` over consecutive batches of ``size`` frames, one result at a time: what ``predict(...,
    stream=True)`` returns, holding one batch in memory however long the video."""
    for batch in batched(frames, size):
        yield from run(batch)
