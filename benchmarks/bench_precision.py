"""Does `torch.compile` or bf16 autocast pay on this CPU? The MLP part of the Criteo-shape DNN step, and the
registered DNN's scoring pass, each eager fp32 / compiled / bf16 autocast / both, side by side.

Issue 18 asks for `torch.compile` and bf16 autocast "as options where they measurably help". The embedding
update is memory-bound and already row-wise (lazy Adam); what compile and bf16 could speed up is the dense
compute: the MLP's forward and backward (the step's compute bound, `bench_train_step.mlp_only`'s shape: a
(1024, 390) input, [400, 400, 400] with batch norm and dropout, fused Adam) and scoring (forward only, batch
4096, the registered DNN with its embeddings). Variants are interleaved over --repeats rounds; compile time
(the first calls) is reported apart and excluded from the per-step median.

    python benchmarks/bench_precision.py --threads 2 --out benchmarks/results/precision
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from leanrec.nn import MLP, FieldSpec
from leanrec.plugins import registry

sys.path.insert(0, str(Path(__file__).parent))
from bench_train_step import criteo_like_vocab, zipf_codes  # noqa: E402

VARIANTS = ("eager fp32", "compiled fp32", "eager bf16 autocast", "compiled bf16 autocast")


def _autocast(variant: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if "bf16" in variant else nullcontext()


def _maybe_compile(module: torch.nn.Module, variant: str):
    return torch.compile(module) if variant.startswith("compiled") else module


def mlp_step_ms(variant: str, batch: int, width: int, steps: int, warmup: int) -> tuple[float, float]:
    """(median ms per training step after warm-up, seconds of the warm-up steps, compile included)."""
    torch.manual_seed(0)
    mlp = MLP(width, [400, 400, 400], out_dim=1, dropout=0.2, batch_norm=True)
    params = list(mlp.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    model = _maybe_compile(mlp, variant)
    x, y = torch.randn(batch, width), torch.randint(0, 2, (batch,)).float()
    times = []
    t_warm = time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:
            t_warm = time.perf_counter() - t_warm
        t0 = time.perf_counter()
        with _autocast(variant):
            out = model(x).reshape(-1)
        loss = F.binary_cross_entropy_with_logits(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times[warmup:]), t_warm


def scoring_us(variant: str, fields: list[FieldSpec], X: torch.Tensor, repeats: int, warmup: int) -> tuple[float, float]:
    """(median µs per sample of a forward pass of the registered DNN at X's batch size, warm-up seconds)."""
    torch.manual_seed(0)
    net = registry().method("dnn")().build_model(fields).eval()
    model = _maybe_compile(net, variant)
    times = []
    t_warm = time.perf_counter()
    with torch.no_grad():
        for i in range(warmup + repeats):
            if i == warmup:
                t_warm = time.perf_counter() - t_warm
            t0 = time.perf_counter()
            with _autocast(variant):
                model(X)
            times.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(times[warmup:]) / X.shape[0], t_warm


def max_abs_logit_error(fields: list[FieldSpec], X: torch.Tensor) -> float:
    """How far bf16 autocast moves the DNN's logits from fp32 (same weights)."""
    torch.manual_seed(0)
    net = registry().method("dnn")().build_model(fields).eval()
    with torch.no_grad():
        ref = net(X)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(X).float()
    return float((ref - low).abs().max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fields", type=int, default=39)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/precision"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    isa = [f for f in ("avx512_bf16", "amx_bf16", "avx512f", "avx2") if f in flags]
    rng = np.random.default_rng(0)
    vocab = [v + 2 for v in criteo_like_vocab(args.fields, 100_000)]   # + missing and OOV codes
    fields = [FieldSpec(f"C{i}", v) for i, v in enumerate(vocab)]
    X = torch.from_numpy(zipf_codes(4096, vocab, rng)).long()
    step: dict[str, list[float]] = {v: [] for v in VARIANTS}
    score: dict[str, list[float]] = {v: [] for v in VARIANTS}
    warm: dict[str, list[float]] = {v: [] for v in VARIANTS}
    load0 = os.getloadavg()
    for r in range(args.repeats):
        for v in VARIANTS:
            ms, w = mlp_step_ms(v, 1024, 10 * args.fields, args.steps, warmup=5)
            us, w2 = scoring_us(v, fields, X, repeats=20, warmup=5)
            step[v].append(ms), score[v].append(us), warm[v].append(w + w2)
        print(f"round {r + 1}/{args.repeats}: " + ", ".join(f"{v} {step[v][-1]:.1f} ms" for v in VARIANTS),
              file=sys.stderr)
    err = max_abs_logit_error(fields, X)
    load1 = os.getloadavg()
    med_step = {v: statistics.median(t) for v, t in step.items()}
    med_score = {v: statistics.median(t) for v, t in score.items()}
    base_s, base_c = med_step["eager fp32"], med_score["eager fp32"]
    lines = [f"# torch.compile and bf16 autocast on this CPU ({args.threads} threads)", "",
             f"Command: `python benchmarks/bench_precision.py --threads {args.threads} --steps {args.steps} "
             f"--repeats {args.repeats}`", "",
             f"Machine: {os.cpu_count()} cores, CPU flags {', '.join(isa) or 'unknown'}, torch {torch.__version__}; "
             f"load average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end; variants interleaved per round, "
             "median over rounds (and over steps within a round).", "",
             "| variant | MLP training step, ms (batch 1024) | × eager | DNN scoring, µs/sample (batch 4096) | × eager "
             "| warm-up s (compile) |", "|---|---|---|---|---|---|"]
    for v in VARIANTS:
        lines.append(f"| {v} | {med_step[v]:.2f} | {med_step[v] / base_s:.2f} | {med_score[v]:.3f} | "
                     f"{med_score[v] / base_c:.2f} | {statistics.median(warm[v]):.1f} |")
    lines += ["", f"bf16 autocast moves the DNN's logits by at most {err:.4f} (same weights, {X.shape[0]} rows)."]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "step_ms": step, "score_us": score, "warmup_s": warm,
         "bf16_max_abs_logit_error": err, "load": [load0, load1], "cpu_flags": isa}, indent=2))
    print(text)


if __name__ == "__main__":
    main()
