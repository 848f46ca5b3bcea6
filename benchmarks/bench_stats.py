"""Speed of the leanrec statistics engine vs scikit-learn, polars, numpy on a Criteo-shaped table.

    python benchmarks/bench_stats.py --rows 10000000 --threads 2
    /usr/bin/time -v python benchmarks/bench_stats.py --stream big.parquet --label click --budget 64MB

The second form streams a file through leanrec.stats.compute (all fields categorical) and prints rows,
time and which fields fell back to bins; peak memory comes from /usr/bin/time -v. Big synthetic Parquet
files: leanrec.data.synthetic.write(path, n_rows, max_cardinality=...).

Table: 26 categorical int32 code fields with Zipf(1.1) frequencies and cardinalities log-spaced from
3 to 5M (capped at the row count), 13 float numeric fields with 20% missing, one binary label.
Measured in one run with the same thread count: univariate MI + entropy + distinct over the 26 fields,
numeric variance over the 13, pairwise I(X_i; l | X_j) for 20 pairs, and a plain read of the codes
(the memory-bandwidth floor), and a raw-value variant (a subset of fields as strings, hashed by the
engine, vs polars on the same strings). scikit-learn is timed on a subsample and extrapolated linearly
(stated in the output). Wall times on a shared machine include waiting for a core, so CPU seconds are
recorded next to them. Results: benchmarks/results/stats.json and stats.md, with pass/fail per target.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from leanrec.records import atomic_write_text


def make_table(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    cards = np.unique(np.geomspace(3, 5_000_000, 26).astype(np.int64))
    cards = np.minimum(np.resize(cards, 26), rows)
    codes = np.empty((rows, 26), dtype=np.int32, order="F")
    for f, card in enumerate(cards):
        z = rng.zipf(1.1, rows) - 1
        codes[:, f] = (z % card).astype(np.int32)
    logit = -1.3 + 0.4 * (codes[:, 0] == 0) + 0.3 * (codes[:, 5] % 3 == 0)
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.uint8)
    num = rng.lognormal(1.0, 1.5, (rows, 13))
    num[rng.random((rows, 13)) < 0.2] = np.nan
    return codes, label, num, cards


CPU: dict[str, float] = {}


def timed(fn, repeat: int = 1):
    """Best wall time of `repeat` runs; the process CPU time of the last run goes to CPU[<caller's key>]."""
    best = float("inf")
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t)
        CPU["last"] = time.process_time() - c
    return best, out


def mi_from_joint(joint: np.ndarray) -> float:
    """Plug-in MI (nats) from a (K, 2) count table; the entropy/MI step shared by the numpy/polars paths."""
    n = joint.sum()
    px = joint.sum(1, keepdims=True)
    py = joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] * n / (px @ py)[nz])).sum() / n)


def stream(args: argparse.Namespace) -> None:
    """Stream one file through compute() under a memory budget; print rows, wall time and binned fields."""
    import leanrec.stats as S

    t = time.perf_counter()
    r = S.compute(args.stream, label=args.label, numeric=[], memory_budget=args.budget, threads=args.threads,
                  progress=False)
    print(f"rows {r.rows:,} wall {time.perf_counter() - t:.1f} s budget {args.budget} load {os.getloadavg()[0]:.1f} "
          f"max exact distinct {max(f['distinct'] or 0 for f in r.fields):,} "
          f"binned {[f['name'] for f in r.fields if f['approx']]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sklearn-rows", type=int, default=500_000, help="subsample for scikit-learn (extrapolated)")
    ap.add_argument("--string-fields", type=int, default=6, help="fields in the raw-string variant (half small, half large)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "stats")
    ap.add_argument("--stream", type=Path, help="stream this file through compute() instead (peak-memory check)")
    ap.add_argument("--label", default="click", help="label column of --stream")
    ap.add_argument("--budget", default="1GB", help="memory budget of --stream")
    args = ap.parse_args()
    if args.stream:
        stream(args)
        return
    os.environ.setdefault("POLARS_MAX_THREADS", str(args.threads))
    import polars as pl
    import pyarrow as pa
    from sklearn.metrics import mutual_info_score

    import leanrec.stats as S
    from leanrec import _native

    t0 = time.perf_counter()
    codes, label, num, cards = make_table(args.rows)
    gen_s = time.perf_counter() - t0
    n = args.rows
    res: dict = {"command": "python " + " ".join(sys.argv), "rows": n, "threads": args.threads, "cards": cards.tolist(), "machine": platform.machine(),
                 "cpus": os.cpu_count(), "load_avg": os.getloadavg(), "generate_s": gen_s, "timings_s": {}, "notes": []}
    T = res["timings_s"]
    cpu = res["cpu_s"] = {}

    class _T(dict):  # every wall timing also records the CPU seconds of the same run
        def __setitem__(self, k, v):
            super().__setitem__(k, v)
            cpu[k] = CPU.get("last", float("nan"))
    T = res["timings_s"] = _T()
    codes_bytes = codes.nbytes

    # plain read (memory-bandwidth floor): sum every code column
    T["plain_read"], _ = timed(lambda: [int(codes[:, f].sum(dtype=np.int64)) for f in range(26)], 3)

    # leanrec: distinct + entropy + MI for the 26 fields
    lab2 = label[:, None]
    T["leanrec_univariate"], stats = timed(lambda: _native.matrix_field_stats(codes, lab2, args.threads), 2)
    lean_mi = np.array([s["mi"][0] for s in stats])

    # per-field-type speed (small vs large cardinality)
    small = [f for f in range(26) if cards[f] <= 10_000]
    large = [f for f in range(26) if cards[f] > 10_000]
    for name, sel in (("small_card", small), ("large_card", large)):
        sub = np.asfortranarray(codes[:, sel])
        T[f"leanrec_univariate_{name}"], _ = timed(lambda: _native.matrix_field_stats(sub, lab2, args.threads))
        T[f"plain_read_{name}"], _ = timed(lambda: [int(sub[:, i].sum(dtype=np.int64)) for i in range(len(sel))])

    # numpy bincount on dense codes (1 thread): counts + entropy + MI + distinct
    def numpy_uni():
        out = []
        for f in range(26):
            joint = np.bincount(codes[:, f].astype(np.int64) * 2 + label, minlength=2 * int(cards[f])).reshape(-1, 2)
            cx = joint.sum(1)
            p = cx[cx > 0] / n
            out.append((int((cx > 0).sum()), float(-(p * np.log(p)).sum()), mi_from_joint(joint)))
        return out
    T["numpy_bincount_univariate"], np_out = timed(numpy_uni)
    assert np.allclose([o[2] for o in np_out], lean_mi, rtol=1e-9, atol=1e-12)

    # polars group_by counts per field (same threads)
    df = pl.DataFrame({f"C{f}": codes[:, f] for f in range(26)} | {"label": label})

    def polars_uni():
        out = []
        for f in range(26):
            g = df.group_by([f"C{f}", "label"]).len()
            x = g[f"C{f}"].to_numpy()
            y = g["label"].to_numpy()
            c = g["len"].to_numpy().astype(np.float64)
            _, inv = np.unique(x, return_inverse=True)
            joint = np.zeros((inv.max() + 1, 2))
            np.add.at(joint, (inv, y), c)
            out.append(mi_from_joint(joint))
        return out
    T["polars_group_by_univariate"], pl_mi = timed(polars_uni)
    assert np.allclose(pl_mi, lean_mi, rtol=1e-9, atol=1e-12)

    # scikit-learn mutual_info_score on a subsample, extrapolated linearly to all rows
    m = min(n, args.sklearn_rows)
    t_sk, _ = timed(lambda: [mutual_info_score(codes[:m, f], label[:m]) for f in range(26)])
    T["sklearn_univariate"] = t_sk * n / m
    cpu["sklearn_univariate"] *= n / m
    if m < n:
        res["notes"].append(f"scikit-learn timed on {m:,} rows ({t_sk:.2f} s) and extrapolated x{n / m:.1f}")

    # numeric variance for the 13 fields
    arrs = [pa.array(num[:, j], from_pandas=True) for j in range(13)]

    def lean_var():
        accs = [_native.NumericAccumulator() for _ in range(13)]
        _native.update_batch([], list(zip(accs, arrs)), [], None, 0, args.threads)
        return [a.stats()["variance"] for a in accs]
    T["leanrec_variance"], lv = timed(lean_var, 3)
    dfn = pl.DataFrame({f"I{j}": num[:, j] for j in range(13)}).fill_nan(None)
    T["polars_variance"], pv = timed(lambda: dfn.select(pl.all().var(ddof=0)).row(0), 3)
    assert np.allclose(lv, pv, rtol=1e-9)

    # pairwise I(X_i; l | X_j) for 20 pairs among the fields whose joint table numpy can hold densely
    low = [f for f in range(26) if cards[f] <= 3000]
    pairs = [(a, b) for i, a in enumerate(low) for b in low[i + 1:]][:20]
    res["pairs"] = pairs
    T["leanrec_pair_cmi"], pc = timed(lambda: S.pairwise_label_cmi(codes, label, pairs=pairs, threads=args.threads))

    def numpy_pairs():
        out = []
        for a, b in pairs:
            ca, cb = int(cards[a]), int(cards[b])
            j = np.bincount((codes[:, a].astype(np.int64) * cb + codes[:, b]) * 2 + label,
                            minlength=ca * cb * 2).reshape(ca, cb, 2).astype(np.float64)
            nz_b = j.sum((0, 2))
            nxz = j.sum(2)
            nyz = j.sum(0)
            nz = j > 0
            ratio = (j * nz_b[None, :, None]) / (nxz[:, :, None] * nyz[None, :, :])
            out.append(float((j[nz] * np.log(ratio[nz])).sum() / n))
        return out
    T["numpy_bincount_pair_cmi"], npc = timed(numpy_pairs)
    assert np.allclose(npc, [pc[0, a, b] for a, b in pairs], rtol=1e-8, atol=1e-12)

    # scikit-learn chain rule I(X;l|Z) = I((X,Z); l) - I(Z; l) on a subsample, extrapolated
    def sk_pairs():
        out = []
        for a, b in pairs:
            joint = codes[:m, a].astype(np.int64) * int(cards[b]) + codes[:m, b]
            out.append(mutual_info_score(joint, label[:m]) - mutual_info_score(codes[:m, b], label[:m]))
        return out
    t_skp, _ = timed(sk_pairs)
    T["sklearn_pair_cmi"] = t_skp * n / m
    cpu["sklearn_pair_cmi"] *= n / m

    # raw values: the same codes as strings (engine hashes them, keeps the bytes for top-k) vs polars
    import pyarrow.compute as pac
    k = max(2, args.string_fields)
    sel_s = small[-(k // 2):] + large[:k - k // 2]
    res["string_fields"] = [int(f) for f in sel_s]
    strs = [pac.cast(pa.array(codes[:, f]), pa.string()) for f in sel_s]

    def lean_str():
        accs = [_native.FieldAccumulator(1, budget_bytes=1 << 30, keep_values=True) for _ in sel_s]
        _native.update_batch(list(zip(accs, strs)), [], [], lab2, 1, args.threads)
        return [a.stats()["mi"][0] for a in accs]
    T["leanrec_univariate_strings"], ls_mi = timed(lean_str)
    assert np.allclose(ls_mi, lean_mi[sel_s], rtol=1e-9, atol=1e-12)
    dfs = pl.DataFrame({f"S{i}": pl.from_arrow(a) for i, a in enumerate(strs)} | {"label": label})

    def polars_str():
        out = []
        for i in range(len(sel_s)):
            g = dfs.group_by([f"S{i}", "label"]).len()
            _, inv = np.unique(g[f"S{i}"].to_numpy(), return_inverse=True)
            joint = np.zeros((inv.max() + 1, 2))
            np.add.at(joint, (inv, g["label"].to_numpy()), g["len"].to_numpy().astype(np.float64))
            out.append(mi_from_joint(joint))
        return out
    T["polars_group_by_strings"], ps_mi = timed(polars_str)
    assert np.allclose(ps_mi, lean_mi[sel_s], rtol=1e-9, atol=1e-12)
    res["notes"].append(f"raw-string variant: fields {res['string_fields']} cast to strings "
                        f"(cardinalities {[int(cards[f]) for f in sel_s]})")

    res["speedups"] = {
        "univariate_vs_sklearn": T["sklearn_univariate"] / T["leanrec_univariate"],
        "univariate_vs_polars": T["polars_group_by_univariate"] / T["leanrec_univariate"],
        "univariate_vs_numpy_bincount": T["numpy_bincount_univariate"] / T["leanrec_univariate"],
        "pair_cmi_vs_numpy": T["numpy_bincount_pair_cmi"] / T["leanrec_pair_cmi"],
        "pair_cmi_vs_sklearn": T["sklearn_pair_cmi"] / T["leanrec_pair_cmi"],
        "strings_vs_polars": T["polars_group_by_strings"] / T["leanrec_univariate_strings"],
        "variance_vs_polars": T["polars_variance"] / T["leanrec_variance"],
        "univariate_vs_plain_read": T["leanrec_univariate"] / T["plain_read"],
        "small_card_vs_plain_read": T["leanrec_univariate_small_card"] / T["plain_read_small_card"],
        "large_card_vs_plain_read": T["leanrec_univariate_large_card"] / T["plain_read_large_card"],
    }
    # the same ratios in CPU seconds (robust to waiting on a loaded machine; favours single-threaded baselines)
    res["speedups_cpu"] = {k: cpu[num] / cpu[den] for k, (num, den) in {
        "univariate_vs_sklearn": ("sklearn_univariate", "leanrec_univariate"),
        "univariate_vs_polars": ("polars_group_by_univariate", "leanrec_univariate"),
        "univariate_vs_numpy_bincount": ("numpy_bincount_univariate", "leanrec_univariate"),
        "pair_cmi_vs_numpy": ("numpy_bincount_pair_cmi", "leanrec_pair_cmi"),
        "pair_cmi_vs_sklearn": ("sklearn_pair_cmi", "leanrec_pair_cmi"),
        "variance_vs_polars": ("polars_variance", "leanrec_variance"),
        "strings_vs_polars": ("polars_group_by_strings", "leanrec_univariate_strings"),
    }.items()}
    targets = {"univariate_vs_sklearn": 50, "univariate_vs_polars": 3, "univariate_vs_numpy_bincount": 2,
               "pair_cmi_vs_numpy": 2, "pair_cmi_vs_sklearn": 40, "variance_vs_polars": 1}
    res["targets"] = {k: {"target": v, "wall": res["speedups"][k], "pass_wall": res["speedups"][k] >= v,
                          "cpu": res["speedups_cpu"][k], "pass_cpu": res["speedups_cpu"][k] >= v}
                      for k, v in targets.items()}
    res["load_avg_end"] = os.getloadavg()
    res["values_per_s_leanrec_univariate"] = n * 26 / T["leanrec_univariate"]
    res["codes_gb"] = codes_bytes / 1e9
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(res, indent=2))
    lines = [f"# leanrec stats benchmark: {n:,} rows, {args.threads} threads", "",
             f"command: `{res['command']}`", "",
             f"load average (1/5/15 min) at start: {'/'.join(f'{x:.1f}' for x in res['load_avg'])}, at end: "
             f"{'/'.join(f'{x:.1f}' for x in res['load_avg_end'])} on {res['cpus']} CPUs "
             "(shared machine: wall times include waiting for a core)", "",
             "| measurement | wall s | CPU s (all threads) |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {v:.3f} | {cpu.get(k, float('nan')):.3f} |" for k, v in T.items()]
    lines += ["", "| ratio (baseline / leanrec) | wall x | CPU x |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {v:.2f} | {res['speedups_cpu'].get(k, float('nan')):.2f} |" for k, v in res["speedups"].items()]
    lines += ["", "| target | needs | wall | CPU |", "| --- | ---: | --- | --- |"]
    lines += [f"| {k} | >= {t['target']}x | {t['wall']:.2f}x {'PASS' if t['pass_wall'] else 'FAIL'} | "
              f"{t['cpu']:.2f}x {'PASS' if t['pass_cpu'] else 'FAIL'} |" for k, t in res["targets"].items()]
    lines += [""] + [f"- {note}" for note in res["notes"]]
    lines += ["", "Streaming peak memory (`--stream`, measured separately): see stats_streaming.md."]
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
