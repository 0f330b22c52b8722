"""Downloads into the weights cache, against a loopback HTTP server standing in as ``HRNET_MIRROR``.

The server (standard library, 127.0.0.1, a free port) serves bytes the test writes itself, counts the
requests it answers, and can cut a body mid-way or hold it until the test lets it go. No test touches
the network.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import hrnet
from hrnet.models.download import DownloadError, cache_dir, cached_path, download_record, fetch, sha256_of
from hrnet.models.sources import looks_like_weights, resolve_source

UPSTREAM = "https://download.example.org"


class Mirror:
    """A loopback file server: ``files`` by URL path, ``cut`` (path -> bytes sent before hanging up),
    ``hold`` (an event the body waits for), and ``requests`` counted by path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.hold: threading.Event | None = None
        self.requests: Counter[str] = Counter()
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
                mirror.requests[self.path] += 1
                body = mirror.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mirror.hold is not None:
                    mirror.hold.wait(timeout=60)
                self.wfile.write(body[: mirror.cut.get(self.path, len(body))])

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, path: str, body: bytes) -> str:
        """Serve ``body`` at ``path``; returns the upstream URL whose path it is."""
        self.files[path] = body
        return UPSTREAM + path


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    monkeypatch.setenv("HRNET_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("HRNET_OFFLINE", raising=False)
    server = Mirror()
    monkeypatch.setenv("HRNET_MIRROR", server.url)
    server.thread.start()
    yield server
    if server.hold is not None:
        server.hold.set()
    server.server.shutdown()
    server.server.server_close()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and text
    return text


BODY = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit: more than one read chunk
DIGEST = hashlib.sha256(BODY).hexdigest()


def test_download_then_cache_hit(mirror: Mirror, tmp_path: Path):
    url = mirror.add("/mmpose/top_down/w32-abc.pth", BODY)
    path = fetch(url, DIGEST[:8], progress=False)
    assert path == tmp_path / "cache" / "downloads" / "w32-abc.pth"
    assert path.read_bytes() == BODY
    # the mirror got the upstream path; the record keeps the upstream URL and the full digest
    assert mirror.requests == Counter({"/mmpose/top_down/w32-abc.pth": 1})
    assert download_record(path) == {
        "sha256": DIGEST,
        "size": len(BODY),
        "mtime_ns": path.stat().st_mtime_ns,
        "url": url,
    }
    assert fetch(url, DIGEST, progress=False) == path
    assert fetch(url, progress=False) == path
    assert sum(mirror.requests.values()) == 1
    # no temporary or lock file is left beside it
    assert _files(tmp_path / "cache") == [path, path.with_name("w32-abc.pth.sha256")]


def test_digest_mismatch_is_refused_and_leaves_nothing(mirror: Mirror, tmp_path: Path):
    url = mirror.add("/x/bad.pth", BODY)
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ValueError) as err:
        fetch(url, wrong, progress=False)
    line = _one_line(err.value)
    assert f"{mirror.url}/x/bad.pth" in line and f"expected {wrong}" in line and f"got {DIGEST}" in line
    assert _files(tmp_path / "cache") == []


def test_a_cached_file_that_changed_is_refused(mirror: Mirror):
    url = mirror.add("/x/w.pth", BODY)
    path = fetch(url, DIGEST, progress=False)
    path.write_bytes(BODY[:-1] + b"!")  # the record's size still matches: its mtime does not
    os.utime(path, ns=(0, 0))
    with pytest.raises(ValueError) as err:
        fetch(url, DIGEST, progress=False)
    assert str(path) in _one_line(err.value) and "delete it" in str(err.value)


def test_cut_download_leaves_no_file_and_the_next_attempt_succeeds(mirror: Mirror, tmp_path: Path):
    url = mirror.add("/x/cut.pth", BODY)
    mirror.cut["/x/cut.pth"] = 300_000
    with pytest.raises(OSError) as err:
        fetch(url, DIGEST, progress=False)
    line = _one_line(err.value)
    assert "cut after 300000 of" in line and url in line
    target = cached_path(url)
    assert str(target) in line
    assert _files(tmp_path / "cache") == []
    del mirror.cut["/x/cut.pth"]
    assert fetch(url, DIGEST, progress=False).read_bytes() == BODY
    assert mirror.requests["/x/cut.pth"] == 2


def test_cut_download_without_digest_is_refused_too(mirror: Mirror, tmp_path: Path):
    url = mirror.add("/x/cut2.pth", BODY)
    mirror.cut["/x/cut2.pth"] = 10
    with pytest.raises(DownloadError):
        fetch(url, progress=False)
    assert _files(tmp_path / "cache") == []


FETCH_SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from hrnet.models.download import fetch
print(fetch(sys.argv[1], sys.argv[2], progress=False), flush=True)
"""


def _wait_for(condition, what: str, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_two_processes_fetching_one_file_both_succeed_with_one_download(mirror: Mirror, tmp_path: Path):
    url = mirror.add("/x/shared.pth", BODY)
    mirror.hold = threading.Event()  # the body waits until both processes are inside fetch
    cmd = [sys.executable, "-c", FETCH_SCRIPT, url, DIGEST]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    logs = [io.StringIO(), io.StringIO()]
    readers = [
        threading.Thread(target=lambda p=p, log=log: log.writelines(p.stderr), daemon=True)
        for p, log in zip(procs, logs, strict=True)
    ]
    try:
        for reader in readers:
            reader.start()
        # one process holds the lock and waits for the body; the other waits for the lock
        _wait_for(lambda: mirror.requests["/x/shared.pth"] == 1, "the first request")
        _wait_for(lambda: any("waiting for another process" in log.getvalue() for log in logs), "a lock wait")
        mirror.hold.set()
        outs = [p.communicate(timeout=120)[0] for p in procs]
        for reader in readers:
            reader.join(timeout=10)
    finally:
        mirror.hold.set()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [p.returncode for p in procs] == [0, 0], [log.getvalue() for log in logs]
    target = tmp_path / "cache" / "downloads" / "shared.pth"
    assert [Path(out.strip()) for out in outs] == [target, target]
    assert mirror.requests["/x/shared.pth"] == 1
    assert sha256_of(target) == DIGEST
    assert _files(tmp_path / "cache") == [target, target.with_name("shared.pth.sha256")]


def test_offline_with_an_empty_cache_names_the_url_and_the_cache_path(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    url = mirror.add("/mmseg/seg.pth", BODY)
    monkeypatch.setenv("HRNET_OFFLINE", "1")
    with pytest.raises(DownloadError) as err:
        fetch(url, DIGEST, progress=False, name="seg_hrnet_w48.cityscapes")
    line = _one_line(err.value)
    target = tmp_path / "cache" / "downloads" / "seg.pth"
    assert line.startswith("seg_hrnet_w48.cityscapes: ") and url in line and str(target) in line
    assert sum(mirror.requests.values()) == 0
    # the file put by hand where the line says is then used (and verified) offline
    target.write_bytes(BODY)
    assert fetch(url, DIGEST, progress=False) == target
    target.write_bytes(b"not it")
    with pytest.raises(ValueError):
        fetch(url, DIGEST, progress=False)


def test_offline_with_a_filled_cache_works(mirror: Mirror, monkeypatch: pytest.MonkeyPatch):
    url = mirror.add("/x/ok.pth", BODY)
    path = fetch(url, DIGEST, progress=False)
    monkeypatch.setenv("HRNET_OFFLINE", "1")
    assert fetch(url, DIGEST, progress=False) == path
    assert mirror.requests["/x/ok.pth"] == 1


def test_no_network_names_the_url_and_the_cache_path(mirror: Mirror, monkeypatch: pytest.MonkeyPatch):
    with socket.socket() as sock:  # a port nothing listens on: connection refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HRNET_MIRROR", f"http://127.0.0.1:{port}/prefix")
    url = UPSTREAM + "/x/gone.pth"
    with pytest.raises(DownloadError) as err:
        fetch(url, DIGEST, progress=False)
    line = _one_line(err.value)
    assert url in line and f"127.0.0.1:{port}/prefix/x/gone.pth" in line and str(cached_path(url)) in line


def test_http_error_is_one_line(mirror: Mirror):
    with pytest.raises(DownloadError, match=r"HTTP 404") as err:
        fetch(UPSTREAM + "/x/missing.pth", progress=False)
    assert str(cached_path(UPSTREAM + "/x/missing.pth")) in _one_line(err.value)


def test_bad_digests_and_urls_are_refused_before_any_request(mirror: Mirror):
    url = mirror.add("/x/a.pth", BODY)
    with pytest.raises(ValueError, match="8 to 64 hex"):
        fetch(url, "abc", progress=False)
    with pytest.raises(ValueError, match="contradicts"):
        fetch(f"{url}#sha256={DIGEST}", "0" * 64, progress=False)
    with pytest.raises(ValueError, match="only http"):
        fetch("ftp://host/a.pth", progress=False)
    with pytest.raises(ValueError, match="subdir"):
        fetch(url, subdir="../out", progress=False)
    assert sum(mirror.requests.values()) == 0


def test_cache_dir_defaults_to_the_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HRNET_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "hrnet" and cache_dir().is_dir()
    monkeypatch.setenv("HRNET_HOME", "~/elsewhere")
    assert cache_dir() == tmp_path / "elsewhere"


def _model_bytes() -> tuple[torch.nn.Module, bytes]:
    torch.manual_seed(1)
    model = hrnet.create_model("seg_hrnet_w18_small_v1", num_classes=4).eval()
    buf = io.BytesIO()
    torch.save({"state_dict": model.state_dict()}, buf)
    return model, buf.getvalue()


def test_url_with_sha256_fragment_loads_weights(mirror: Mirror, tmp_path: Path):
    source, data = _model_bytes()
    url = mirror.add("/mmseg/hrnet/fcn_hr18s_4x.pth", data) + f"#sha256={hashlib.sha256(data).hexdigest()}"
    assert looks_like_weights(url)
    torch.manual_seed(2)
    model = hrnet.create_model("seg_hrnet_w18_small_v1", num_classes=4).eval()
    hrnet.load_weights(model, url)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    # the fragment is not sent; the file is cached under the URL's host and path
    expected = tmp_path / "cache" / "urls" / "download.example.org" / "mmseg" / "hrnet" / "fcn_hr18s_4x.pth"
    assert resolve_source(url) == expected
    assert mirror.requests == Counter({"/mmseg/hrnet/fcn_hr18s_4x.pth": 1})


def test_url_with_wrong_sha256_fragment_is_refused(mirror: Mirror, tmp_path: Path):
    _, data = _model_bytes()
    url = mirror.add("/mmseg/other.pth", data) + "#sha256=deadbeef"
    model = hrnet.create_model("seg_hrnet_w18_small_v1", num_classes=4)
    with pytest.raises(ValueError) as err:
        hrnet.load_weights(model, url)
    line = _one_line(err.value)
    assert "expected deadbeef" in line and f"got {hashlib.sha256(data).hexdigest()}" in line
    assert _files(tmp_path / "cache") == []
