"""What denormal floats cost a training step on CPU, and what flushing them (leanrec's default) gives back.

One fused view layer of SSR-D without its filter at the paper's size (16 views, each a dense 4096 -> 256 map of
the whole input, batch 256), forward and backward, timed side by side in the same process: with ordinary
gradients, and with gradients scaled into the denormal range (|g| < 1.2e-38, as a model that has fit its sample
closely produces), each with denormals computed (x86's microcode path) and flushed to zero
(`torch.set_flush_denormal(True)`, what `leanrec.context.prepare_fit` does before every fit). Variants are
interleaved over --repeats rounds and the median is reported.

    python benchmarks/bench_denormals.py --threads 1 --out benchmarks/results/denormals_step
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch


def step(x: torch.Tensor, V: torch.Tensor, scale: float) -> None:
    """Forward and backward of the per-view fusion over the whole input (SSR's filter=none path)."""
    h = x.unsqueeze(1).expand(x.shape[0], V.shape[0], x.shape[1])
    y = torch.einsum("nvk,vkd->nvd", h, V)
    (y.sum() * scale).backward()
    V.grad = None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 4096, generator=gen)
    V = torch.nn.Parameter(torch.randn(16, 4096, 256, generator=gen) * 0.01)
    variants = {(grads, flush): [] for grads in ("ordinary", "denormal") for flush in (False, True)}
    for _ in range(args.repeats):
        for (grads, flush), times in variants.items():
            torch.set_flush_denormal(flush)
            start = time.perf_counter()
            step(x, V, 1.0 if grads == "ordinary" else 1e-40)
            times.append(time.perf_counter() - start)
    torch.set_flush_denormal(False)
    med = {k: statistics.median(v) for k, v in variants.items()}
    meta = {"command": f"python benchmarks/bench_denormals.py --threads {args.threads} --out {args.out}",
            "threads": args.threads, "repeats": args.repeats, "batch": args.batch, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "loadavg": os.getloadavg(), "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    rows = [{"gradients": g, "flush_denormal": f, "median_s": med[(g, f)], "all_s": variants[(g, f)]}
            for g, f in variants]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    base = med[("ordinary", True)]
    lines = [f"# Denormal floats in a training step ({meta['date']})", "",
             f"`{meta['command']}` on {meta['platform']}, {meta['cpu_count']} cores, torch {meta['torch']}, "
             f"{args.threads} thread(s), median of {args.repeats} interleaved rounds; load average "
             f"{', '.join(f'{v:.2f}' for v in meta['loadavg'])} (other jobs were running: compare the ratios).", "",
             "SSR-D's view fusion without a filter (16 views x 4096 x 256, batch "
             f"{args.batch}), forward + backward.", "",
             "| gradients | denormals | median s / step | vs ordinary, flushed |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['gradients']} | {'flushed' if r['flush_denormal'] else 'computed'} | "
                     f"{r['median_s']:.3f} | {r['median_s'] / base:.1f}x |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
