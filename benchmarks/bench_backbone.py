"""Forward-pass speed of our HRNet against timm's implementation, measured in the same run.

    python benchmarks/bench_backbone.py [--device cpu|cuda] [--batch 8] [--size 224] [--repeats 10]

Both models get the same weights (timm's state dict loaded into ours), so the table compares
implementations, not configurations. Prints a Markdown table; never run by the test suite.
"""

from __future__ import annotations

import argparse
import time

import torch

import hrnet


def _time(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median seconds per forward pass after two warm-up passes."""
    times = []
    with torch.inference_mode():
        for i in range(repeats + 2):
            if x.is_cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            model(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            if i >= 2:
                times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=["hrnet_w18_small", "hrnet_w18", "hrnet_w32"])
    args = parser.parse_args()
    import timm

    device = torch.device(args.device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    print(
        f"device {device}, batch {args.batch}, input {args.size}x{args.size}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    print("| model | hrnet (ms/batch) | timm (ms/batch) | ratio timm/hrnet | max rel diff |")
    print("|---|---|---|---|---|")
    for name in args.models:
        ref = timm.create_model(name, pretrained=False).eval().to(device)
        ours = hrnet.create_model(name).eval().to(device)
        hrnet.load_weights(ours, ref.state_dict())
        with torch.inference_mode():  # relative: random-init activations can be large
            a, b = ref(x), ours(x)
            diff = ((a - b).abs().max() / a.abs().max()).item()
        t_ours, t_ref = _time(ours, x, args.repeats), _time(ref, x, args.repeats)
        print(f"| {name} | {t_ours * 1e3:.1f} | {t_ref * 1e3:.1f} | {t_ref / t_ours:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
