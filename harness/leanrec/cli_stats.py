"""`leanrec stats SOURCE ...`: per-field statistics of a log, printed as a table and optionally saved/plotted."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table


def stats_command(
    source: Optional[Path] = typer.Argument(None, help="File, directory of shards (CSV/TSV/Parquet/Arrow IPC); "
                                                      "default: the files of --dataset."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset card (TOML path or registered name): "
                                          "format, column names, labels, fields and numeric kinds."),
    format: Optional[str] = typer.Option(None, "--format", help="csv | tsv | parquet | ipc (default: by suffix)."),
    names: Optional[str] = typer.Option(None, "--names", help="Comma-separated column names for header-less CSV/TSV."),
    label: Optional[str] = typer.Option(None, "--label", help="Label column(s), comma-separated, values 0/1 "
                                        "(default: the card's labels, else 'label')."),
    fields: Optional[str] = typer.Option(None, "--fields", help="Comma-separated fields (default: all but labels)."),
    pairs: bool = typer.Option(False, "--pairs", help="Also compute I(Xi;Xj) and I(Xi;l|Xj) for all field pairs."),
    memory_budget: str = typer.Option("2GB", "--memory-budget", help="Budget for exact tables, e.g. 2GB."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Worker threads (default: all cores)."),
    on_bad_rows: str = typer.Option("error", "--on-bad-rows", help="error | skip"),
    out: Optional[Path] = typer.Option(None, "--out", help="Write per-field stats to FILE.csv|.json|.parquet."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Bar chart of MI per field to FILE.png."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress indicator."),
    estimator: str = typer.Option("plugin", "--estimator",
                                  help="plugin | miller-madow (bias-corrected; plug-in MI favours many-valued fields)."),
    reader: str = typer.Option("native", "--reader", help="File reader: native (CSV/TSV parsed and Parquet integer "
                               "pages counted in Rust) | arrow (pyarrow record batches); same results."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                          help="Count the shard files on a local Dask cluster of N worker processes "
                                          "(one task per file; same result as one process)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Count the shard files on an existing Dask "
                                            "cluster, e.g. tcp://host:8786 (workers must see the same paths)."),
    findings: bool = typer.Option(True, "--findings/--no-findings", help="Leakage, identifier-like, constant, "
                                  "mostly-null and no-signal fields, with what to do (after the table)."),
    null_rows: int = typer.Option(500_000, "--null-rows", min=100, help="Rows read for the findings' "
                                  "label-permutation null (the first rows of the source)."),
) -> None:
    """Rows, nulls, distinct (exact + HLL), entropy, MI with each label, numeric summaries per field; then findings."""
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None  # noqa: E731
    labels = split(label)
    kwargs = dict(dataset=dataset, format=format, names=split(names), label=labels, fields=split(fields),
                  pairs=pairs, memory_budget=memory_budget, threads=threads, on_bad_rows=on_bad_rows,
                  estimator=estimator)
    if workers is not None or scheduler is not None:
        report = _distributed(source, workers, scheduler, reader, kwargs)
    else:
        from leanrec.stats import compute

        report = compute(source, progress=progress, reader=reader, **kwargs)  # type: ignore[arg-type]
    console = Console()
    table = Table(title=f"{report.source}: {report.rows:,} rows"
                        + (f", {report.bad_rows:,} bad rows skipped" if report.bad_rows else ""))
    for col in ["field", "kind", "nulls", "distinct", "entropy", *[f"MI {lab}" for lab in report.labels],
                *[f"NMI {lab}" for lab in report.labels], "mean", "variance"]:
        table.add_column(col, justify="left" if col in ("field", "kind") else "right")
    fmt = lambda v, spec=".4g": "-" if v is None else format_(v, spec)  # noqa: E731
    for f in report.fields:
        distinct = f"~{f['hll']:,.0f}" if f["distinct"] is None else f"{f['distinct']:,}"
        table.add_row(f["name"] + (" *" if f["approx"] else ""), f["kind"], f"{f['nulls']:,}", distinct,
                      fmt(f["entropy"]), *[fmt(f[f"mi_{lab}"]) for lab in report.labels],
                      *[fmt(f[f"nmi_{lab}"]) for lab in report.labels], fmt(f.get("mean")), fmt(f.get("variance")))
    console.print(table)
    if any(f["approx"] for f in report.fields):
        console.print("[yellow]* exact table exceeded its memory share: binned approximation (MI/entropy are "
                      "lower bounds, distinct is the HLL estimate). Raise --memory-budget for exact values.[/yellow]")
    for p in report.pairs:
        console.print(f"{p['a']} x {p['b']}: I={p['mi_ab']:.4g}"
                      + "".join(f", I(a;{lab}|b)={p[f'cmi_a_given_b_{lab}']:.4g}, I(b;{lab}|a)={p[f'cmi_b_given_a_{lab}']:.4g}"
                                for lab in report.labels))
    if findings:
        _findings(report, source, dataset, format, split(names), null_rows, threads, console)
    if out:
        console.print(f"wrote {report.write(out)}")
    if plot:
        console.print(f"wrote {report.plot(plot)}")


def _distributed(source: Optional[Path], workers: Optional[int], scheduler: Optional[str], reader: str,
                 kwargs: dict) -> Any:
    """`compute_distributed` on a local cluster of `workers` processes or on the cluster at `scheduler`."""
    from leanrec.errors import ConfigError
    from leanrec.stats import compute_distributed

    if workers is not None and scheduler is not None:
        raise ConfigError("give either --workers (a local cluster) or --scheduler (an existing one), not both")
    if reader != "native":
        raise ConfigError("--reader applies to one-process counting; with --workers/--scheduler each worker "
                          "uses the native reader")
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--workers/--scheduler need dask: pip install 'leanrec[distributed]'") from None
    if scheduler is not None:
        with Client(scheduler, timeout="20s") as client:
            return compute_distributed(source, client=client, **kwargs)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        return compute_distributed(source, client=client, **kwargs)


def _findings(report: Any, source: Optional[Path], dataset: Optional[str], format: Optional[str],
              names: Optional[list], null_rows: int, threads: Optional[int], console: Console) -> None:
    """Compute the findings (label-permutation null on the source's first rows), attach and print them."""
    from leanrec.stats import findings as fnd

    source_: Any = source
    if dataset is not None:  # the card's reader settings (and its files when no source is given), as compute
        from leanrec.stats.engine import card_options

        files, opts = card_options(dataset)
        source_ = files if source is None else source
        format, names = format or opts["format"], names or opts["names"]
    found = fnd.analyse(report, source_, format=format, names=names, null_rows=null_rows, threads=threads)
    fnd.attach(report, found)
    if not found:
        console.print("findings: none (no leakage, identifier-like, constant, near-constant, mostly-null or "
                      "no-signal fields)")
        return
    table = Table(title=f"findings ({len(found)})")
    for col in ("field", "finding", "measure", "value", "threshold", "do"):
        table.add_column(col, justify="right" if col in ("value", "threshold") else "left")
    for x in found:
        table.add_row(x.field, x.kind + (f" ({x.label})" if x.label and len(report.labels) > 1 else ""),
                      x.measure, format_(x.value, ".4g"), format_(x.threshold, ".4g"), x.advice)
    console.print(table)


def format_(v: float, spec: str) -> str:
    return format(v, spec) if isinstance(v, float) else str(v)
