"""`leanrec stats` on files (the path people use) vs polars and pyarrow, same threads, same run.

    python benchmarks/bench_stats_file.py --rows 2000000 --threads 2 --repeat 5

Table (issue 19): `rows` rows of 13 integer columns with Zipf(1.2) frequencies over cardinalities
log-spaced from 3 to 1M (values are a random permutation of 0..card-1, like encoded ids) and a 0/1
label that depends on two of them; written once to Parquet (pyarrow defaults: snappy, dictionary pages)
and CSV (with header) under --dir and reused. Runs, side by side, interleaved round by round so load
changes hit all of them alike:

* leanrec, default settings: `compute(path)` (integer columns inferred numeric: categorical statistics
  and mean/variance/min/max);
* leanrec, every field categorical: `compute(path, numeric=[])`;
* polars: `read_parquet` / `read_csv` then, per field, counts jointly with the label (`group_by().len()`);
* pyarrow decode alone: `pyarrow.parquet.read_table` / `pyarrow.csv.read_csv` (typed), no counting; for
  Parquet also the batch reader leanrec's Arrow path uses (`ParquetFile.iter_batches(65536)`), decode only
  (leanrec's default reader for Parquet files of integer columns is its own, leanrec_core::parquet).

Each run is timed `--repeat` times (the order of the runs rotates from round to round) with the page
cache warm, and (where `posix_fadvise(DONTNEED)` can
evict the file: it drops this file's clean pages only, no root needed) with the file evicted before
each run ("cold"). Then the Criteo-format TSV of benchmarks/bench_stats_text.py (`--text-rows` rows):
leanrec's native reader vs polars read_csv + group_by, warm. Results with the command, the load
average and ratios: benchmarks/results/stats_file.md and .json (median and best of the repeats).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from leanrec.records import atomic_write_text

FIELDS = [f"f{i}" for i in range(13)]


def write_int_table(parquet: Path, csv: Path, rows: int, seed: int = 0) -> None:
    """The integer table as Parquet and CSV (written to temporary names, then renamed)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    cards = np.geomspace(3, 1_000_000, 13).round().astype(np.int64)
    cols = {}
    for name, card in zip(FIELDS, cards):
        weights = np.arange(1, card + 1, dtype=np.float64) ** -1.2
        cdf = np.cumsum(weights / weights.sum())
        rank = np.minimum(np.searchsorted(cdf, rng.random(rows)), card - 1)
        cols[name] = rng.permutation(card)[rank].astype(np.int64)
    logit = -1.4 + 0.8 * (cols["f1"] == 0) + 0.5 * (cols["f6"] % 7 == 0)
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    table = pa.table({"label": label, **cols})
    for path, write in ((parquet, lambda p: pq.write_table(table, p)), (csv, lambda p: pacsv.write_csv(table, p))):
        tmp = path.with_name(path.name + ".tmp")
        write(tmp)
        os.replace(tmp, path)


def evict(path: Path) -> None:
    """Drop the file's pages from the page cache (clean pages only; advisory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def eviction_works(path: Path) -> bool:
    """Whether evicting makes a plain read of the file clearly slower (else cold runs are not reported)."""
    def read() -> float:
        t = time.perf_counter()
        with open(path, "rb", buffering=0) as fh:
            while fh.read(16 << 20):
                pass
        return time.perf_counter() - t
    read()
    warm = min(read() for _ in range(3))
    evict(path)
    cold = read()
    return cold > 1.5 * warm


def cpu_seconds() -> float:
    """CPU time of this process so far, every thread (user + system): what a call costs whatever the load."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--text-rows", type=int, default=1_000_000, help="rows of the Criteo-format TSV (0: skip it)")
    ap.add_argument("--dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "stats_file")
    args = ap.parse_args()
    os.environ["POLARS_MAX_THREADS"] = str(args.threads)
    import polars as pl
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    import leanrec.stats as S

    pa.set_cpu_count(args.threads)
    parquet, csv = args.dir / f"leanrec_ints_{args.rows}.parquet", args.dir / f"leanrec_ints_{args.rows}.csv"
    if not (parquet.exists() and csv.exists()):
        print(f"writing {args.rows:,} rows to {parquet} and {csv} ...", flush=True)
        write_int_table(parquet, csv, args.rows)
    res: dict = {"command": "python " + " ".join(sys.argv), "rows": args.rows, "threads": args.threads,
                 "machine": platform.machine(), "cpus": os.cpu_count(), "load_avg_before": os.getloadavg(),
                 "files": {}, "runs": {}}
    kw = dict(label="label", threads=args.threads, progress=False)

    def polars_counts(df) -> int:
        return sum(df.group_by([f, "label"]).len().height for f in FIELDS)

    candidates = {
        "parquet": {
            "leanrec_default": lambda: S.compute(parquet, **kw),
            "leanrec_all_categorical": lambda: S.compute(parquet, numeric=[], **kw),
            "polars_read_group_by": lambda: polars_counts(pl.read_parquet(parquet)),
            "pyarrow_decode_alone": lambda: pq.read_table(parquet).num_rows,
            # the reader leanrec uses (64K-row batches), decode only
            "pyarrow_decode_batches": lambda: sum(b.num_rows for b in pq.ParquetFile(parquet, pre_buffer=False)
                                                  .iter_batches(batch_size=65536)),
        },
        "csv": {
            "leanrec_default": lambda: S.compute(csv, **kw),
            "leanrec_all_categorical": lambda: S.compute(csv, numeric=[], **kw),
            "polars_read_group_by": lambda: polars_counts(pl.read_csv(csv)),
            "pyarrow_decode_alone": lambda: pacsv.read_csv(csv).num_rows,
        },
    }
    # the results agree across formats (and the benchmark is not timing something broken)
    rep_pq, rep_csv = candidates["parquet"]["leanrec_default"](), candidates["csv"]["leanrec_default"]()
    for a, b in zip(rep_pq.fields, rep_csv.fields):
        assert (a["distinct"], a["mi_label"], a["entropy"]) == (b["distinct"], b["mi_label"], b["entropy"]), a["name"]
        assert abs(a["mean"] - b["mean"]) <= 1e-12 * abs(a["mean"]), a["name"]  # batch boundaries differ
    res["distinct"] = {f["name"]: f["distinct"] for f in rep_pq.fields}
    for fmt, path in (("parquet", parquet), ("csv", csv)):
        res["files"][fmt] = {"path": str(path), "bytes": path.stat().st_size}
        states = ["warm"] + (["cold"] if eviction_works(path) else [])
        res["files"][fmt]["cold_possible"] = "cold" in states
        for state in states:
            times: dict[str, list[float]] = {name: [] for name in candidates[fmt]}
            cpu: dict[str, list[float]] = {name: [] for name in candidates[fmt]}
            for name, fn in candidates[fmt].items():  # one untimed round (imports, first touch)
                fn()
            names = list(candidates[fmt])
            for r in range(args.repeat):  # the order rotates, so no run always follows the same one
                for name in names[r % len(names):] + names[:r % len(names)]:
                    if state == "cold":
                        evict(path)
                    t, c = time.perf_counter(), cpu_seconds()
                    candidates[fmt][name]()
                    times[name].append(time.perf_counter() - t)
                    cpu[name].append(cpu_seconds() - c)
            for name, ts in times.items():
                res["runs"][f"{fmt}/{state}/{name}"] = {"median_s": statistics.median(ts), "best_s": min(ts),
                                                        "all_s": ts, "median_cpu_s": statistics.median(cpu[name])}
                print(f"{fmt:8s} {state:5s} {name:26s} median {statistics.median(ts):6.3f} s  best {min(ts):6.3f} s  "
                      f"CPU {statistics.median(cpu[name]):6.3f} s", flush=True)

    if args.text_rows:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_stats_text import NAMES, write_criteo_like

        tsv = args.dir / f"leanrec_criteo_like_{args.text_rows}.tsv"
        if not tsv.exists():
            print(f"writing {args.text_rows:,} rows to {tsv} ...", flush=True)
            write_criteo_like(tsv, args.text_rows)
        res["files"]["criteo_tsv"] = {"path": str(tsv), "bytes": tsv.stat().st_size}
        tkw = dict(format="tsv", names=NAMES, label="label", numeric=NAMES[1:14], threads=args.threads,
                   progress=False)

        def polars_tsv() -> int:
            df = pl.read_csv(tsv, separator="\t", has_header=False, new_columns=NAMES, infer_schema=False,
                             quote_char=None)
            return sum(df.group_by([f, "label"]).len().height for f in NAMES[1:])
        text_runs = {"leanrec_default": lambda: S.compute(tsv, **tkw), "polars_read_group_by": polars_tsv}
        times = {name: [] for name in text_runs}
        for fn in text_runs.values():
            fn()
        for _ in range(max(1, args.repeat // 2)):
            for name, fn in text_runs.items():
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        for name, ts in times.items():
            res["runs"][f"criteo_tsv/warm/{name}"] = {"median_s": statistics.median(ts), "best_s": min(ts), "all_s": ts}
            print(f"criteo   warm  {name:26s} median {statistics.median(ts):6.3f} s  best {min(ts):6.3f} s", flush=True)

        # the same rows as Parquet (pyarrow defaults; I1..I13 as integers, C1..C26 as strings): the native
        # reader (text columns' dictionary pages counted by index) against the Arrow path and polars
        cpq = tsv.with_suffix(".parquet")
        if not cpq.exists():
            types = {c: pa.int64() for c in NAMES[:14]} | {c: pa.string() for c in NAMES[14:]}
            table = pacsv.read_csv(tsv, read_options=pacsv.ReadOptions(column_names=NAMES),
                                   parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
                                   convert_options=pacsv.ConvertOptions(column_types=types))
            pq.write_table(table, cpq)
        res["files"]["criteo_parquet"] = {"path": str(cpq), "bytes": cpq.stat().st_size}
        pkw = dict(label="label", numeric=NAMES[1:14], threads=args.threads, progress=False)

        def polars_pq() -> int:
            df = pl.read_parquet(cpq)
            return sum(df.group_by([f, "label"]).len().height for f in NAMES[1:])
        pq_runs = {"leanrec_default": lambda: S.compute(cpq, **pkw),
                   "leanrec_arrow_reader": lambda: S.compute(cpq, reader="arrow", **pkw),
                   "polars_read_group_by": polars_pq,
                   "pyarrow_decode_alone": lambda: pq.read_table(cpq)}
        times = {name: [] for name in pq_runs}
        for fn in pq_runs.values():
            fn()
        for r in range(args.repeat):
            names = list(pq_runs)
            for name in names[r % len(names):] + names[:r % len(names)]:
                t = time.perf_counter()
                pq_runs[name]()
                times[name].append(time.perf_counter() - t)
        for name, ts in times.items():
            res["runs"][f"criteo_parquet/warm/{name}"] = {"median_s": statistics.median(ts), "best_s": min(ts), "all_s": ts}
            print(f"criteo.pq warm {name:26s} median {statistics.median(ts):6.3f} s  best {min(ts):6.3f} s", flush=True)
    res["load_avg_after"] = os.getloadavg()
    write_results(res, args.out)


def write_results(res: dict, out: Path) -> None:
    """JSON with every timing, and a markdown table with the issue's ratios and targets."""
    runs = res["runs"]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".json"), json.dumps(res, indent=2))
    med = lambda key: runs[key]["median_s"] if key in runs else None  # noqa: E731
    f = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    load_b, load_a = res["load_avg_before"], res["load_avg_after"]
    lines = [
        "# leanrec stats on files vs polars and pyarrow", "",
        f"Command: `{res['command']}`. {res['rows']:,} rows x 13 integer Zipf columns (cardinalities 3..1M) + a 0/1 "
        f"label; Parquet {res['files']['parquet']['bytes'] / 1e6:.0f} MB, CSV {res['files']['csv']['bytes'] / 1e6:.0f} MB. "
        f"{res['threads']} threads for every tool, {res['cpus']} CPUs; load average (1/5/15 min) "
        f"{load_b[0]:.2f}/{load_b[1]:.2f}/{load_b[2]:.2f} before, {load_a[0]:.2f}/{load_a[1]:.2f}/{load_a[2]:.2f} after. "
        "Median of the repeats (best in parentheses), whole calls, same run, interleaved (order rotating). "
        "The machine is shared: wall times include waiting for a core, so compare ratios within a row.", "",
        "| file | cache | leanrec, default | leanrec, every field categorical | polars read + group_by | "
        "pyarrow decode alone | default / fastest pyarrow decode | polars / default |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for fmt in ("parquet", "csv"):
        for state in ("warm", "cold"):
            k = f"{fmt}/{state}/"
            if k + "leanrec_default" not in runs:
                continue
            d, c, p, a = (med(k + n) for n in ("leanrec_default", "leanrec_all_categorical", "polars_read_group_by",
                                                "pyarrow_decode_alone"))
            best = lambda n: runs[k + n]["best_s"]  # noqa: E731
            decode = f"{f(a)} ({f(best('pyarrow_decode_alone'))})"
            if k + "pyarrow_decode_batches" in runs:
                decode += f"; batches {f(med(k + 'pyarrow_decode_batches'))} ({f(best('pyarrow_decode_batches'))})"
                a = min(a, med(k + "pyarrow_decode_batches"))
            lines.append(f"| {fmt} | {state} | {f(d)} ({f(best('leanrec_default'))}) | {f(c)} "
                         f"({f(best('leanrec_all_categorical'))}) | {f(p)} ({f(best('polars_read_group_by'))}) | "
                         f"{decode} | {d / a:.2f}x | {p / d:.2f}x |")
    if "criteo_tsv/warm/leanrec_default" in runs:
        d, p = med("criteo_tsv/warm/leanrec_default"), med("criteo_tsv/warm/polars_read_group_by")
        size = res["files"]["criteo_tsv"]["bytes"]
        lines += ["", f"Criteo-format TSV ({size / 1e6:.0f} MB, 39 fields, benchmarks/bench_stats_text.py's generator), "
                  f"warm: leanrec {d:.2f} s, polars read_csv + group_by {p:.2f} s: polars / leanrec = {p / d:.2f}x."]
    if "criteo_parquet/warm/leanrec_default" in runs:
        d, a, p, x = (med(f"criteo_parquet/warm/{n}") for n in ("leanrec_default", "leanrec_arrow_reader",
                                                                "polars_read_group_by", "pyarrow_decode_alone"))
        size = res["files"]["criteo_parquet"]["bytes"]
        lines += ["", f"The same rows as Parquet ({size / 1e6:.0f} MB; I1..I13 integers, C1..C26 strings), warm: leanrec "
                  f"{d:.2f} s (its native reader), {a:.2f} s with the Arrow reader, polars read_parquet + group_by "
                  f"{p:.2f} s, pyarrow read_table alone {x:.2f} s: polars / leanrec = {p / d:.2f}x, leanrec / "
                  f"pyarrow decode = {d / x:.2f}x."]
    if not res["files"]["csv"].get("cold_possible"):
        lines += ["", "Cold cache: evicting the file with posix_fadvise(DONTNEED) did not slow a plain read down "
                  "(pages stay cached, e.g. by the host); dropping all caches needs root on a shared machine, "
                  "so only warm runs are reported."]
    targets = []
    for state in ("warm", "cold"):
        k = f"parquet/{state}/"
        if k + "leanrec_default" in runs:
            d, p = med(k + "leanrec_default"), med(k + "polars_read_group_by")
            a = min(med(k + "pyarrow_decode_alone"), med(k + "pyarrow_decode_batches"))
            targets.append(f"Parquet, {state}: default within 1.3x of pyarrow decode (the faster of read_table and "
                           f"iter_batches): {d / a:.2f}x "
                           f"{'met' if d / a <= 1.3 else 'NOT met'}; >= 1.5x polars: {p / d:.2f}x "
                           f"{'met' if p / d >= 1.5 else 'NOT met'}.")
        k = f"csv/{state}/"
        if k + "leanrec_default" in runs:
            d, p = med(k + "leanrec_default"), med(k + "polars_read_group_by")
            targets.append(f"CSV, {state}: >= 2x polars: {p / d:.2f}x {'met' if p / d >= 2 else 'NOT met'}.")
    if "criteo_tsv/warm/leanrec_default" in runs:
        d, p = med("criteo_tsv/warm/leanrec_default"), med("criteo_tsv/warm/polars_read_group_by")
        targets.append(f"Criteo TSV, warm: >= 2x polars: {p / d:.2f}x {'met' if p / d >= 2 else 'NOT met'}.")
    lines += ["", "Targets (issue 19), from the medians:", ""] + [f"* {t}" for t in targets]
    lines += cpu_floor(res)
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')}")


def cpu_floor(res: dict) -> list[str]:
    """The CPU each call used (all threads), and the wall time leanrec cannot beat on `threads` cores: its CPU
    divided by the threads, i.e. with decoding and counting perfectly overlapped and every thread busy."""
    runs, threads = res["runs"], res["threads"]
    k = "parquet/warm/"
    if k + "leanrec_default" not in runs or "median_cpu_s" not in runs[k + "leanrec_default"]:
        return []
    names = ("leanrec_default", "leanrec_all_categorical", "polars_read_group_by", "pyarrow_decode_alone",
             "pyarrow_decode_batches")
    cpu = {n: runs[k + n]["median_cpu_s"] for n in names if k + n in runs}
    wall = {n: runs[k + n]["median_s"] for n in names if k + n in runs}
    decode = min(wall["pyarrow_decode_alone"], wall["pyarrow_decode_batches"])
    floor = cpu["leanrec_default"] / threads
    lines = ["", "## CPU per call (Parquet, warm; median CPU seconds of the process, all threads)", "",
             "| run | wall s | CPU s |", "| --- | ---: | ---: |"]
    lines += [f"| {n} | {wall[n]:.3f} | {cpu[n]:.3f} |" for n in cpu]
    lines += ["", f"leanrec's default call needs {cpu['leanrec_default']:.3f} CPU s: its native Parquet reader "
              f"decodes, counts and summarises in that time, against {cpu['pyarrow_decode_alone']:.3f} CPU s for "
              f"pyarrow's decode alone (read_table; {cpu['pyarrow_decode_batches']:.3f} with the batch reader). On "
              f"{threads} threads it cannot take less than {floor:.3f} s of wall time, {floor / decode:.2f}x the "
              f"fastest decode ({decode:.3f} s); the measured {wall['leanrec_default'] / decode:.2f}x is "
              f"{wall['leanrec_default'] / floor:.2f}x that floor."]
    return lines


if __name__ == "__main__":
    main()
