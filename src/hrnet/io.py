"""Reading images with errors that name the file: shared by every task's datasets, API and CLI.

All tasks work on RGB ``uint8`` arrays of shape (H, W, 3). Grayscale, palette and RGBA files are
converted (alpha dropped) instead of silently producing a wrong channel count; an unreadable file
raises :class:`ImageReadError` naming the path and the reason.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from hrnet.atomic import atomic_path

# the input normalisation of every HRNet checkpoint (ImageNet statistics of RGB values in [0, 1])
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


class ImageReadError(ValueError):
    """An image file is missing, empty or cannot be decoded."""


def read_pixel_limit() -> int:
    """The largest image :func:`read_image` decodes, in pixels: PIL's decompression-bomb limit, twice
    ``PIL.Image.MAX_IMAGE_PIXELS`` (178,956,970 px by default, e.g. 16384 x 10922), so a 108-megapixel
    photo reads silently (PIL's warning above 89 MP is not shown) and a larger file is refused in one line.
    Raise ``PIL.Image.MAX_IMAGE_PIXELS`` in Python to read larger images on purpose (None: no limit, 0 here)."""
    limit = Image.MAX_IMAGE_PIXELS
    return 2 * int(limit) if limit else 0


def _too_large(path: Path, err: Exception) -> str:
    found = re.search(r"\((\d+) pixels\)", str(err))
    size = f"{int(found.group(1)) / 1e6:.0f}-megapixel image" if found else "image"
    return (
        f"{path}: {size} is above the reader's limit of {read_pixel_limit() / 1e6:.0f} MP (PIL's guard against "
        f"decompression bombs: 2 x PIL.Image.MAX_IMAGE_PIXELS); downscale the file, or raise that limit in Python"
    )


def read_image(path: str | Path) -> np.ndarray:
    """Read ``path`` as an RGB uint8 array (H, W, 3); grayscale / palette / RGBA are converted.

    Images up to :func:`read_pixel_limit` pixels are read without PIL's decompression-bomb warning; a
    larger one raises :class:`ImageReadError` naming the file and its size. An RGB file is not copied
    once more by a conversion (a 108-megapixel photo is 324 MB)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: image file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                    raise ImageReadError(f"{path}: {im.mode} image (16-bit or float) is not an 8-bit colour image")
                arr = np.asarray(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8)
    except Image.DecompressionBombError as err:
        raise ImageReadError(_too_large(path, err)) from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ImageReadError(f"{path}: cannot decode image ({err})") from err
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(f"{path}: image has zero size {arr.shape[:2]}")
    return arr


def image_size(path: str | Path, decode: bool = False) -> tuple[int, int]:
    """(width, height) of an image file from its header, or (``decode``) after decoding every pixel.

    The header is what a quick data check can afford; decoding also catches truncated files. A missing
    file raises ``FileNotFoundError``, an unreadable one :class:`ImageReadError`, both naming the path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if decode:
                    im.load()
                return im.size
    except Image.DecompressionBombError as err:
        raise ImageReadError(_too_large(path, err)) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: cannot {'decode' if decode else 'read'} image ({err})") from err


def as_rgb_array(image: str | Path | np.ndarray) -> np.ndarray:
    """Accept a path or an array (H,W), (H,W,3) or (H,W,4) and return RGB uint8 (H, W, 3)."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an image array (H,W), (H,W,3) or (H,W,4), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(arr.max()) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def save_image(path: str | Path, rgb: np.ndarray, quality: int = 95) -> Path:
    """Write an RGB uint8 picture atomically; the format follows the suffix (JPEG, PNG, ...).

    The one image saver of the project: every failure (unknown suffix, unwritable folder, full disk)
    raises ``OSError``/``ValueError`` naming the path instead of returning a flag nobody checks.
    """

    path = Path(path)
    image = Image.fromarray(np.ascontiguousarray(as_rgb_array(rgb)))
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown picture format (suffix {path.suffix!r}; use .jpg or .png)")
    options = {"quality": quality} if fmt == "JPEG" else {}
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **options)
    return path


def list_inputs(inputs: list[str | Path]) -> list[Path]:
    """Expand files and folders into a sorted list of image and video files (folders not recursed)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{p}: folder holds no images or videos")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return out
