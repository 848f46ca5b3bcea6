"""Dropout on CPU: torch's nn.Dropout (a bernoulli_ mask) vs leanrec.nn.Dropout (the native counter-based mask),
and the share of a DNN [400, 400, 400] training step each takes.

    python benchmarks/bench_dropout.py [--threads 2] [--out benchmarks/results/dropout.md]

Times forward + backward of one dropout layer on a 1024 x 400 float32 activation (a Frappe DNN batch), the
native kernel alone per element, and one training step of the Frappe-shaped DNN (10 fields x embedding 10,
[400, 400, 400] + BatchNorm + dropout 0.2, batch 1024, Adam) with each dropout, on random codes.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from leanrec import _native
from leanrec.nn import MLP, Dropout
from leanrec.records import atomic_write_text


def best_ms(fn, repeat: int = 30) -> float:
    """Best wall time of `repeat` calls after three warm-up calls, in milliseconds."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * min(times)


def dnn_step_ms(dropout_cls: type[nn.Module]) -> float:
    """One Adam step of the Frappe-shaped DNN with `dropout_cls` as its dropout layers."""
    torch.manual_seed(0)
    emb = nn.Embedding(5000, 10)
    mlp = MLP(100, [400, 400, 400], dropout=0.2, batch_norm=True)
    for i, layer in enumerate(mlp.net):
        if isinstance(layer, nn.Dropout):
            mlp.net[i] = dropout_cls(0.2)
    params = [*emb.parameters(), *mlp.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    X = torch.randint(0, 5000, (1024, 10))
    y = torch.randint(0, 2, (1024,)).float()

    def step():
        loss = nn.functional.binary_cross_entropy_with_logits(mlp(emb(X).flatten(1)).squeeze(-1), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return best_ms(step)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/dropout.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n = 1024 * 400
    x = torch.randn(1024, 400, requires_grad=True)

    def fwd_bwd(layer: nn.Module):
        return lambda: layer(x).sum().backward()
    torch_ms = best_ms(fwd_bwd(nn.Dropout(0.2).train()))
    native_ms = best_ms(fwd_bwd(Dropout(0.2).train()))
    xs, out = np.random.rand(n).astype(np.float32), np.empty(n, dtype=np.float32)
    kernel_ms = best_ms(lambda: _native.dropout(xs, out, 0.2, 1))
    bern_ms = best_ms(lambda: torch.empty(1024, 400).bernoulli_(0.8))
    step_torch, step_native = dnn_step_ms(nn.Dropout), dnn_step_ms(Dropout)
    rows = [
        ("torch bernoulli_ mask alone (1024 x 400)", bern_ms, 1e6 * bern_ms / n),
        ("leanrec native dropout kernel alone", kernel_ms, 1e6 * kernel_ms / n),
        ("nn.Dropout forward + backward", torch_ms, 1e6 * torch_ms / n),
        ("leanrec.nn.Dropout forward + backward", native_ms, 1e6 * native_ms / n),
    ]
    lines = ["# Dropout on CPU: nn.Dropout vs leanrec.nn.Dropout", "",
             f"Command: `python benchmarks/bench_dropout.py --threads {args.threads}`; torch {torch.__version__}, "
             f"{os.cpu_count()} CPUs, torch threads {args.threads}; best of 30 after warm-up.", "",
             "| what | ms | ns per element |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {ms:.3f} | {ns:.2f} |" for name, ms, ns in rows]
    lines += ["", "| DNN [400,400,400] training step, batch 1024 | ms |", "| --- | ---: |",
              f"| with nn.Dropout | {step_torch:.2f} |", f"| with leanrec.nn.Dropout | {step_native:.2f} |", "",
              f"The three dropout layers' forward + backward take about {3 * torch_ms / step_torch:.0%} of the step "
              f"with nn.Dropout and {3 * native_ms / step_native:.0%} with leanrec.nn.Dropout; the step is "
              f"{step_torch / step_native:.2f}x faster.", ""]
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
