"""Peak resident memory of training from the cache under a memory budget vs. copying the splits into memory.

A synthetic Criteo-shaped log (39 fields) is prepared once; then each mode runs in a fresh process: open the
cached dataset, train DNN with `run_grid` for --max-steps steps, score valid and test. A thread samples
/proc/self/status every 10 ms: RssAnon (the process's own memory: tensors, model, Python), RssFile (mapped
file pages; the streamed path reads with pread, so the page cache is not counted) and VmRSS (their sum);
ru_maxrss is the kernel's peak.

    PYTHONPATH=harness:plugins/... python benchmarks/bench_memory_budget.py --rows 2000000 --budget 24M

writes benchmarks/results/memory_budget.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CARD = REPO / "datasets" / "synthetic.toml"


def _status() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(rest.split()[0]) * 1024
    return out


class Peak:
    """Samples /proc/self/status in a thread and keeps the maximum of each field."""

    def __init__(self, every: float = 0.01):
        self.max = _status()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self.thread.start()

    def _run(self, every: float) -> None:
        while not self.stop.is_set():
            for k, v in _status().items():
                self.max[k] = max(self.max.get(k, 0), v)
            time.sleep(every)

    def close(self) -> dict[str, int]:
        self.stop.set()
        self.thread.join()
        return self.max


def overrides(args: argparse.Namespace) -> dict:
    return {"synthetic": {"n_rows": args.rows, "n_fields": 39, "max_cardinality": args.max_cardinality}}


def child(args: argparse.Namespace) -> None:
    import torch

    from leanrec.batches import parse_bytes
    from leanrec.data import load_dataset
    from leanrec.protocol import Budget
    from leanrec.runner import MethodSpec, run_grid

    torch.set_num_threads(args.threads)
    ds = load_dataset(str(CARD), overrides=overrides(args), progress=False)
    ds.fingerprint()                    # what run_grid does first (reads every split once)
    before = _status()
    peak = Peak()
    phases: dict[str, dict[str, int]] = {}
    import leanrec.runner as runner
    import leanrec.trainer as trainer

    def phase(name, fn):   # the peak before the first call of fn (i.e. of everything up to it) and during it
        def wrapped(*a, **k):
            phases.setdefault(f"before {name}", dict(peak.max))
            out = fn(*a, **k)
            phases[f"through {name}"] = dict(peak.max)
            return out
        return wrapped

    runner.measure = phase("measure", runner.measure)
    trainer.validation_auc = phase("validation", trainer.validation_auc)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        (rec,) = run_grid([str(CARD)], [MethodSpec("dnn")], [0], Path(out),
                          budget=Budget(max_steps=args.max_steps, min_steps=min(100, args.max_steps)),
                          data_overrides=overrides(args), device="cpu", progress=False,
                          memory_budget=parse_bytes(args.budget) if args.mode == "budget" else None)
    seconds = time.perf_counter() - t0
    high = peak.close()
    print(json.dumps({"mode": args.mode, "before_training": before, "peak": high, "phases": phases,
                      "seconds": seconds,
                      "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "status": rec["status"], "error": rec.get("error", {}).get("message"),
                      "auc": rec.get("metrics", {}).get("auc"), "memory": rec.get("memory"),
                      "steps": rec.get("training", {}).get("train", {}).get("steps"),
                      "splits": {s: len(getattr(ds, s)) for s in ("train", "valid", "test")},
                      "split_bytes": {s: int(getattr(ds, s).X.nbytes + getattr(ds, s).y.nbytes)
                                      for s in ("train", "valid", "test")}}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--max-cardinality", type=int, default=10_000)
    ap.add_argument("--budget", default="24M")
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", choices=["budget", "memory"])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "memory_budget")
    args = ap.parse_args()
    if args.mode:
        return child(args)
    from leanrec.data import load_dataset

    t0 = time.perf_counter()
    load_dataset(str(CARD), overrides=overrides(args), progress=False)
    prep = time.perf_counter() - t0
    results = []
    for mode, env in (("budget", {}), ("memory", {}), ("memory", {"MALLOC_MMAP_THRESHOLD_": str(8 << 20)})):
        proc = subprocess.run([sys.executable, __file__, "--mode", mode, *sys.argv[1:]], capture_output=True,
                              text=True, check=True, env={**os.environ, **env})
        results.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "env": env})
    load = os.getloadavg()
    cmd = "python benchmarks/bench_memory_budget.py " + " ".join(sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"command": cmd, "load_avg": load, "prepare_s": prep,
                                                         "results": results}, indent=1))
    mib = 1 << 20
    r0 = results[0]
    lines = [f"# Peak memory of training from the cache (memory budget {args.budget})", "",
             f"Command: `{cmd}` (synthetic, 39 fields, {args.rows:,} rows, DNN, {args.max_steps} steps, "
             f"{args.threads} threads; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on a 2-core "
             f"machine shared with other sessions).", "",
             "Splits: " + ", ".join(f"{s} {r0['splits'][s]:,} rows = {r0['split_bytes'][s] / mib:.1f} MiB"
                                    for s in r0["splits"]), "",
             "| mode | streamed splits | RssAnon before training | peak RssAnon | peak - before | peak RssFile "
             "| peak VmRSS | ru_maxrss | RssAnon through first validation | test AUC | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        b, p = r["before_training"], r["peak"]
        lines.append(f"| {r['mode']}{' ' + ' '.join(f'{k}={v}' for k, v in r['env'].items()) if r['env'] else ''} | {', '.join((r['memory'] or {}).get('streamed_splits') or []) or '-'} | "
                     f"{b['RssAnon'] / mib:.0f} MiB | {p['RssAnon'] / mib:.0f} MiB | "
                     f"{(p['RssAnon'] - b['RssAnon']) / mib:.0f} MiB | {p['RssFile'] / mib:.0f} MiB | "
                     f"{p['VmRSS'] / mib:.0f} MiB | {r['ru_maxrss'] / mib:.0f} MiB | "
                     f"{r['phases'].get('before validation', {}).get('RssAnon', 0) / mib:.0f} -> "
                     f"{r['phases'].get('through validation', {}).get('RssAnon', 0) / mib:.0f} MiB | "
                     f"{(r['auc'] or float('nan')):.4f} | {r['seconds']:.0f} |")
    lines += ["", "`before training`: the process after importing torch and leanrec, opening the cache and "
              "fingerprinting it (the run identity), before the runner builds the model and copies or streams "
              "the splits. `peak - before` is what training added: the model, its optimizer state, the "
              "activations and the data path (whole splits in `memory` mode; blocks, read-ahead batches, "
              "labels and scores in `budget` mode, bounded by the budget). With a budget leanrec fixes glibc's "
              "mmap threshold at 8 MiB (`leanrec.batches.return_freed_memory`), so freed scoring activations "
              "go back to the system; the third row gives the in-memory path the same setting through the "
              "environment. `RssAnon through first validation`: before and after the first validation pass "
              "(200K rows scored in 16,384-row batches)."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
