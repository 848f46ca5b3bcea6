"""Training-step cost at Criteo shape: dense Adam vs the row-wise embedding optimizers (lazy, deferred, Adagrad)
vs the MLP alone.

39 fields with Criteo-like cardinalities (geometric from 3 to --max-card, ~2M embedding rows at the default),
the registered DNN ([400, 400, 400], batch norm, dropout 0.2) and DeepFM, batch 1024, Zipf-distributed codes.
Each variant runs --steps optimizer steps through the harness trainer (`leanrec.trainer.train_model`, one
validation at the end on 1024 rows); variants are interleaved over --repeats rounds so machine load hits
them alike, and the median ms per step is reported with its ratio to the MLP-only step (the compute bound:
the same MLP on a precomputed (1024, 390) input with fused Adam).

    python benchmarks/bench_train_step.py --threads 2 --out benchmarks/results/train_step
    python benchmarks/bench_train_step.py --device cuda --out /tmp/train_step_cuda   # on a GPU
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from leanrec.nn import FieldSpec
from leanrec.plugins import registry
from leanrec.protocol import Budget
from leanrec.trainer import Tensors, train_model


def criteo_like_vocab(n_fields: int, max_card: int) -> list[int]:
    return [int(v) for v in np.geomspace(3, max_card, n_fields).round()]


def zipf_codes(rows: int, vocab: list[int], rng: np.random.Generator) -> np.ndarray:
    cols = [np.minimum(rng.zipf(1.2, rows) - 1, v - 1) for v in vocab]
    return np.stack(cols, axis=1).astype(np.int32)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so wall times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_variant(method: str, optimizer: str, fields: list[FieldSpec], train: Tensors, valid: Tensors,
                steps: int) -> float:
    m = registry().method(method).from_overrides({"embedding_optimizer": optimizer})
    device = train.X.device
    model = m.build_model(fields).to(device)
    cfg = m.config
    budget = Budget(min_steps=0, max_steps=steps, eval_every=steps)
    synchronize(device)
    t0 = time.perf_counter()
    train_model(model, train, valid, cfg, budget=budget)
    synchronize(device)
    return 1e3 * (time.perf_counter() - t0) / steps


def mlp_only(batch: int, width: int, steps: int, device: torch.device = torch.device("cpu")) -> float:
    from leanrec.nn import MLP

    mlp = MLP(width, [400, 400, 400], out_dim=1, dropout=0.2, batch_norm=True).to(device)
    params = list(mlp.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    x = torch.randn(batch, width, device=device)
    y = torch.randint(0, 2, (batch,), device=device).float()
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        out = mlp(x).reshape(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
    synchronize(device)
    return 1e3 * (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fields", type=int, default=39)
    ap.add_argument("--max-card", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", nargs="+", default=["dnn", "deepfm"])
    ap.add_argument("--optimizers", nargs="+", default=["adam", "lazy_adam", "deferred_adam", "rowwise_adagrad"])
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/train_step"))
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    vocab = [v + 2 for v in criteo_like_vocab(args.fields, args.max_card)]   # + missing and OOV codes
    fields = [FieldSpec(f"C{i}", v) for i, v in enumerate(vocab)]
    rows = args.batch * args.steps
    X = zipf_codes(rows + 1024, vocab, rng)
    y = (rng.random((rows + 1024, 1)) < 0.25).astype(np.float32)
    train = Tensors.from_numpy(X[:rows], y[:rows], device)
    valid = Tensors.from_numpy(X[rows:], y[rows:], device)
    times: dict[str, list[float]] = {}
    for r in range(args.repeats):
        times.setdefault("mlp-only", []).append(mlp_only(args.batch, 10 * args.fields, args.steps, device))
        for method in args.methods:
            for opt in args.optimizers:
                times.setdefault(f"{method} / {opt}", []).append(run_variant(method, opt, fields, train, valid,
                                                                             args.steps))
        print(f"round {r + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.1f} ms" for k, v in times.items()),
              file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    load = os.getloadavg()
    where = (f"{args.threads} threads" if device.type == "cpu"
             else f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    lines = [f"# Training step at Criteo shape ({args.fields} fields, {sum(vocab):,} embedding rows, batch "
             f"{args.batch}, {where})", "",
             f"Command: `python benchmarks/bench_train_step.py --threads {args.threads} --steps {args.steps} "
             f"--repeats {args.repeats} --max-card {args.max_card} --device {args.device}`", "",
             f"Machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end; "
             "variants interleaved per round, median over rounds.", "",
             "| variant | ms / step | samples / s | × MLP-only step |", "|---|---|---|---|"]
    for k, v in med.items():
        lines.append(f"| {k} | {v:.1f} | {args.batch / v * 1e3:,.0f} | {v / med['mlp-only']:.2f} |")
    for method in args.methods:
        for opt, name in (("lazy_adam", "lazy Adam"), ("deferred_adam", "deferred Adam")):
            if f"{method} / adam" in med and f"{method} / {opt}" in med:
                lines.append(f"\n{method}: the {name} step is {med[f'{method} / adam'] / med[f'{method} / {opt}']:.2f}x "
                             "faster than dense Adam's.")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                         "times_ms": times, "load": load}, indent=2))
    print(text)


if __name__ == "__main__":
    main()
