"""Rerun committed run records with the current code and compare: is each the same run, and how long did it take?

For every chosen record, `leanrec run` reproduces it (same dataset and data overrides, method spec, seed and
budget) into a scratch results dir, one process at a time, and the report gives, per record, whether the test
AUC and logloss are bit-identical, the difference when they are not, and the fit time of the rerun beside the
committed one. With ``--compare-flush`` each record is rerun twice, side by side in the same session: with
leanrec's default (denormal floats flushed to zero, :func:`leanrec.context.flush_denormals`) and with flushing
disabled, so the report shows what flushing does to results and to time on the same machine under the same
load. With ``--replace`` a rerun that reproduces the committed record bit for bit (same identity, same test AUC
and logloss) is written over it, to add a statistic a method records since; a rerun whose results moved never
replaces one. Results reproduce bit for bit on CPUs of the same kind; on another (torch's kernels dispatch to
another instruction set, recorded as ``environment.cpu_capability``) they move, and the report sets each move
against the spread of the committed record's seeds.

    python benchmarks/rerun_records.py --sample 24 --max-seconds 60 --threads 1 --out benchmarks/results/rerun
    python benchmarks/rerun_records.py 'results/runs/criteo/ssr-d[b=8,d_v=64,filter=none]__seed0.json' \\
        --compare-flush --threads 1 --out benchmarks/results/denormals

Records are chosen by --sample: one record per (dataset, method) of the committed records whose fit took at
most --max-seconds, drawn with a fixed seed, so the sample spans the methods rather than the biggest tables.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "harness"))

import torch  # noqa: E402

from leanrec.records import canonical_json, record_path, write_record  # noqa: E402
from leanrec.runner import cpu_model  # noqa: E402

# Runs leanrec's CLI with torch.set_flush_denormal made a no-op (returning False: "not supported"), so the
# fit runs with denormals as the CPU computes them; only for --compare-flush.
NO_FLUSH = ("import sys, torch; torch.set_flush_denormal = lambda on: False; "
            "from leanrec.cli import main; sys.argv[0] = 'leanrec'; main()")


def method_spec(record: dict[str, Any]) -> str:
    """The `-m` argument that reproduces `record`'s variant."""
    overrides = record["overrides"]
    if not overrides:
        return record["method"]
    inner = ",".join(f"{k}={v if isinstance(v, str) else canonical_json(v)}" for k, v in sorted(overrides.items()))
    return f"{record['method']}:{inner}"


def _flat(overrides: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"synthetic": {"n_rows": 5}} -> {"synthetic.n_rows": 5}, as `--data` takes them."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def run_args(record: dict[str, Any], results_dir: Path, threads: int) -> list[str]:
    """`leanrec run` arguments that reproduce `record` (same identity) into `results_dir`."""
    dataset = record["identity"]["dataset"].split("[")[0]
    args = ["run", "-d", dataset, "-m", method_spec(record), "--seeds", "1", "--seed-start", str(record["seed"]),
            "--results-dir", str(results_dir), "--no-progress", "--threads", str(threads)]
    for key, value in sorted(_flat(record.get("data_overrides") or {}).items()):
        args += ["--data", f"{key}={value if isinstance(value, str) else canonical_json(value)}"]
    flags = {"max_epochs": "--max-epochs", "max_steps": "--max-steps", "min_steps": "--min-steps",
             "eval_every": "--eval-every", "max_batch_size": "--max-batch-size"}
    for key, flag in flags.items():
        value = record["budget"].get(key)
        if value is not None:
            args += [flag, str(value)]
    return args


def rerun(record: dict[str, Any], threads: int, flush: bool = True, replace: Path | None = None) -> dict[str, Any]:
    """Rerun `record` in a fresh process; the new record (or the failure) with its wall time. With `replace`
    (the committed record's file), an ok rerun of the same run (same identity) is written over it."""
    with tempfile.TemporaryDirectory(prefix="leanrec-rerun-") as tmp:
        results = Path(tmp)
        cmd = ([sys.executable, "-m", "leanrec"] if flush else [sys.executable, "-c", NO_FLUSH])
        cmd += run_args(record, results, threads)
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - start
        out = record_path(results, record["dataset"], record["variant"], record["seed"])
        if proc.returncode != 0 or not out.exists():
            return {"error": (proc.stderr or proc.stdout)[-400:], "wall": wall}
        new = json.loads(out.read_text())
        same = (new["status"] == "ok" and new["identity_hash"] == record["identity_hash"]
                and all(new["metrics"].get(m) == record["metrics"].get(m) for m in ("auc", "logloss")))
        if replace is not None and same:
            write_record(replace, new)
        return {"record": new, "wall": wall, "replaced": replace is not None and same}


def compare(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Same identity? Test AUC / logloss identical (and their differences), fit times."""
    if "error" in new:
        return {"error": new["error"]}
    rec = new["record"]
    out: dict[str, Any] = {"same_identity": rec["identity_hash"] == old["identity_hash"], "status": rec["status"],
                           "time_old": old.get("total_time"), "time_new": rec.get("total_time"),
                           "flush_denormal": rec["environment"].get("flush_denormal"),
                           "cpu_capability_old": old["environment"].get("cpu_capability"),
                           "cpu_capability_new": rec["environment"].get("cpu_capability"),
                           "replaced": new.get("replaced", False)}
    for metric in ("auc", "logloss"):
        a, b = old["metrics"].get(metric), rec.get("metrics", {}).get(metric)
        out[f"{metric}_old"], out[f"{metric}_new"] = a, b
        out[f"{metric}_identical"] = a == b
    return out


def seed_spread(path: Path) -> float | None:
    """Standard deviation of the test AUC over the committed seeds of `path`'s variant (None under 2 seeds)."""
    aucs = [a for p in path.parent.glob(glob.escape(path.name.rsplit("__seed", 1)[0]) + "__seed*.json")
            if (a := json.loads(p.read_text()).get("metrics", {}).get("auc")) is not None]
    return statistics.stdev(aucs) if len(aucs) > 1 else None


def sample_records(runs: Path, n: int, max_seconds: float, seed: int) -> list[Path]:
    """One record per (dataset, method) among the ok records whose fit took at most `max_seconds`."""
    groups: dict[tuple[str, str], list[Path]] = {}
    for path in sorted(runs.glob("*/*.json")):
        rec = json.loads(path.read_text())
        if rec.get("status") == "ok" and (rec.get("total_time") or 1e9) <= max_seconds:
            groups.setdefault((rec["dataset"], rec["method"]), []).append(path)
    rng = random.Random(seed)
    keys = sorted(groups)
    rng.shuffle(keys)
    return [rng.choice(groups[k]) for k in keys[:n]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", nargs="*", type=Path, help="record files (default: --sample)")
    ap.add_argument("--sample", type=int, default=0, help="rerun this many sampled records")
    ap.add_argument("--max-seconds", type=float, default=60.0, help="sample only records that fit in this long")
    ap.add_argument("--runs", type=Path, default=ROOT / "results" / "runs")
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--compare-flush", action="store_true", help="also rerun each with denormals not flushed")
    ap.add_argument("--replace", action="store_true",
                    help="write each ok rerun of the same run over its committed record (e.g. to record a statistic "
                         "added since); the report says whether its results moved")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    args = ap.parse_args()
    paths = list(args.records) + (sample_records(args.runs, args.sample, args.max_seconds, args.sample_seed)
                                  if args.sample else [])
    if not paths:
        ap.error("give record files or --sample N")
    rows = []
    for i, path in enumerate(paths, 1):
        old = json.loads(path.read_text())
        row: dict[str, Any] = {"record": str(path.relative_to(ROOT) if path.is_absolute() else path),
                               "seed_std": seed_spread(path),
                               "flush": compare(old, rerun(old, args.threads, replace=path if args.replace else None))}
        if args.compare_flush:
            row["no_flush"] = compare(old, rerun(old, args.threads, flush=False))
        rows.append(row)
        print(f"[{i}/{len(paths)}] {row['record']}: {json.dumps(row, default=str)[:300]}", flush=True)
    load = os.getloadavg()
    meta = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "threads": args.threads,
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "loadavg_at_end": load,
            "cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
    args.out.with_suffix(".md").write_text(to_markdown(meta, rows, args.compare_flush))
    print(f"wrote {args.out.with_suffix('.md')}")


def _cell(c: dict[str, Any]) -> str:
    if "error" in c:
        return "failed"
    same = c["auc_identical"] and c["logloss_identical"]
    if same:
        return f"identical ({c['time_new']:.0f} s)"
    return f"AUC {c['auc_new'] - c['auc_old']:+.2e}, logloss {c['logloss_new'] - c['logloss_old']:+.2e} ({c['time_new']:.0f} s)"


def to_markdown(meta: dict[str, Any], rows: list[dict[str, Any]], compare_flush: bool) -> str:
    lines = [f"# Committed records rerun with the current code ({meta['date']})", "",
             f"`python benchmarks/{meta['command']}` on {meta['platform']} ({meta.get('cpu')}, torch CPU kernels "
             f"{meta.get('cpu_capability')}), {meta['cpu_count']} cores, torch threads {meta['threads']}, one rerun "
             f"at a time; load average at the end {', '.join(f'{x:.2f}' for x in meta['loadavg_at_end'])}.", "",
             "*|Δ AUC| / seed std*: the rerun's move against the standard deviation of the committed AUCs over the "
             "variant's seeds. *CPU kernels*: the instruction set torch dispatched to for the committed record "
             "(- where the record predates its recording) and for the rerun.", ""]
    head = "| record | committed fit (s) | rerun, denormals flushed (default) | \\|Δ AUC\\| / seed std | CPU kernels |"
    sep = "|---|---|---|---|---|"
    if compare_flush:
        head += " rerun, not flushed | time not flushed / flushed |"
        sep += "---|---|"
    lines += [head, sep]
    n_same = n_ok = 0
    ratios = []
    for row in rows:
        f = row["flush"]
        ok = "error" not in f
        n_ok += ok
        n_same += ok and f["auc_identical"] and f["logloss_identical"]
        ratio = (abs(f["auc_new"] - f["auc_old"]) / row["seed_std"]
                 if ok and row.get("seed_std") and f["auc_new"] is not None else None)
        if ratio is not None:
            ratios.append(ratio)
        cpu = f"{f.get('cpu_capability_old') or '-'} → {f.get('cpu_capability_new') or '-'}" if ok else "-"
        line = (f"| `{row['record']}` | {f.get('time_old') or 0:.0f} | {_cell(f)} | "
                f"{'-' if ratio is None else f'{ratio:.2f}'} | {cpu} |")
        if compare_flush:
            g = row["no_flush"]
            ratio = (g["time_new"] / f["time_new"]) if "error" not in f and "error" not in g else float("nan")
            line += f" {_cell(g)} | {ratio:.2f} |"
        lines.append(line)
    lines += ["", f"{n_same} of {len(rows)} reruns give the committed record's test AUC and logloss bit for bit"
              f" ({len(rows) - n_ok} failed)."]
    moved = [r for r in ratios if r > 0]
    if moved:
        lines.append(f"The {len(moved)} that moved (with 2+ committed seeds) moved by a median "
                     f"{statistics.median(moved):.2f} and at most {max(moved):.2f} seed standard deviations.")
    n_replaced = sum(bool(row["flush"].get("replaced")) for row in rows)
    if n_replaced:
        lines.append(f"{n_replaced} committed records were replaced by their bit-identical reruns (--replace).")
    return "\n".join(lines) + "\n"

if __name__ == "__main__":
    main()
