"""SSR scaling plot: test AUC (mean ± std over seeds) against a scaling knob (b, d_v or num_layers) for the SSR
variants in a results directory, from the harness's run records.

Make the runs first (the sweep's specs are printed by --specs), then plot:

    python benchmarks/ssr_scaling.py --specs                      # method specs of the b sweep
    leanrec run -d frappe -m 'ssr-s:b=1' -m 'ssr-s:b=2' ... --seeds 5 --results-dir results/ssr
    python benchmarks/ssr_scaling.py results/ssr --knob b --out results/ssr/ssr_scaling_b.png

Besides the PNG it writes a CSV next to it (dataset, method, filter, knob value, seeds, AUC mean/std, backbone
params, FLOPs per sample) and prints it as a Markdown table. Only records with status "ok" count.
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from leanrec.records import iter_records

SSR_METHODS = ("ssr-s", "ssr-d")
DEFAULT_SWEEP = {"b": [1, 2, 4, 8, 16, 32], "d_v": [32, 64, 128, 256], "num_layers": [1, 2, 3, 4]}


def sweep_specs(knob: str, values: list[int], methods: tuple[str, ...] = SSR_METHODS) -> list[str]:
    """`leanrec run -m` specs sweeping `knob` over `values` for each SSR method."""
    return [f"{m}:{knob}={v}" for m in methods for v in values]


def collect(results_dir: Path, knob: str) -> list[dict[str, Any]]:
    """One row per (dataset, method, filter, knob value, other overrides): AUC and cost over seeds."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for rec in iter_records(results_dir):
        if rec.get("method") not in SSR_METHODS or rec.get("status") != "ok":
            continue
        cfg = rec.get("config", {})
        # runs that differ in anything but the knob and the seed are separate curves
        others = tuple(sorted((k, str(v)) for k, v in rec.get("overrides", {}).items() if k != knob))
        groups[(rec["dataset"], rec["method"], others, cfg.get(knob))].append(rec)
    rows = []
    for (dataset, method, others, value), recs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        aucs = [r["metrics"]["auc"] for r in recs]
        rows.append({
            "dataset": dataset, "method": method,
            "curve": method + ("" if not others else "[" + ",".join(f"{k}={v}" for k, v in others) + "]"),
            knob: value, "seeds": len(recs), "auc_mean": float(np.mean(aucs)),
            "auc_std": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0,
            "backbone_params": float(np.mean([r["metrics"]["params"]["backbone"] for r in recs])),
            "flops_per_sample": float(np.mean([r["metrics"]["flops_per_sample"] for r in recs])),
            "ics_sparsity": _mean_sparsity(recs),
        })
    return rows


def _mean_sparsity(recs: list[dict]) -> str:
    per_layer = [r.get("extra", {}).get("filter_sparsity_per_layer") for r in recs]
    per_layer = [s for s in per_layer if s]
    return "" if not per_layer else "/".join(f"{x:.2f}" for x in np.mean(np.array(per_layer), axis=0))


def plot(rows: list[dict[str, Any]], knob: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        curves: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            if r["dataset"] == ds:
                curves[r["curve"]].append(r)
        for name, pts in sorted(curves.items()):
            pts = sorted(pts, key=lambda r: r[knob])
            ax.errorbar([p[knob] for p in pts], [p["auc_mean"] for p in pts], yerr=[p["auc_std"] for p in pts],
                        marker="o", capsize=3, label=name)
        if knob in ("b", "d_v"):
            ax.set_xscale("log", base=2)
        ax.set_xlabel(knob)
        ax.set_ylabel("test AUC (mean ± std over seeds)")
        ax.set_title(ds)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def markdown(rows: list[dict[str, Any]], knob: str) -> str:
    head = f"| dataset | curve | {knob} | seeds | AUC | backbone params | FLOPs/sample | ICS sparsity |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['curve']} | {r[knob]} | {r['seeds']} | {r['auc_mean']:.4f} ± "
                     f"{r['auc_std']:.4f} | {r['backbone_params']:,.0f} | {r['flops_per_sample']:,.0f} | "
                     f"{r['ics_sparsity']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results_dir", nargs="?", type=Path, help="directory holding runs/ (from leanrec run)")
    p.add_argument("--knob", choices=sorted(DEFAULT_SWEEP), default="b")
    p.add_argument("--out", type=Path, help="PNG path (default: <results_dir>/ssr_scaling_<knob>.png)")
    p.add_argument("--specs", action="store_true", help="print the sweep's method specs and exit")
    args = p.parse_args(argv)
    if args.specs:
        print(" ".join(f"-m '{s}'" for s in sweep_specs(args.knob, DEFAULT_SWEEP[args.knob])))
        return
    if args.results_dir is None:
        p.error("results_dir is required unless --specs")
    rows = collect(args.results_dir, args.knob)
    if not rows:
        raise SystemExit(f"no successful ssr-s / ssr-d runs under {args.results_dir}/runs")
    out = args.out or args.results_dir / f"ssr_scaling_{args.knob}.png"
    plot(rows, args.knob, out)
    write_csv(rows, out.with_suffix(".csv"))
    print(markdown(rows, args.knob))
    print(f"\nwrote {out} and {out.with_suffix('.csv')}")


if __name__ == "__main__":
    main()
