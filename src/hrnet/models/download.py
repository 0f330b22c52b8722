"""Downloading a weights file once, verified, into a cache that several processes can share.

Every pretrained file (zoo entries, ``https://`` weights arguments) goes through :func:`fetch`, so one
set of guarantees holds for all of them:

- the file lands in ``cache_dir()/<subdir>/<filename>`` only when it is complete and its sha256
  matches: the body streams into a temporary file beside it, is hashed while it is written, and is
  renamed only after the digest check, so nothing ever unpickles an unverified or half-written file;
- a short read (the connection closed before ``Content-Length`` bytes) and a digest mismatch delete
  the temporary file and raise with one line; no retry loop hides a flaky mirror;
- ``<target>.lock`` (``fcntl.flock``) makes concurrent fetches of one file wait for each other, so two
  processes both succeed with one download;
- ``<target>.sha256`` records the full digest, size and mtime measured when the file was verified; a
  later call that pins a digest trusts that record while size and mtime still match the file, and
  hashes the file again otherwise (a file put into the cache by hand is hashed once, then recorded).

Environment: ``HRNET_HOME`` (the cache root), ``HRNET_MIRROR`` (a base URL that replaces the upstream
scheme and host, path kept, digests still checked: offline sites and tests) and ``HRNET_OFFLINE``
(never touch the network; a missing file is an error naming where to put it by hand).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlsplit, urlunsplit
from urllib.request import Request, urlopen

from tqdm import tqdm

from hrnet.atomic import atomic_path, write_text
from hrnet.version import __version__

try:  # POSIX; elsewhere the atomic rename alone keeps the cache consistent (two downloads may then run)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("hrnet")

ENV_HOME = "HRNET_HOME"
ENV_MIRROR = "HRNET_MIRROR"
ENV_OFFLINE = "HRNET_OFFLINE"
DEFAULT_HOME = "~/.cache/hrnet"
# seconds without progress (connect, or between two reads) before the download counts as failed
TIMEOUT_S = 15.0
CHUNK = 1 << 20
TRUTHY = ("1", "true", "yes", "on")
_HEX = re.compile(r"[0-9a-f]{8,64}")


class DownloadError(OSError):
    """A file is neither in the cache nor downloadable now (offline, no network, HTTP error, cut body)."""


def cache_dir() -> Path:
    """The cache root: ``$HRNET_HOME``, else ``$XDG_CACHE_HOME/hrnet``, else ``~/.cache/hrnet``; created
    on demand, read from the environment on every call (no module state)."""
    home = os.environ.get(ENV_HOME)
    if not home:
        xdg = os.environ.get("XDG_CACHE_HOME")
        home = str(Path(xdg) / "hrnet") if xdg else DEFAULT_HOME
    path = Path(home).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def offline() -> bool:
    """True when ``HRNET_OFFLINE`` is set to 1 / true / yes / on."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in TRUTHY


def sha256_of(path: str | Path) -> str:
    """The full sha256 (64 hex digits) of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_digest(value: str, origin: str) -> str:
    digest = value.strip().lower()
    if not _HEX.fullmatch(digest):
        raise ValueError(f"{origin}: a sha256 is 8 to 64 hex digits, got {value!r}")
    return digest


def split_digest(url: str) -> tuple[str, str | None]:
    """``url`` without its fragment, and the digest of a ``#sha256=<hex>`` fragment (as pip writes it),
    or None. The fragment is never sent to the server."""
    base, _, fragment = url.partition("#")
    digest = None
    for item in fragment.split("&") if fragment else ():
        key, _, value = item.partition("=")
        if key == "sha256":
            digest = _check_digest(value, url)
    return base, digest


def _expected_digest(url: str, sha256: str | None) -> tuple[str, str | None]:
    base, from_url = split_digest(url)
    given = _check_digest(sha256, url) if sha256 else None
    if given and from_url and not (given.startswith(from_url) or from_url.startswith(given)):
        raise ValueError(f"{url}: the sha256 argument {given} contradicts the URL's #sha256={from_url}")
    candidates = [d for d in (given, from_url) if d]
    return base, max(candidates, key=len) if candidates else None


def mirrored(url: str) -> str:
    """``url`` with its scheme and host replaced by ``$HRNET_MIRROR`` (path and query kept), or ``url``
    unchanged when no mirror is set. The mirror base may carry a path prefix of its own."""
    mirror = os.environ.get(ENV_MIRROR, "").strip()
    if not mirror:
        return url
    parts = urlsplit(url)
    base = urlsplit(mirror)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ValueError(f"{ENV_MIRROR}={mirror!r}: expected a base URL such as http://host:port[/prefix]")
    path = base.path.rstrip("/") + parts.path
    return urlunsplit((base.scheme, base.netloc, path, parts.query, ""))


def _url_filename(url: str) -> str:
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    if not name or name in (".", ".."):
        raise ValueError(f"{url}: the URL names no file; pass filename=")
    return name


def url_subdir(url: str, root: str = "urls") -> str:
    """A cache folder for a bare URL: ``<root>/<host>/<path folders>`` (plus a short hash of the query,
    if any), so two URLs that end in the same file name never share a cache entry."""
    parts = urlsplit(split_digest(url)[0])
    folders = [unquote(p) for p in PurePosixPath(parts.path).parent.parts if p != "/"]
    if any(p in ("", ".", "..") for p in folders):
        raise ValueError(f"{url}: the URL path has '.' or '..' segments")
    segments = [root, parts.netloc.replace(":", "_"), *folders]
    if parts.query:
        segments.append("q" + hashlib.sha256(parts.query.encode()).hexdigest()[:8])
    return "/".join(segments)


def cached_path(url: str, *, filename: str | None = None, subdir: str = "downloads") -> Path:
    """Where :func:`fetch` keeps the file of ``url`` (whether or not it is there yet)."""
    name = filename or _url_filename(split_digest(url)[0])
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"{name!r}: filename must be a plain file name")
    sub = PurePosixPath(subdir)
    if sub.is_absolute() or ".." in sub.parts:
        raise ValueError(f"{subdir!r}: subdir must be a relative folder inside the cache")
    return cache_dir().joinpath(*sub.parts, name)


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def download_record(path: str | Path) -> dict[str, Any] | None:
    """What was recorded when ``path`` was last verified (``sha256``, ``size``, ``mtime_ns``, ``url``),
    or None when there is no record or the file changed since (size or mtime differ)."""
    path = Path(path)
    try:
        record = json.loads(_record_path(path).read_text())
        stat = path.stat()
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or (record.get("size"), record.get("mtime_ns")) != (stat.st_size, stat.st_mtime_ns):
        return None
    return record


def _write_record(path: Path, digest: str, url: str) -> None:
    stat = path.stat()
    record = {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "url": url}
    write_text(_record_path(path), json.dumps(record) + "\n")


def _verified_cached(path: Path, expected: str | None, url: str) -> Path:
    """``path`` (an existing cache file) once its digest matches ``expected``; a file without a valid
    record is hashed and recorded."""
    if expected is None:
        return path
    record = download_record(path)
    digest = record.get("sha256") if record else None
    if not isinstance(digest, str) or len(digest) != 64:
        digest = sha256_of(path)
        _write_record(path, digest, url)
    if not digest.startswith(expected):
        raise ValueError(
            f"{path}: the cached file has sha256 {digest}, expected {expected} for {url}; delete it to download again"
        )
    return path


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Hold ``<target>.lock`` exclusively; a second process waits here until the first is done."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.with_name(target.name + ".lock")
    while True:
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process downloading %s", target)
            fcntl.flock(fd, fcntl.LOCK_EX)
        # the holder before us removed the lock file on leaving: ours is then stale, take a fresh one
        try:
            current = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # while still held, so the cache keeps no lock files
        os.close(fd)


def _failure(label: str, url: str, sent: str, target: Path, reason: str) -> DownloadError:
    via = f" (from {sent})" if sent != url else ""
    return DownloadError(
        f"{label}: cannot download {url}{via}: {reason}; put the file at {target} by hand, or set {ENV_MIRROR}"
    )


def _download(url: str, sent: str, target: Path, expected: str | None, progress: bool, label: str) -> None:
    """Stream ``sent`` into a temporary file beside ``target``, check length and digest, then rename."""
    request = Request(sent, headers={"User-Agent": f"hrnet/{__version__}"})
    try:
        response = urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 - http(s) only, checked by fetch
    except HTTPError as err:
        raise _failure(label, url, sent, target, f"HTTP {err.code} {err.reason}") from err
    except (URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", None) or err
        raise _failure(label, url, sent, target, f"{type(err).__name__}: {reason}") from err
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        digest = hashlib.sha256()
        size = 0
        with atomic_path(target) as tmp:
            show = progress and sys.stderr.isatty()
            with (
                open(tmp, "wb") as out,
                tqdm(
                    total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name, disable=not show
                ) as bar,
            ):
                try:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                        bar.update(len(chunk))
                except (OSError, http.client.HTTPException) as err:
                    reason = f"cut after {size} bytes ({type(err).__name__}: {err})"
                    raise _failure(label, url, sent, target, reason) from err
            if total is not None and size != total:
                raise _failure(label, url, sent, target, f"cut after {size} of {total} bytes")
            got = digest.hexdigest()
            if expected is not None and not got.startswith(expected):
                raise ValueError(
                    f"{label}: sha256 mismatch for {sent}: expected {expected}, got {got}; the download was deleted"
                )
        # the rename has happened: record what was measured, so later loads need not hash again
        _write_record(target, got, url)
    log.info("downloaded %s (%d bytes, sha256 %s) to %s", url, size, got, target)


def fetch(
    url: str,
    sha256: str | None = None,
    *,
    filename: str | None = None,
    subdir: str = "downloads",
    progress: bool = True,
    name: str | None = None,
) -> Path:
    """The local path of the file at ``url``, downloaded once into ``cache_dir()/subdir/filename``.

    ``sha256`` (64 hex digits, or a prefix of at least 8 as in OpenMMLab file names; a ``#sha256=``
    fragment of ``url`` gives it too) is checked before the file is renamed into place, and again on
    cache hits (through the recorded digest, see the module docstring). ``name`` (e.g. a zoo entry)
    leads every error message; it defaults to the URL. Raises ``ValueError`` on a digest mismatch and
    :class:`DownloadError` (an ``OSError``) when the file is not cached and cannot be downloaded now.
    """
    base, expected = _expected_digest(url, sha256)
    if urlsplit(base).scheme not in ("http", "https"):
        raise ValueError(f"{url}: only http:// and https:// URLs can be downloaded")
    target = cached_path(base, filename=filename, subdir=subdir)
    label = name or base
    if target.is_file():
        return _verified_cached(target, expected, base)
    if offline():
        target.parent.mkdir(parents=True, exist_ok=True)  # ready for the file put there by hand
        raise DownloadError(
            f"{label}: not in the cache and {ENV_OFFLINE} is set; download {base} and put it at {target}"
        )
    sent = mirrored(base)
    with _locked(target):
        if target.is_file():  # another process finished it while this one waited for the lock
            return _verified_cached(target, expected, base)
        _download(base, sent, target, expected, progress, label)
    return target
