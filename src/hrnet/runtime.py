"""Fast inference behind one call: ``optimize_for_inference(model, runtime=...)`` -> a callable like ``model``.

HRNet is slower than its FLOPs suggest in eager PyTorch: hundreds of small convs on four streams, a
BatchNorm after each, and upsample + add in every fusion. The runtimes here remove that overhead in
different ways, and all of them return what ``model(x)`` returns on an (N, 3, H, W) batch:

- ``eager``: the model itself (no setup at all).
- ``torch``: BatchNorm folded into the convs (:func:`hrnet.models.fuse.fuse`), channels_last weights and
  inputs, ``torch.inference_mode``. No extra dependency, any input size.
- ``compile``: the same module through ``torch.compile`` (CUDA graphs on a GPU); compiles per input shape.
- ``onnx``: the fused module exported to ONNX (opset 18, dynamic batch, static H x W so every resize has a
  constant size) and run by onnxruntime with the machine's thread count. One session per input size.
  The export is slow (tens of seconds for W32), so it is kept on disk (:class:`ExportCache`) and the next
  process with the same weights, input size and versions loads it in about a second. Needs the ``onnx``
  extra.
- ``auto``: on a CPU, :class:`AutoRunner`: eager until the work in hand (a batch, or all the crops a
  facade announces) pays for a faster runtime's setup: a cached ONNX export first, else ``torch``, and an
  export of its own only once a long job has saved more than it costs. So the default is never slower
  than eager on one photo and reaches the faster runtimes on folders and videos (numbers: docs/speed.md,
  "The default runtime: one photo and a folder, cold and warm"). On a GPU, and with ``bf16`` / ``fp16``,
  ``torch``. A runtime whose output differs from eager
  by more than ``tolerance`` (relative to the largest output) is dropped, with a warning.

:data:`RUNTIMES` is the one table of these names; the command lines and the task facades read it.
This module imports no task package: the task facades call it with their own model and crop size.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import io
import json
import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hrnet.atomic import write_bytes, write_json
from hrnet.models.fuse import fuse
from hrnet.version import __version__

log = logging.getLogger("hrnet")

RUNTIMES = ("auto", "eager", "torch", "compile", "onnx")  # the one table: CLI choices, facades, this module
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
ONNX_OPSET = 18
FP32_TOLERANCE = 1e-4  # relative error a fast fp32 path may have against eager (1e-6 is typical)
MAX_SESSIONS = 4  # ONNX sessions kept per runner (one per input size), least recently used dropped


class RuntimeUnavailableError(ValueError):
    """The requested runtime cannot run here (package missing, device unsupported)."""


def default_threads() -> int:
    """CPU cores this process may use (the affinity mask, which respects container CPU limits)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def onnxruntime_available() -> bool:
    """Whether the ``onnx`` extra (onnx + onnxruntime) is importable."""
    try:
        import onnx  # noqa: F401, PLC0415 - optional extra (hrnet[onnx])
        import onnxruntime  # noqa: F401, PLC0415 - optional extra (hrnet[onnx])
    except ImportError:
        return False
    return True


def onnxruntime_installed() -> bool:
    """Whether the ``onnx`` extra is installed, without importing it (importing onnx + onnxruntime takes
    a second or more: a one-photo job that never uses them should not pay it)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def relative_error(a: Any, b: Any) -> float:
    """max |a - b| / max |a| over tensors or (nested) lists / dicts of tensors; the parity measure of this
    package (dicts, e.g. a detector's pyramid levels, are compared value by value in order)."""
    if isinstance(a, Mapping):
        a, b = list(a.values()), list(b.values())
    if isinstance(a, (list, tuple)):
        return max((relative_error(x, y) for x, y in zip(a, b)), default=0.0)
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


def _map_tensors(out: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """Apply ``fn`` to a tensor or to each tensor of a list / tuple output."""
    if isinstance(out, Tensor):
        return fn(out)
    if isinstance(out, (list, tuple)):
        return type(out)(_map_tensors(o, fn) for o in out)
    return out


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _check_batch(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected an image batch tensor (N, 3, H, W), got {shape}")


class InferenceRunner:
    """A callable ``x -> model(x)`` on a batch tensor; ``runtime`` names the path actually used."""

    runtime: str = ""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __call__(self, x: Tensor) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(runtime={self.runtime!r}, device={str(self.device)!r})"


class TorchRunner(InferenceRunner):
    """Fused (BN-folded) module, channels_last, inference mode; optional autocast to bf16 / fp16."""

    runtime = "torch"

    def __init__(
        self, model: nn.Module, device: torch.device, precision: str = "fp32", channels_last: bool = True
    ) -> None:
        super().__init__(device)
        self.module = fuse(model).to(device)
        self.channels_last = channels_last
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.dtype = PRECISIONS[precision]
        self._forward: Callable[[Tensor], Any] = self.module

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def __call__(self, x: Tensor) -> Any:
        _check_batch(x)
        x = x.to(self.device, torch.float32, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            out = self._forward(x)
        return _map_tensors(out, lambda t: t.float().contiguous() if t.is_floating_point() else t.contiguous())


class CompileRunner(TorchRunner):
    """:class:`TorchRunner` through ``torch.compile`` (``reduce-overhead``, i.e. CUDA graphs, on a GPU)."""

    runtime = "compile"

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        precision: str = "fp32",
        channels_last: bool = True,
        mode: str | None = None,
    ) -> None:
        super().__init__(model, device, precision, channels_last)
        if mode is None:
            mode = "reduce-overhead" if device.type == "cuda" else "default"
        self.mode = mode
        self._forward = torch.compile(self.module, mode=mode, dynamic=False)

    def __call__(self, x: Tensor) -> Any:
        # inductor's generated code runs under no_grad; inference_mode tensors cannot enter CUDA graphs
        _check_batch(x)
        x = x.to(self.device, torch.float32, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), self._autocast():
            out = self._forward(x)
        return _map_tensors(out, lambda t: t.float().clone() if t.is_floating_point() else t.clone())


def to_onnx(
    module: nn.Module,
    example: Tensor,
    *,
    dynamic_batch: bool = True,
    opset: int = ONNX_OPSET,
    input_names: Sequence[str] = ("input",),
    output_names: Sequence[str] | None = None,
    metadata: dict[str, str] | None = None,
) -> Any:
    """Export ``module`` on ``example`` with the torch.export-based exporter -> ``onnx.ModelProto``.

    H and W are fixed by the example, so every interpolation in the graph gets a constant output
    size (what TensorRT's parser and static-shape runtimes want); the batch axis is dynamic when asked.
    ``metadata`` goes into the model's ``metadata_props`` (the model card travels that way).
    """
    if opset < 17:
        raise ValueError(f"ONNX opset must be >= 17 (LayerNormalization, Resize modes), got {opset}")
    if not onnxruntime_available():
        raise RuntimeUnavailableError("ONNX export needs the onnx extra: pip install 'hrnet[onnx]'")
    import onnx  # noqa: PLC0415 - optional extra (hrnet[onnx])

    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    module = module.eval()
    with torch.no_grad(), quiet_exporter():
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=list(input_names),
            output_names=list(output_names) if output_names else None,
            dynamic_shapes=dynamic_shapes,
            verbose=False,
            optimize=True,
            external_data=False,
        )
    proto = program.model_proto
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto


@contextlib.contextmanager
def quiet_exporter():
    """Silence exporters' progress prints, INFO logs and tracer / deprecation warnings during an export."""

    loggers = [logging.getLogger(n) for n in ("onnx_ir", "onnxscript", "torch.onnx", "torch.export")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def ort_session(model: bytes | str | Path, device: torch.device, threads: int | None = None) -> Any:
    """An onnxruntime session (from the model's bytes or its file) with full graph optimisation and
    ``threads`` (default: this machine's) threads."""
    import onnxruntime as ort  # noqa: PLC0415 - optional extra (hrnet[onnx])

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeUnavailableError("runtime 'onnx' on a GPU needs onnxruntime-gpu (CUDAExecutionProvider)")
        providers.insert(0, "CUDAExecutionProvider")
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=providers)


# ---- the export cache ------------------------------------------------------------------------------
CACHE_ENV = "HRNET_CACHE"
CACHE_FORMAT = 1  # bump when the export recipe changes (fusion, exporter options): old entries stop matching
CACHE_KEY_META = "hrnet.runtime_key"  # metadata entry of a cached export: the digest of its key


def cache_root() -> Path:
    """Where runtimes keep what they build: ``$HRNET_CACHE/runtime``, else ``$XDG_CACHE_HOME/hrnet/runtime``,
    else ``~/.cache/hrnet/runtime``. Deleting the folder is always safe (entries are rebuilt on demand)."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / "runtime"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hrnet" / "runtime"


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of every state-dict entry of ``model``: its name, dtype, shape and raw bytes, in order.

    This names the weights whatever they were loaded from (a file, the hub, or set in Python), so a
    changed value gives another digest; about 0.1 s for W32's 28 M parameters.
    """
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions that change what an export contains or how it runs: torch, onnx, onnxruntime, hrnet."""
    out = {"torch": torch.__version__, "hrnet": __version__}
    for name in ("onnx", "onnxruntime"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = "missing"
    return out


def export_key(
    model: nn.Module,
    size: Sequence[int],
    *,
    device: torch.device | str = "cpu",
    opset: int = ONNX_OPSET,
    digest: str | None = None,
) -> dict[str, Any]:
    """Everything a cached export of ``model`` for (H, W) inputs depends on (see :class:`ExportCache`).

    The weights (:func:`weights_digest`, or ``digest`` when already known), the module's class and a
    digest of its ``repr`` (the layers and their settings), the model card when the module carries one,
    the device type the session runs on, the input (H, W) (the batch axis is dynamic), the opset, the
    recipe's format number and the versions of torch, onnx, onnxruntime and hrnet.
    """
    card = getattr(model, "card", None)
    card_text = json.dumps(card.to_dict(), sort_keys=True) if hasattr(card, "to_dict") else None
    return {
        "format": CACHE_FORMAT,
        "weights": digest or weights_digest(model),
        "module": f"{type(model).__module__}.{type(model).__qualname__}",
        "structure": hashlib.sha256(repr(model).encode()).hexdigest(),
        "card": hashlib.sha256(card_text.encode()).hexdigest() if card_text else None,
        "device": torch.device(device).type,
        "input": [int(size[0]), int(size[1])],
        "dynamic_batch": True,
        "opset": int(opset),
        "versions": package_versions(),
    }


def key_digest(key: Mapping[str, Any]) -> str:
    """The SHA-256 of a key's canonical JSON: the cache entry's file name."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


class ExportCache:
    """ONNX exports on disk: ``<root>/<digest>.onnx`` plus ``<digest>.json`` holding the key in clear.

    Entries are written atomically (:mod:`hrnet.atomic`), so a crash leaves no half file under the final
    name; an entry that does not load, or whose embedded key is not its own, is deleted and rebuilt with
    a warning. Nothing is evicted: the folder grows by one file per model and input size (about 115 MB for
    W32); delete it (or parts) at any time.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()

    def path(self, digest: str) -> Path:
        return self.root / f"{digest}.onnx"

    def __contains__(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def load(self, digest: str, device: torch.device, threads: int | None = None) -> Any | None:
        """The session of a cached export, or None when there is none (a broken entry is removed)."""
        path = self.path(digest)
        if not path.is_file():
            return None
        try:
            sess = ort_session(path, device, threads)
            found = sess.get_modelmeta().custom_metadata_map.get(CACHE_KEY_META)
            if found != digest:
                raise ValueError(f"it holds the export of key {found!r}")
        except RuntimeUnavailableError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure to load a cache entry means: rebuild it
            log.warning("hrnet.runtime: discarding the corrupt cache entry %s (%s); exporting again", path, err)
            path.unlink(missing_ok=True)
            return None
        return sess

    def store(self, digest: str, key: Mapping[str, Any], model_bytes: bytes) -> Path:
        """Write an export and its key (atomically); returns the export's path."""
        path = write_bytes(self.path(digest), model_bytes)
        write_json(path.with_suffix(".json"), dict(key))
        return path


def _as_cache(cache: ExportCache | str | Path | bool | None) -> ExportCache | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        return ExportCache()
    return cache if isinstance(cache, ExportCache) else ExportCache(cache)


class OnnxRunner(InferenceRunner):
    """onnxruntime on the fused module's ONNX export; one session per input (H, W), made on first use.

    Each export is looked up first in ``cache`` (an :class:`ExportCache`, a folder, ``True`` for
    :func:`cache_root`, or ``None`` / ``False`` for none) and written there when made, so only the first
    process ever exports a given model for a given size. With ``reference`` (the eager model) each new
    session is checked once on the first image of its first batch; a mismatch beyond ``tolerance``
    raises (or hands over to ``fallback`` when one is given).
    """

    runtime = "onnx"

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        threads: int | None = None,
        reference: nn.Module | None = None,
        tolerance: float = FP32_TOLERANCE,
        fallback: Callable[[], InferenceRunner] | None = None,
        cache: ExportCache | str | Path | bool | None = True,
    ) -> None:
        super().__init__(device)
        if not onnxruntime_available():
            raise RuntimeUnavailableError("runtime 'onnx' needs onnxruntime: pip install 'hrnet[onnx]'")
        self.model = model
        self._module: nn.Module | None = None
        self._digest: str | None = None
        self.cache = _as_cache(cache)
        self.threads = threads or default_threads()
        self.reference, self.tolerance, self.fallback = reference, tolerance, fallback
        self.sessions: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self._delegate: InferenceRunner | None = None
        self.last_error: float | None = None
        self.exports = 0  # exports this runner made (the others came from the cache)
        self._keys: dict[tuple[int, int], tuple[str, dict[str, Any]]] = {}

    @property
    def module(self) -> nn.Module:
        """The fused CPU copy that is exported (folded only when an export is needed)."""
        if self._module is None:
            self._module = fuse(self.model).cpu()
        return self._module

    def key(self, size: tuple[int, int]) -> tuple[str, dict[str, Any]]:
        """The cache key of this model for (H, W) inputs, and its digest."""
        if size not in self._keys:
            if self._digest is None:
                self._digest = weights_digest(self.model)
            key = export_key(self.model, size, device=self.device, digest=self._digest)
            self._keys[size] = (key_digest(key), key)
        return self._keys[size]

    def is_cached(self, size: tuple[int, int]) -> bool:
        """Whether the cache holds this model's export for (H, W) inputs."""
        return self.cache is not None and self.key(size)[0] in self.cache

    def session(self, size: tuple[int, int]) -> Any:
        """The session for inputs of ``size`` (H, W): kept, loaded from the cache, or exported now."""
        if size in self.sessions:
            self.sessions.move_to_end(size)
            return self.sessions[size]
        check = getattr(self.model, "check_input", None)
        if check is not None:
            check(torch.zeros(1, 3, *size, device=_model_device(self.model)))
        sess = None
        digest, key = self.key(size) if self.cache is not None else (None, None)
        if self.cache is not None and digest is not None:
            sess = self.cache.load(digest, self.device, self.threads)
        if sess is None:
            log.info("hrnet.runtime: exporting the model to ONNX for %dx%d inputs", *size)
            meta = {CACHE_KEY_META: digest} if digest else None
            data = to_onnx(self.module, torch.zeros(2, 3, *size), metadata=meta).SerializeToString()
            self.exports += 1
            if self.cache is not None and digest is not None and key is not None:
                try:
                    self.cache.store(digest, key, data)
                except OSError as err:  # a read-only or full cache folder costs speed, not the run
                    log.warning("hrnet.runtime: cannot write the export cache %s (%s)", self.cache.root, err)
            sess = ort_session(data, self.device, self.threads)
        self.sessions[size] = sess
        if len(self.sessions) > MAX_SESSIONS:
            self.sessions.popitem(last=False)
        return sess

    def _run(self, sess: Any, x: Tensor) -> Any:
        feed = {sess.get_inputs()[0].name: x.detach().to("cpu", torch.float32).contiguous().numpy()}
        outs = [torch.from_numpy(o).to(self.device) for o in sess.run(None, feed)]
        return outs[0] if len(outs) == 1 else outs

    def _verify(self, x: Tensor, out: Any) -> bool:
        """Compare the first image against the eager reference; record the error."""
        assert self.reference is not None
        with torch.inference_mode():
            ref = self.reference(x[:1].to(_model_device(self.reference)))
        first = _map_tensors(out, lambda t: t[:1])
        self.last_error = relative_error(ref, first)
        return self.last_error <= self.tolerance

    def __call__(self, x: Tensor) -> Any:
        if self._delegate is not None:
            return self._delegate(x)
        _check_batch(x)
        size = (int(x.shape[-2]), int(x.shape[-1]))
        new = size not in self.sessions
        out = self._run(self.session(size), x)
        if new and self.reference is not None and len(x) and not self._verify(x, out):
            msg = (
                f"onnxruntime output differs from eager by {self.last_error:.2e} relative "
                f"(tolerance {self.tolerance:.0e}) for {size[0]}x{size[1]} inputs"
            )
            if self.fallback is None:
                raise ValueError(msg)
            log.warning("hrnet.runtime: %s; using the torch runtime instead", msg)
            self._delegate = self.fallback()
            return self._delegate(x)
        return out


class EagerRunner(InferenceRunner):
    """The model itself under ``torch.no_grad`` (the reference every other runtime is checked against)."""

    runtime = "eager"

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        super().__init__(device)
        self.model = model

    def __call__(self, x: Tensor) -> Any:
        _check_batch(x)
        with torch.no_grad():
            return self.model(x.to(self.device))


# ---- auto ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AutoPolicy:
    """The cost model of ``runtime="auto"`` on a CPU (:class:`AutoRunner`), in seconds of a reference
    machine: the 2-core machines of docs/speed.md.

    ``eager_macs_per_s`` is eager's speed there (pose W32 at 256x192, 7.65 GMAC per image: 0.105-0.112 s,
    68-73 GMAC/s; classification and segmentation run slower per MAC, so a higher figure is the cautious
    one). The speeds are each runtime's time per image as a fraction of eager's, on the slow side of what
    the same page measured at batch 16 (torch 0.56-0.66 of eager, onnxruntime 0.49-0.55; at batch 1 up
    to 0.77 and 0.56, but a switch only pays on batches anyway). The setup costs are estimated from the
    model's size with a margin over what the same machines took: folding the BatchNorms (per million
    parameters; W32: 0.6-1.1 s), the weight digest plus loading a cached export into onnxruntime (per
    million parameters; W32: 0.1-0.2 s + 0.4-1 s), and an export (per module plus per million parameters;
    W32: 27-45 s). ``export`` False never exports under ``auto`` (a cached export is still used).

    Only ratios matter: a machine twice as fast runs eager and the setups about twice as fast, and the
    decisions come out the same. On a busy machine the setups suffer less than eager's many small
    operations do, so the estimates err on the side of staying eager.

    A first batch of fewer than ``probe_min_images`` images (counting those announced by
    :meth:`AutoRunner.expect`) runs eager whole: no such job of a model this package makes can pay for a
    setup, and splitting one image off to count costs time (on a busy 2-core machine one image alone
    ran 5x slower per image than a batch of 12).
    """

    eager_macs_per_s: float = 75e9
    probe_min_images: int = 32
    torch_speed: float = 0.7
    onnx_speed: float = 0.55
    fuse_s: float = 0.05
    fuse_s_per_mparam: float = 0.04
    load_s: float = 0.1
    load_s_per_mparam: float = 0.04
    export_s: float = 2.0
    export_s_per_module: float = 0.03
    export_s_per_mparam: float = 0.1
    export: bool = True

    def speed(self, runtime: str) -> float:
        return {"eager": 1.0, "torch": self.torch_speed, "onnx": self.onnx_speed}[runtime]


class AutoRunner(InferenceRunner):
    """Eager first; a faster runtime as soon as the work in hand pays for its setup, never before.

    The first image of each input size runs eager while its convolutions' multiply-adds are counted: that
    gives eager's cost per image in reference seconds (:class:`AutoPolicy`; a small first batch runs
    eager whole and is counted on the way). Before each batch the runner considers, fastest first, a
    cached ONNX export, the ``torch`` runtime and an export of its own, each with the setup cost the
    policy estimates, and switches when both hold:

    * it pays: ``work x (current speed - its speed) >= setup``, where ``work`` is the eager cost of this
      batch (or of the images announced by :meth:`expect`) or, once more has been seen, of everything
      seen so far (a job expected to go on at least as long as it has run);
    * it is safe: the time saved so far against eager, plus this batch's (or the announced images')
      saving, covers the setup, so the job never ends up slower than eager would have been (to the
      accuracy of the estimates).

    Every decision follows from counts (images, multiply-adds, parameters), not from timings, so a busy
    machine does not sway it. One photo (a few crops) stays eager; a folder moves to a cached export or
    to ``torch`` in its first batch; a job that has saved more than an export costs exports once (into
    the cache, where the next process finds it). Each switch is checked against eager on one image
    (``check``). ``used`` maps every input size to the runtime running it now.
    """

    runtime = "auto"

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        *,
        threads: int | None = None,
        check: bool = True,
        tolerance: float = FP32_TOLERANCE,
        policy: AutoPolicy | None = None,
        cache: ExportCache | str | Path | bool | None = True,
    ) -> None:
        super().__init__(device)
        self.model, self.check, self.tolerance = model, check, tolerance
        self.policy = policy or AutoPolicy()
        self.threads = threads
        self.cache = _as_cache(cache)
        self.onnx_ok = device.type == "cpu" and onnxruntime_installed()
        self.used: dict[tuple[int, int], str] = {}
        self.eager_s: dict[tuple[int, int], float] = {}  # eager reference seconds per image, per input size
        self.saved_s = 0.0  # reference seconds saved against eager so far, setups paid (may go negative)
        self.seen_s = 0.0  # eager reference seconds of all the work seen so far
        self.broken: set[str] = set()
        self.cached: dict[tuple[int, int], bool] = {}  # whether the export cache held each size, once looked up
        self._torch: TorchRunner | None = None
        self._onnx: OnnxRunner | None = None
        self.params_m = sum(p.numel() for p in model.parameters()) / 1e6
        self.modules = sum(1 for _ in model.modules())
        self.pending = 0  # images announced by expect() and not run yet

    def expect(self, n: int) -> None:
        """Announce that the next calls will run ``n`` images in all (e.g. every crop of a photo, split
        into network batches): the decision is then made for the whole job at its first batch, so one photo
        is never split into an eager part and a part that paid a setup it could not earn back."""
        self.pending = max(0, int(n))

    # -- the cost model
    def _setup_estimate(self, name: str, size: tuple[int, int], cached: bool | None) -> float:
        """Reference seconds ``name`` needs before its first image (``cached``: None = not looked up yet)."""
        p = self.policy
        fuse_s = p.fuse_s + p.fuse_s_per_mparam * self.params_m
        if name == "torch":
            return 0.0 if self._torch is not None else fuse_s
        if self._onnx is not None and size in self._onnx.sessions:
            return 0.0
        load_s = p.load_s + p.load_s_per_mparam * self.params_m
        if cached is None or cached:
            return load_s
        export_s = p.export_s + p.export_s_per_module * self.modules + p.export_s_per_mparam * self.params_m
        return load_s + fuse_s + export_s

    def _worth(self, name: str, setup: float, now: str, batch_s: float) -> bool:
        gain = self.policy.speed(now) - self.policy.speed(name)
        if gain <= 0:
            return False
        pays = max(batch_s, self.seen_s) * gain >= setup
        safe = self.saved_s + batch_s * (1.0 - self.policy.speed(name)) >= setup
        return pays and safe

    def _choose(self, size: tuple[int, int], n: int) -> tuple[str, float]:
        """The runtime for the next ``n`` images of ``size`` and its setup estimate (0: none to pay)."""
        now = self.used.get(size, "eager")
        batch_s = self.eager_s[size] * n
        if self.onnx_ok and "onnx" not in self.broken and now != "onnx":
            cached = self.cached.get(size)
            if cached is None and self._worth("onnx", self._setup_estimate("onnx", size, None), now, batch_s):
                # the weight digest is paid here, once, and only when a cached export would pay
                cached = self.cached[size] = self._onnx_runner().is_cached(size)
            if cached is not None and (cached or self.policy.export):
                setup = self._setup_estimate("onnx", size, cached)
                if self._worth("onnx", setup, now, batch_s):
                    return "onnx", setup
        setup = self._setup_estimate("torch", size, None)
        if "torch" not in self.broken and self._worth("torch", setup, now, batch_s):
            return "torch", setup
        return now, 0.0

    # -- the runtimes
    def _onnx_runner(self) -> OnnxRunner:
        if self._onnx is None:
            self._onnx = OnnxRunner(self.model, self.device, self.threads, cache=self.cache)
        return self._onnx

    def _eager(self, x: Tensor) -> Any:
        with torch.no_grad():
            return self.model(x.to(self.device))

    def _probe(self, x: Tensor) -> tuple[Any, int]:
        """Eager on ``x``, counting the multiply-adds of one image in its Conv2d and Linear layers."""
        macs = 0

        def count(module: nn.Module, _inputs: tuple, out: Tensor) -> None:
            nonlocal macs
            if isinstance(module, nn.Conv2d):
                macs += module.weight.numel() * out.shape[-1] * out.shape[-2]
            else:  # a Linear layer: once per row of each image
                macs += module.weight.numel() * (out.numel() // max(1, out.shape[-1] * out.shape[0]))

        layers = [m for m in self.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        handles = [m.register_forward_hook(count) for m in layers]
        try:
            out = self._eager(x)
        finally:
            for h in handles:
                h.remove()
        return out, macs

    def _run(self, name: str, x: Tensor) -> Any:
        if name == "eager":
            return self._eager(x)
        if name == "torch":
            if self._torch is None:
                self._torch = TorchRunner(self.model, self.device)
            return self._torch(x)
        runner = self._onnx_runner()
        return runner._run(runner.session((int(x.shape[-2]), int(x.shape[-1]))), x)

    def _switch(self, name: str, size: tuple[int, int], probe: tuple[Tensor, Any] | None, x: Tensor) -> bool:
        """Set ``name`` up for ``size`` and check it against eager on one image: the ``probe`` (an image
        and eager's output, when this batch made one), else the first image of ``x``."""
        image, ref = probe if probe is not None else (x[:1], None)
        try:
            out = self._run(name, image)
        except Exception as err:  # noqa: BLE001 - a runtime that fails to set up is skipped, never fatal here
            log.warning("hrnet.runtime: auto: runtime %r is not usable here (%s); not used", name, err)
            self.broken.add(name)
            return False
        if self.check:
            if ref is None:
                ref = self._eager(image)
            err = relative_error(ref, out)
            if err > self.tolerance:
                log.warning(
                    "hrnet.runtime: auto: runtime %r differs from eager by %.2e relative (tolerance %.0e); not used",
                    name,
                    err,
                    self.tolerance,
                )
                self.broken.add(name)
                return False
        log.info("hrnet.runtime: auto: %s for %dx%d inputs from here on", name, *size)
        self.used[size] = name
        return True

    def __call__(self, x: Tensor) -> Any:
        _check_batch(x)
        size = (int(x.shape[-2]), int(x.shape[-1]))
        n = len(x)
        if n == 0:
            return self._eager(x)
        parts: list[Any] = []
        probe: tuple[Tensor, Any] | None = None
        if size not in self.eager_s:  # the first image(s) of a new size: eager, the multiply-adds counted
            self.used.setdefault(size, "eager")
            k = 1 if max(n, self.pending) >= self.policy.probe_min_images else n
            ref, macs = self._probe(x[:k])
            self.eager_s[size] = max(macs, 1) / self.policy.eager_macs_per_s
            parts.append(ref)
            probe = (x[:1], _map_tensors(ref, lambda t: t[:1]))
            x = x[k:]
        if len(x):
            name, setup = self._choose(size, max(len(x), self.pending - (n - len(x))))
            if name != self.used[size]:
                if self._switch(name, size, probe, x):
                    self.saved_s -= setup
                else:
                    name = self.used[size]
            parts.append(self._run(name, x))
            self.saved_s += self.eager_s[size] * len(x) * (1.0 - self.policy.speed(name))
        self.seen_s += self.eager_s[size] * n
        self.pending = max(0, self.pending - n)
        return parts[0] if len(parts) == 1 else _cat_outputs(parts)


def _cat_outputs(parts: list[Any]) -> Any:
    """Concatenate along the batch the outputs of consecutive slices of one batch (tensors or lists)."""
    first = parts[0]
    if isinstance(first, Tensor):
        return torch.cat([p.to(first.device).float() if p.is_floating_point() else p for p in parts])
    if isinstance(first, Mapping):
        return {k: _cat_outputs([p[k] for p in parts]) for k in first}
    return type(first)(_cat_outputs([p[i] for p in parts]) for i in range(len(first)))


def fastest_runtime(device: str | torch.device) -> str:
    """The runtime that is fastest per image once set up (what ``auto`` moves to on long jobs): ``onnx``
    on a CPU with the ``onnx`` extra installed, else ``torch`` (benchmarks/bench_inference.py)."""
    if torch.device(device).type == "cpu" and onnxruntime_available():
        return "onnx"
    return "torch"


def optimize_for_inference(
    model: nn.Module,
    runtime: str = "auto",
    input_shape: Sequence[int] | None = None,
    *,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    threads: int | None = None,
    check: bool | None = None,
    tolerance: float | None = None,
    compile_mode: str | None = None,
    cache: ExportCache | str | Path | bool | None = True,
    policy: AutoPolicy | None = None,
) -> InferenceRunner:
    """A callable with the outputs of ``model(x)`` on (N, 3, H, W) batches, through the fastest path asked for.

    ``model`` must be in eval mode and is not modified (the runners work on a fused copy). ``runtime`` is
    one of :data:`RUNTIMES` (see the module docstring). ``input_shape`` (B, 3, H, W) is the shape you will
    feed: when given, ``onnx`` exports (or loads its cached export) and ``compile`` compiles for it now
    (not on the first call), and ``check`` runs there; ``auto`` on a CPU decides per batch and ignores it.
    ``device`` defaults to the model's. ``precision`` ``bf16`` / ``fp16`` autocasts the torch paths
    (outputs come back as float32; not for ``onnx``). ``threads`` sets onnxruntime's thread count
    (default: the cores this process may use). ``check`` (default: on for ``auto`` only) compares the
    runtime with eager on one image and requires a relative error <= ``tolerance`` (default 1e-4 in fp32,
    1e-2 with bf16 / fp16). ``cache`` is where ONNX exports are kept (:class:`ExportCache`; default
    :func:`cache_root`, ``False`` for none); ``policy`` the cost model of ``auto`` (:class:`AutoPolicy`).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
    if model.training:
        raise ValueError("optimize_for_inference() needs a model in eval mode; call model.eval() first")
    shape: tuple[int, ...] | None = None
    if input_shape is not None:
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != 4 or shape[1] != 3 or min(shape) < 1:
            raise ValueError(f"input_shape must be (B, 3, H, W), got {tuple(input_shape)}")
    dev = torch.device(device) if device is not None else _model_device(model)
    check = runtime == "auto" if check is None else check
    if precision != "fp32" and runtime in ("onnx", "eager"):
        raise ValueError(f"precision applies to the torch runtimes; the {runtime} runtime runs in fp32")
    if tolerance is None:
        tolerance = FP32_TOLERANCE if precision == "fp32" else 1e-2
    if runtime == "eager":
        if _model_device(model) != dev:
            raise ValueError(f"runtime 'eager' runs the model where it is ({_model_device(model)}), not on {dev}")
        return EagerRunner(model, dev)
    if runtime == "auto" and dev.type == "cpu" and precision == "fp32":
        if _model_device(model) != dev:
            model = copy.deepcopy(model).to(dev).eval()
        return AutoRunner(model, dev, threads=threads, check=check, tolerance=tolerance, policy=policy, cache=cache)
    name = "torch" if runtime == "auto" else runtime
    reference = None
    if check:  # the user's model itself, unless it lives on another device (never move the caller's model)
        reference = model if _model_device(model) == dev else copy.deepcopy(model).to(dev).eval()
    if name == "onnx":
        runner: InferenceRunner = OnnxRunner(model, dev, threads, reference, tolerance, cache=cache)
    elif name == "compile":
        runner = CompileRunner(model, dev, precision, mode=compile_mode)
    else:
        runner = TorchRunner(model, dev, precision)
    if shape is not None:
        try:
            _warm_and_check(runner, reference, shape, tolerance, dev)
        except (RuntimeUnavailableError, _CheckFailed) as err:
            raise ValueError(str(err)) from err
    log.info("hrnet.runtime: using %s on %s", runner.runtime, dev)
    return runner


class _CheckFailed(RuntimeUnavailableError):
    """A runtime gave outputs outside the tolerance."""


def _warm_and_check(
    runner: InferenceRunner, reference: nn.Module | None, shape: tuple[int, ...], tolerance: float, device: torch.device
) -> None:
    """Run the runner once on ``shape`` (export / compile now) and, with a reference, compare one image."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).to(device)
    if isinstance(runner, OnnxRunner):
        # make this size's session now and check it here (the runner checks only sessions it makes itself)
        out = runner._run(runner.session((shape[2], shape[3])), x)
    else:
        out = runner(x)
    if reference is None:
        return
    with torch.inference_mode():
        ref = reference(x[:1])
    err = relative_error(ref, _map_tensors(out, lambda t: t[:1]))
    if err > tolerance:
        raise _CheckFailed(
            f"runtime {runner.runtime!r} differs from eager by {err:.2e} relative (tolerance {tolerance:.0e})"
        )


FACADE_RUNTIMES = RUNTIMES  # the facades' name for the same table


def facade_forward(
    model: nn.Module, runtime: str, input_shape: Sequence[int] | None = None, device: str | torch.device | None = None
) -> Callable[[Tensor], Any]:
    """What a facade calls instead of ``model(x)``: ``"eager"`` is the model itself; the other names go
    through :func:`optimize_for_inference` (``auto``: see :class:`AutoRunner`)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if runtime == "eager":
        return model
    return optimize_for_inference(model, runtime, input_shape, device=device)
