"""Inference speed of every path, side by side in one run with the same weights: eager, fused, runtimes.

    python benchmarks/bench_inference.py            # full CPU table (about 10-15 min on 2 cores)
    python benchmarks/bench_inference.py --quick    # pose W32 + cls W18, fewer paths and repeats (~3 min)
    python benchmarks/bench_inference.py --device cuda   # the GPU section (bf16 / fp16, compile + CUDA graphs)

For each model it prints ms/img and img/s at each batch size, the peak memory while running (CPU: growth
of the process RSS during the path's first call; GPU: ``max_memory_allocated``), the max error against
eager (max |y - y_eager| / max |y_eager|) and the achieved GFLOP/s (2 x multiply-adds / time) against an
fp32 matmul peak measured first on the same machine. Repetitions of the paths are interleaved
(path A, B, C, A, B, C, ...) so a noisy neighbour slows all paths alike; the median is reported.
Then the end-to-end rows (pose predict on real images with given boxes, seg predict) and one training
step per task. Never run by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import hrnet
from hrnet.models.fuse import fuse
from hrnet.runtime import (
    CompileRunner,
    OnnxRunner,
    TorchRunner,
    default_threads,
    fastest_runtime,
    onnxruntime_available,
    optimize_for_inference,
    relative_error,
    to_onnx,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass
class Spec:
    """One benchmarked model: zoo name, input (H, W), batch sizes, and paths to skip by default."""

    key: str
    name: str
    size: tuple[int, int]
    batches: tuple[int, ...]
    skip: tuple[str, ...] = ()
    repeats: int | None = None


SPECS = {
    "pose_w32": Spec("pose_w32", "pose_hrnet_w32", (256, 192), (1, 16)),
    "seg_w48": Spec(
        "seg_w48", "seg_hrnet_w48", (1024, 2048), (1,), skip=("fused", "torchscript", "compile"), repeats=1
    ),
    "seg_w18s": Spec("seg_w18s", "seg_hrnet_w18_small_v1", (1024, 2048), (1,)),
    "cls_w18": Spec("cls_w18", "hrnet_w18", (224, 224), (1, 16)),
}
CPU_PATHS = ("eager", "fused", "fused+cl", "compile", "torchscript", "onnxruntime", "openvino", "openvino bf16")
QUICK_PATHS = ("eager", "fused+cl", "onnxruntime", "openvino")
GPU_PATHS = ("eager", "fused+cl", "bf16", "fp16", "compile+cudagraphs", "compile+cudagraphs fp16", "onnxruntime")


# ---- measurement helpers --------------------------------------------------------------------------
def machine_line(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [
        f"CPU {cpu}, {default_threads()} cores usable",
        f"torch {torch.__version__}",
        f"torch threads {torch.get_num_threads()}",
    ]
    if onnxruntime_available():
        import onnxruntime

        parts.append(f"onnxruntime {onnxruntime.__version__}")
    try:
        import openvino

        parts.append(f"openvino {openvino.__version__.split('-')[0]}")
    except ImportError:
        pass
    if device.type == "cuda":
        parts.insert(0, f"GPU {torch.cuda.get_device_name(device)}")
    parts.append("load average " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    return "; ".join(parts)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an n x n fp32 matmul on this device: the roof the model paths are compared with."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times) / 1e9


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak memory growth while the block runs: RSS sampled every 2 ms on CPU, the allocator's peak on GPU."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak, self._stop = device, 0, threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = self.peak = _rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            sync(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss())

    @property
    def mib(self) -> float:
        return max(0, self.peak - self.base) / 2**20


# ---- the paths ------------------------------------------------------------------------------------
def _openvino(proto: Any, threads: int, precision: str = "f32") -> Callable[[torch.Tensor], Any]:
    """OpenVINO on the ONNX export; ``f32`` pins fp32 (by default it picks bf16 on CPUs that have it)."""
    import tempfile

    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(proto.SerializeToString())
        compiled = ov.Core().compile_model(
            ov.convert_model(str(path)),
            "CPU",
            {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision},
        )

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(compiled(x.numpy())[0]))

    return run


def _torchscript(model: nn.Module, example: torch.Tensor) -> Callable[[torch.Tensor], Any]:
    from hrnet.runtime import quiet_exporter

    with torch.no_grad(), quiet_exporter():
        scripted = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, example)))

    def run(x: torch.Tensor) -> Any:
        with torch.no_grad():
            return scripted(x)

    return run


def _inference(fn: Callable[[torch.Tensor], Any]) -> Callable[[torch.Tensor], Any]:
    def run(x: torch.Tensor) -> Any:
        with torch.inference_mode():
            return fn(x)

    return run


def build_paths(
    model: nn.Module, spec: Spec, device: torch.device, wanted: list[str]
) -> tuple[dict[str, Callable[[torch.Tensor], Any]], dict[str, float], str]:
    """Callables per path name (setup seconds alongside) and the name of the path ``auto`` resolves to."""
    paths: dict[str, Callable] = {}
    setup: dict[str, float] = {}
    example = torch.zeros(1, 3, *spec.size, device=device)
    threads = default_threads()
    protos: list[Any] = []

    def onnx_proto() -> Any:
        """One export of the fused model, shared by the OpenVINO rows (onnxruntime's runner makes its own)."""
        if not protos:
            protos.append(to_onnx(fuse(model).cpu(), torch.zeros(2, 3, *spec.size)))
        return protos[0]

    def add(name: str, make: Callable[[], Callable]) -> None:
        if name not in wanted or name in spec.skip:
            return
        t = time.perf_counter()
        try:
            paths[name] = make()
        except Exception as err:  # noqa: BLE001 - an unavailable path is a table note, not a failure
            print(f"  [{spec.key}] {name}: unavailable ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
            return
        setup[name] = time.perf_counter() - t

    add("eager", lambda: _inference(model))
    add("fused", lambda: _inference(fuse(model)))
    add("fused+cl", lambda: TorchRunner(model, device))
    if device.type == "cuda":
        add("bf16", lambda: TorchRunner(model, device, precision="bf16"))
        add("fp16", lambda: TorchRunner(model, device, precision="fp16"))
        add("compile+cudagraphs", lambda: CompileRunner(model, device))
        add("compile+cudagraphs fp16", lambda: CompileRunner(model, device, precision="fp16"))
    else:
        add("compile", lambda: CompileRunner(model, device))
        add("torchscript", lambda: _torchscript(model, example))
    add("onnxruntime", lambda: OnnxRunner(model, device, threads, cache=False))  # setup = the export
    if device.type == "cpu":
        add("openvino", lambda: _openvino(onnx_proto(), threads))
        add("openvino bf16", lambda: _openvino(onnx_proto(), threads, "bf16"))
    # auto starts eager and moves to the fastest runtime once a job pays for it (bench_default_runtime.py)
    auto_path = {"onnx": "onnxruntime", "torch": "fused+cl"}[fastest_runtime(device)]
    return paths, setup, auto_path


@dataclass
class Row:
    path: str
    ms: dict[int, float] = field(default_factory=dict)
    mem: dict[int, float] = field(default_factory=dict)
    err: float = 0.0


def time_paths(
    paths: dict[str, Callable], x: torch.Tensor, repeats: int, device: torch.device, ref: Any
) -> dict[str, tuple[float, float, float]]:
    """(median seconds, peak MiB, error vs ``ref``) per path, repetitions interleaved across paths."""
    mem, err, times = {}, {}, {name: [] for name in paths}
    for name, fn in list(paths.items()):  # warm-up: first call per path (compiles / allocates), memory, error
        try:
            with PeakMemory(device) as pm:
                out = fn(x)
                sync(device)
        except Exception as err_:  # noqa: BLE001 - e.g. onnxruntime without its CUDA provider
            print(f"  {name}: failed on its first call ({type(err_).__name__}: {str(err_).splitlines()[0][:120]})")
            del paths[name], times[name]
            continue
        mem[name], err[name] = pm.mib, relative_error(ref, out)
    for _ in range(repeats):
        for name, fn in paths.items():
            sync(device)
            t = time.perf_counter()
            fn(x)
            sync(device)
            times[name].append(time.perf_counter() - t)
    return {name: (statistics.median(times[name]), mem[name], err[name]) for name in paths}


def bench_model(spec: Spec, device: torch.device, wanted: list[str], repeats: int, peak: float) -> None:
    torch.manual_seed(0)
    model = hrnet.create_model(spec.name).eval().to(device)
    macs = hrnet.model_complexity(model, spec.size)["macs"]
    paths, setup, auto_path = build_paths(model, spec, device, wanted)
    reps = spec.repeats or repeats
    results: dict[int, dict[str, tuple[float, float, float]]] = {}
    for b in spec.batches:
        x = torch.randn(b, 3, *spec.size, generator=torch.Generator().manual_seed(b)).to(device)
        with torch.inference_mode():
            ref = model(x)
        results[b] = time_paths(paths, x, reps, device, ref)
    gflop = 2 * macs / 1e9
    print(f"\n### {spec.name} {spec.size[0]}x{spec.size[1]} ({gflop:.1f} GFLOP/img, median of {reps})\n")
    head = "| path |" + "".join(f" ms/img b{b} | img/s b{b} |" for b in spec.batches)
    head += f" peak MiB b{spec.batches[-1]} | max err vs eager | GFLOP/s (% of peak) | setup s | vs eager |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    eager = results[spec.batches[-1]].get("eager")
    for name in paths:
        cells = []
        for b in spec.batches:
            sec = results[b][name][0]
            cells += [f"{sec / b * 1e3:.1f}", f"{b / sec:.1f}"]
        sec, mib, err = results[spec.batches[-1]][name]
        rate = gflop * spec.batches[-1] / sec
        speedup = f"{eager[0] / sec:.2f}x" if eager else "-"
        label = f"{name} (auto)" if name == auto_path else name
        print(
            f"| {label} | " + " | ".join(cells) + f" | {mib:.0f} | {err:.1e} | {rate:.0f} ({100 * rate / peak:.0f} %)"
            f" | {setup[name]:.1f} | {speedup} |"
        )
    if len(spec.batches) > 1 and "eager" in paths:
        b1 = spec.batches[0]
        ratios = ", ".join(f"{n} {results[b1]['eager'][0] / results[b1][n][0]:.2f}x" for n in paths if n != "eager")
        print(f"\nbatch {b1} speed-up vs eager: {ratios}")


# ---- end to end -----------------------------------------------------------------------------------
def bench_pose_e2e(device: torch.device, runtime: str, repeats: int) -> None:
    """People/s of the predict pipeline on real COCO images with their annotated boxes, against model-only."""
    from hrnet.io import read_image
    from hrnet.pose.codec import HeatmapCodec, flip_back
    from hrnet.pose.inference import crop_people
    from hrnet.pose.keypoints import load_keypoint_set

    root = DATA / "coco_kpt_sample"
    if not root.is_dir():
        print(f"\n(pose end-to-end skipped: {root} not found)")
        return
    ann = json.loads((root / "person_keypoints_sample.json").read_text())
    boxes: dict[int, list] = {}
    for a in ann["annotations"]:
        x, y, w, h = a["bbox"]
        boxes.setdefault(a["image_id"], []).append([x, y, x + w, y + h])
    files = [
        (root / "images" / im["file_name"], np.array(boxes[im["id"]])) for im in ann["images"] if im["id"] in boxes
    ]
    people = sum(len(b) for _, b in files)
    ks = load_keypoint_set("coco")
    codec = HeatmapCodec((192, 256))
    torch.manual_seed(0)
    model = hrnet.create_model("pose_hrnet_w32").eval().to(device)
    runner = optimize_for_inference(model, runtime, (16, 3, 256, 192), device=device)

    def pipeline() -> float:
        """Decode, crop, model + flipped model in one batch, flip back, decode; returns model-only seconds."""
        model_s = 0.0
        for path, b in files:
            crops, centers, scales = crop_people(read_image(path), b, codec.input_size)
            t = time.perf_counter()
            both = runner(torch.cat([crops, crops.flip(3)]))
            sync(device)
            model_s += time.perf_counter() - t
            n = len(crops)
            hm = 0.5 * (both[:n] + flip_back(both[n:], ks.flip_pairs))
            codec.decode(hm, centers, scales)
        return model_s

    pipeline()
    totals, models = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        models.append(pipeline())
        totals.append(time.perf_counter() - t)
    total, model_only = statistics.median(totals), statistics.median(models)
    print(
        f"\n### end to end: pose predict, {len(files)} COCO images, {people} given boxes, flip test, "
        f"runtime {runner.runtime}\n"
    )
    print("| pipeline | people/s | model-only people/s | end-to-end / model-only |\n|---|---|---|---|")
    print(
        f"| read + crop + model (x2 flip) + flip back + decode | {people / total:.1f} | {people / model_only:.1f} | "
        f"{model_only / total:.2f} |"
    )


def bench_seg_e2e(device: torch.device, runtime: str, name: str, repeats: int) -> None:
    """Frames/s of whole-image seg predict (read, normalise, model, upsample, argmax) on Cityscapes frames."""
    import torch.nn.functional as F

    from hrnet.io import read_image
    from hrnet.segmentation.transforms import to_tensor

    files = sorted((DATA / "cityscapes_sample" / "unlabelled_fullres").glob("*.png"))  # the full-size frame
    if not files:
        print("\n(seg end-to-end skipped: no Cityscapes frames found)")
        return
    torch.manual_seed(0)
    model = hrnet.create_model(name).eval().to(device)
    h, w = read_image(files[0]).shape[:2]
    runner = optimize_for_inference(model, runtime, (1, 3, h, w), device=device)

    def frame(path: Path) -> float:
        x = to_tensor(read_image(path)).unsqueeze(0)
        t = time.perf_counter()
        logits = runner(x)
        sync(device)
        m = time.perf_counter() - t
        F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False).argmax(1).cpu().numpy()
        return m

    frame(files[0])
    totals, models = [], []
    for _ in range(repeats):
        for path in files:
            t = time.perf_counter()
            models.append(frame(path))
            totals.append(time.perf_counter() - t)
    total, model_only = statistics.median(totals), statistics.median(models)
    print(f"\n### end to end: seg predict {name}, {len(files)} Cityscapes frame(s) {h}x{w}, runtime {runner.runtime}\n")
    print("| pipeline | frames/s | model-only frames/s | end-to-end / model-only |\n|---|---|---|---|")
    print(
        f"| read + normalise + model + upsample + argmax | {1 / total:.2f} | {1 / model_only:.2f} | "
        f"{model_only / total:.2f} |"
    )


# ---- training step --------------------------------------------------------------------------------
def bench_train(device: torch.device, quick: bool) -> None:
    """Seconds per SGD step (forward, loss, backward, update) per task, at small CPU-sized batches."""
    from hrnet.pose.loss import JointsMSELoss

    cases = [
        ("pose_hrnet_w32", (256, 192), 2 if quick else 8, "pose"),
        ("seg_hrnet_w18_small_v1" if quick else "seg_hrnet_w48", (512, 1024), 2, "seg"),
        ("hrnet_w18", (224, 224), 4 if quick else 16, "cls"),
    ]
    print("\n### training step (SGD, fp32)\n\n| model | input | batch | s/step | img/s |\n|---|---|---|---|---|")
    for name, size, batch, task in cases:
        torch.manual_seed(0)
        model = hrnet.create_model(name).to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        x = torch.randn(batch, 3, *size, device=device)
        with torch.no_grad():
            out = model(x[:1])
        if task == "pose":
            target = torch.rand(batch, *out.shape[1:], device=device)

            def loss_fn(y: torch.Tensor, t: torch.Tensor = target) -> torch.Tensor:
                return JointsMSELoss()(y, t)
        elif task == "seg":
            labels = torch.randint(0, out.shape[1], (batch, *out.shape[-2:]), device=device)

            def loss_fn(y: torch.Tensor, t: torch.Tensor = labels) -> torch.Tensor:
                return nn.functional.cross_entropy(y, t)
        else:
            labels = torch.randint(0, out.shape[1], (batch,), device=device)

            def loss_fn(y: torch.Tensor, t: torch.Tensor = labels) -> torch.Tensor:
                return nn.functional.cross_entropy(y, t)

        times = []
        for i in range(2 if quick else 3):
            sync(device)
            t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x)).backward()
            opt.step()
            sync(device)
            if i:
                times.append(time.perf_counter() - t)
        sec = statistics.median(times)
        print(f"| {name} | {size[0]}x{size[1]} | {batch} | {sec:.2f} | {batch / sec:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the GPU section)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="pose W32 + cls W18, paths eager / fused+cl / onnxruntime / openvino, fewer repeats",
    )
    parser.add_argument("--models", nargs="+", choices=list(SPECS), default=None)
    parser.add_argument("--paths", nargs="+", default=None, help="subset of the paths")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per path (default 3, quick 2)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["models", "e2e", "train"], help="sections to skip")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_inference: --device cuda but CUDA is not available")
    repeats = args.repeats or (2 if args.quick else 3)
    all_paths = GPU_PATHS if device.type == "cuda" else CPU_PATHS
    wanted = args.paths or [p for p in all_paths if not args.quick or p in QUICK_PATHS or device.type == "cuda"]
    specs = [SPECS[k] for k in (args.models or (["pose_w32", "cls_w18"] if args.quick else list(SPECS)))]
    if device.type == "cuda":  # batch 32 is the GPU target's batch
        specs = [
            Spec(s.key, s.name, s.size, (1, 32) if s.batches != (1,) else s.batches, s.skip, s.repeats) for s in specs
        ]
    print(f"machine: {machine_line(device)}")
    peak = matmul_peak(device)
    print(f"fp32 2048x2048 matmul peak: {peak:.0f} GFLOP/s")
    t0 = time.perf_counter()
    if "models" not in args.skip:
        for spec in specs:
            if args.quick:
                spec = Spec(spec.key, spec.name, spec.size, spec.batches, spec.skip, spec.repeats or repeats)
            bench_model(spec, device, wanted, repeats, peak)
    if "e2e" not in args.skip:
        bench_pose_e2e(device, fastest_runtime(device), repeats)
        bench_seg_e2e(
            device,
            fastest_runtime(device),
            "seg_hrnet_w18_small_v1" if args.quick else "seg_hrnet_w48",
            1 if not args.quick else repeats,
        )
    if "train" not in args.skip:
        bench_train(device, args.quick)
    print(
        f"\n(total {time.perf_counter() - t0:.0f} s; load average now "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
        + ")"
    )


if __name__ == "__main__":
    main()
