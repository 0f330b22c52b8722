"""Where a weights file comes from: a local path, an ``http(s)://`` URL (downloaded once into the cache,
``#sha256=<hex>`` checked), or ``hf-hub:<org>/<repo>[/<file>]`` on the Hugging Face hub.

One resolver that every reader (weights, model cards, the facades) goes through, so a URL or hub name
works wherever a path does. The hub is an optional extra (``huggingface_hub``) imported only when used.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.parse
from pathlib import Path

from hrnet.models.download import fetch, url_subdir

# ".tar": official "*.pth.tar" containers (Path("x.pth.tar").suffix is ".tar")
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".tar")
# "https://host/x" as Path() prints it ("https:/host/x"): readers that wrap sources in Path still resolve
_URL = re.compile(r"^(https?):/+(?=[^/])", re.IGNORECASE)


HF_PREFIX = "hf-hub:"


def as_url(src: str | Path) -> str | None:
    """``src`` as an ``http(s)://`` URL (also when ``Path()`` folded its ``//``), or None for other sources."""
    match = _URL.match(str(src))
    return None if match is None else f"{match.group(1).lower()}://{str(src)[match.end() :]}"


def resolve_source(src: str | Path) -> Path:
    """A local path for ``src``: a file path; an ``http(s)://`` URL, downloaded once into the cache's
    ``urls/<host>/<path>`` folder and checked against a ``#sha256=<hex>`` fragment if it has one (see
    :func:`hrnet.models.download.fetch`); or ``hf-hub:<org>/<repo>[/<file>]`` fetched through the
    optional ``huggingface_hub`` (default file ``model.safetensors``; its cache and offline mode apply)."""
    text = str(src)
    url = as_url(text)
    if url is not None:
        return fetch(url, subdir=url_subdir(url))
    if text.startswith(HF_PREFIX):
        parts = text[len(HF_PREFIX) :].strip("/").split("/")
        if len(parts) < 2 or not all(parts):
            raise ValueError(f"{text}: expected hf-hub:<org>/<repo> or hf-hub:<org>/<repo>/<file>")
        filename = "/".join(parts[2:]) or "model.safetensors"
        return hub_download("/".join(parts[:2]), filename)
    path = Path(src)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    return path


def looks_like_weights(text: str | Path) -> bool:
    """True when ``text`` names a weights file (a URL, a hub name, a known suffix, or an existing file)
    rather than a model name: how the facades and export tell ``"pose_hrnet_w32"`` from ``"w32.safetensors"``."""
    text = str(text)
    return (
        as_url(text) is not None
        or text.startswith(HF_PREFIX)
        or Path(text).suffix.lower() in WEIGHT_SUFFIXES
        or Path(text).is_file()
    )


def hub_download(repo_id: str, filename: str = "model.safetensors") -> Path:
    """One file of a Hugging Face hub repository: from the local cache when it is there, else downloaded.

    Offline, huggingface_hub retries for about half a minute before it gives up; here the cache is tried
    first, then a quick connection to the hub's endpoint (``HF_ENDPOINT``) decides, so an offline machine
    fails in seconds, with the way around it: download the file elsewhere and pass it as a local file.
    """
    try:
        from huggingface_hub import constants, hf_hub_download  # noqa: PLC0415 - optional extra (hrnet[hub])
    except ImportError as err:
        raise ImportError("hub weights need huggingface_hub: pip install 'hrnet[hub]'") from err
    where = f"hf-hub:{repo_id}/{filename}"
    hint = (
        f"download it yourself ({constants.ENDPOINT}/{repo_id}) and pass --model NAME --weights FILE "
        f"(a file with a model card needs only --weights FILE)"
    )
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the local cache: ask the hub below
        pass
    if constants.HF_HUB_OFFLINE:
        raise FileNotFoundError(f"{where}: not in the local hub cache, and HF_HUB_OFFLINE is set; {hint}")
    url = urllib.parse.urlsplit(constants.ENDPOINT)
    proxied = any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"))
    if url.hostname and not proxied:  # through a proxy the endpoint itself may well be unreachable
        try:
            socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), 5).close()
        except OSError as err:
            raise FileNotFoundError(
                f"{where}: not in the local hub cache, and the hub ({constants.ENDPOINT}) cannot be reached "
                f"({err.strerror or type(err).__name__}); {hint}"
            ) from err
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename))
    except Exception as err:  # noqa: BLE001 - missing repo or file, network failure: one message for the user
        raise FileNotFoundError(f"{where}: cannot get it from the hub ({type(err).__name__}: {err}); {hint}") from err
