"""Fast inference behind one call: ``optimize_for_inference(model, runtime=...)`` -> a callable like ``model``.

HRNet is slower than its FLOPs suggest in eager PyTorch: hundreds of small convs on four streams, a
BatchNorm after each, and upsample + add in every fusion. The runtimes here remove that overhead in
different ways, and all of them return what ``model(x)`` returns on an (N, 3, H, W) batch:

- ``torch``: BatchNorm folded into the convs (:func:`hrnet.models.fuse.fuse`), channels_last weights and
  inputs, ``torch.inference_mode``. No extra dependency, any input size.
- ``compile``: the same module through ``torch.compile`` (CUDA graphs on a GPU); compiles per input shape.
- ``onnx``: the fused module exported to ONNX (opset 18, dynamic batch, static H x W so every resize has a
  constant size) and run by onnxruntime with the machine's thread count. One session per input size,
  made on first use. Needs the ``onnx`` extra.
- ``auto``: the fastest of these that is installed, checked against eager on this device. On a CPU that
  is ``onnx`` (pose W32 on 2 cores: 1.8x eager at batch 1, 2.0x at batch 16; see docs/speed.md), else
  ``torch``; on a GPU ``torch``. A runtime whose output differs from eager by more than ``tolerance``
  (relative to the largest output) is dropped for the next one, with a warning.

This module imports no task package: the task facades call it with their own model and crop size.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hrnet.models.fuse import fuse

log = logging.getLogger("hrnet")

RUNTIMES = ("auto", "torch", "compile", "onnx")
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
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


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
    import onnx

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
    import io
    import warnings

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


def ort_session(model_bytes: bytes, device: torch.device, threads: int | None = None) -> Any:
    """An onnxruntime session with full graph optimisation and ``threads`` (default: this machine's) threads."""
    import onnxruntime as ort

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
    return ort.InferenceSession(model_bytes, options, providers=providers)


class OnnxRunner(InferenceRunner):
    """onnxruntime on the fused module's ONNX export; one session per input (H, W), made on first use.

    With ``reference`` (the eager model) each new session is checked once on the first image of its first
    batch; a mismatch beyond ``tolerance`` raises (or, in ``auto`` mode, hands over to ``fallback``).
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
    ) -> None:
        super().__init__(device)
        if not onnxruntime_available():
            raise RuntimeUnavailableError("runtime 'onnx' needs onnxruntime: pip install 'hrnet[onnx]'")
        self.module = fuse(model).cpu()
        self.threads = threads or default_threads()
        self.reference, self.tolerance, self.fallback = reference, tolerance, fallback
        self.sessions: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self._delegate: InferenceRunner | None = None
        self.last_error: float | None = None

    def session(self, size: tuple[int, int]) -> Any:
        """The session for inputs of ``size`` (H, W), exporting the module for that size when new."""
        if size in self.sessions:
            self.sessions.move_to_end(size)
            return self.sessions[size]
        example = torch.zeros(2, 3, *size)
        check = getattr(self.module, "check_input", None)
        if check is not None:
            check(example)
        log.info("hrnet.runtime: exporting the model to ONNX for %dx%d inputs", *size)
        proto = to_onnx(self.module, example)
        sess = ort_session(proto.SerializeToString(), self.device, self.threads)
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


def _resolve_auto(device: torch.device) -> list[str]:
    """Candidate runtimes for ``auto``, fastest first, as measured by benchmarks/bench_inference.py."""
    if device.type == "cpu" and onnxruntime_available():
        return ["onnx", "torch"]
    return ["torch"]


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
) -> InferenceRunner:
    """A callable with the outputs of ``model(x)`` on (N, 3, H, W) batches, through the fastest path asked for.

    ``model`` must be in eval mode and is not modified (the runners work on a fused copy). ``runtime`` is
    one of :data:`RUNTIMES` (see the module docstring). ``input_shape`` (B, 3, H, W) is the shape you will
    feed: when given, ``onnx`` exports and ``compile`` compiles for it now (not on the first call), and
    ``check`` runs there. ``device`` defaults to the model's. ``precision`` ``bf16`` / ``fp16`` autocasts
    the torch paths (outputs come back as float32; not for ``onnx``). ``threads`` sets onnxruntime's
    thread count (default: the cores this process may use). ``check`` (default: on for ``auto`` only)
    compares the runtime with eager on one random image and requires a relative error <= ``tolerance``
    (default 1e-4 in fp32, 1e-2 with bf16 / fp16).
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
    candidates = _resolve_auto(dev) if runtime == "auto" else [runtime]
    if runtime == "auto" and precision != "fp32":
        candidates = [c for c in candidates if c != "onnx"] or ["torch"]
    if precision != "fp32" and runtime == "onnx":
        raise ValueError("precision applies to the torch runtimes; the onnx runtime runs in fp32")
    if tolerance is None:
        tolerance = FP32_TOLERANCE if precision == "fp32" else 1e-2
    reference = None
    if check:  # the user's model itself, unless it lives on another device (never move the caller's model)
        reference = model if _model_device(model) == dev else copy.deepcopy(model).to(dev).eval()

    def build(name: str, fallback: Callable[[], InferenceRunner] | None) -> InferenceRunner:
        if name == "onnx":
            return OnnxRunner(model, dev, threads, reference, tolerance, fallback)
        if name == "compile":
            return CompileRunner(model, dev, precision, mode=compile_mode)
        return TorchRunner(model, dev, precision)

    last_err: Exception | None = None
    for i, name in enumerate(candidates):
        rest = candidates[i + 1 :]
        fallback = (lambda n=rest[0]: build(n, None)) if rest else None
        try:
            runner = build(name, fallback)
            if shape is not None:
                _warm_and_check(runner, reference, shape, tolerance, dev)
            log.info("hrnet.runtime: using %s on %s", runner.runtime, dev)
            return runner
        except (RuntimeUnavailableError, _CheckFailed) as err:
            if not rest:
                raise ValueError(str(err)) from err
            log.warning("hrnet.runtime: %s; trying %s", err, rest[0])
            last_err = err
    raise ValueError(f"no runtime available: {last_err}")  # pragma: no cover - candidates never empty


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


FACADE_RUNTIMES = ("eager", *RUNTIMES)


def facade_forward(
    model: nn.Module, runtime: str, input_shape: Sequence[int] | None = None, device: str | torch.device | None = None
) -> Callable[[Tensor], Any]:
    """What a facade calls instead of ``model(x)``: ``"eager"`` is the model itself; the other names go
    through :func:`optimize_for_inference` (``auto``: the fastest runtime installed and measured correct)."""
    if runtime not in FACADE_RUNTIMES:
        raise ValueError(f"runtime must be one of {FACADE_RUNTIMES}, got {runtime!r}")
    if runtime == "eager":
        return model
    return optimize_for_inference(model, runtime, input_shape, device=device)
