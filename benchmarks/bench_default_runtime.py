"""The default runtime end to end: ``hrnet pose predict`` on real photos, cold and warm, against eager.

    python benchmarks/bench_default_runtime.py                 # W32, 1 photo and a folder of 16, 2 rounds
    python benchmarks/bench_default_runtime.py --rounds 3 --cases eager "auto cold" "auto warm" torch

Each measurement is one ``hrnet pose predict`` process, as a user runs it: the real COCO photos of
``shared/data/coco_kpt_sample`` with the boxes of its detection results file (boxes scored below 0.5
left out, as the command does), flip test on, W32 with random weights saved once to a file (the speed
does not depend on the values, but the export cache is keyed by them: a fresh random model per process
would never find its export). The folder is the four photos copied four times (16 photos, 72 people). Cases:

* ``eager`` -- ``--runtime eager``, the reference;
* ``auto cold`` -- the default with an empty export cache (``HRNET_CACHE`` is a folder of this script);
* ``auto warm`` -- the default with the export of this model and crop size in the cache;
* ``onnx cold`` / ``onnx warm`` -- ``--runtime onnx`` exporting (and caching) / loading the export;
* ``torch`` -- ``--runtime torch`` (BatchNorm folding + channels_last, no export).

The first three are the default ``--cases``.

The table gives the wall time of the whole process, the time inside ``main()`` (model built, photos
read, network, pictures and results.json written: the imports excluded) and the ratio of eager's time
to the case's, as medians over the rounds; the rounds interleave the cases, each round in another
order, so a noisy neighbour slows all alike. It also says which runtime ``auto`` ended on (from its
log). Never run by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from hrnet import create_model, save_weights

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_kpt_sample"
BOXES = DATA / "person_detection_results_AP_H_56_sample.json"
CASES = ("eager", "auto cold", "auto warm", "onnx cold", "onnx warm", "torch")
DEFAULT_CASES = ("eager", "auto cold", "auto warm")
JOBS = ("1 photo", "16 photos")
ONE_PHOTO = "000000196141.jpg"  # 6 people above the 0.5 score threshold (12 crops with the flip)

# a child process: imports timed apart from main(); prints one JSON line last
CHILD = """
import json, sys, time
t0 = time.perf_counter()
from hrnet.cli import main
t1 = time.perf_counter()
rc = main(sys.argv[1:])
t2 = time.perf_counter()
print(json.dumps({"rc": rc, "imports_s": t1 - t0, "main_s": t2 - t1}))
"""


def run_case(argv: list[str], cache: Path) -> dict:
    """One ``hrnet pose predict`` process; its wall time, main() time and the runtime auto chose."""
    env = {**os.environ, "HRNET_CACHE": str(cache)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, *argv], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    chosen = [ln.split("auto: ", 1)[1] for ln in proc.stderr.splitlines() if "hrnet.runtime: auto: " in ln]
    return {**out, "wall_s": wall, "auto": "; ".join(chosen) or "eager throughout"}


def make_folder(root: Path, copies: int = 4) -> Path:
    """The four photos, ``copies`` times, in sub-folders (names keep their COCO ids for the boxes)."""
    folder = root / "photos16"
    for i in range(copies):
        sub = folder / f"copy{i}"
        sub.mkdir(parents=True, exist_ok=True)
        for image in sorted((DATA / "images").glob("*.jpg")):
            shutil.copy(image, sub / image.name)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pose_hrnet_w32")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), choices=CASES)
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=JOBS)
    args = parser.parse_args()
    if not BOXES.is_file():
        raise SystemExit(f"{BOXES}: the shared COCO sample is needed")
    work = Path(tempfile.mkdtemp(prefix="hrnet-bench-"))
    sources = {"1 photo": lambda: str(DATA / "images" / ONE_PHOTO), "16 photos": lambda: str(make_folder(work))}
    inputs = {job: sources[job]() for job in args.jobs}
    torch.manual_seed(0)
    weights = save_weights(create_model(args.model).eval(), work / f"{args.model}.safetensors")
    base = ["pose", "predict", "--model", args.model, "--weights", str(weights), "--boxes", str(BOXES)]
    base += ["--device", "cpu"]
    cases = args.cases if "eager" in args.cases else ["eager", *args.cases]
    warm_cache = work / "cache-warm"
    results: dict[tuple[str, str], list[dict]] = {}
    cpu = platform.processor() or platform.machine()
    print(f"# {cpu}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"# load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for r in range(args.rounds):
        for job, source in inputs.items():
            for case in cases[r % len(cases) :] + cases[: r % len(cases)]:
                runtime = case.split()[0]
                cold = case.endswith("cold") or case in ("eager", "torch")
                cache = work / f"cache-{r}-{job}-{case}".replace(" ", "_") if cold else warm_cache
                if case == "auto warm" and not any(warm_cache.glob("**/*.onnx")):  # export once, untimed
                    prime = [*base, _any_photo(source), "--runtime", "onnx", "--no-save", "--out", str(work / "p")]
                    run_case(prime, warm_cache)
                argv = [*base, source, "--runtime", runtime, "--out", str(work / "runs" / job / case)]
                res = run_case(argv, cache)
                results.setdefault((job, case), []).append(res)
                line = f"round {r + 1} {job:9s} {case:9s} wall {res['wall_s']:6.1f} s  main {res['main_s']:6.1f} s"
                print("  " + line, flush=True)
    print(f"# load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print()
    print(f"#### {args.model}, flip test, given boxes; median of {args.rounds} rounds (seconds)")
    print()
    print("| job | runtime | wall s | main() s | eager / this (main) | eager / this (wall) | auto ran |")
    print("|---|---|---|---|---|---|---|")
    for job in inputs:
        eager = results[(job, "eager")]
        e_main = statistics.median(x["main_s"] for x in eager)
        e_wall = statistics.median(x["wall_s"] for x in eager)
        for case in cases:
            rows = results[(job, case)]
            m = statistics.median(x["main_s"] for x in rows)
            w = statistics.median(x["wall_s"] for x in rows)
            ran = rows[-1]["auto"] if case.startswith("auto") else "-"
            print(f"| {job} | {case} | {w:.1f} | {m:.1f} | {e_main / m:.2f}x | {e_wall / w:.2f}x | {ran} |")
    shutil.rmtree(work, ignore_errors=True)


def _any_photo(source: str) -> str:
    """One photo of the job, to prime the warm cache (the export depends on the crop size only)."""
    path = Path(source)
    return str(path if path.is_file() else next(iter(sorted(path.rglob("*.jpg")))))


if __name__ == "__main__":
    main()
