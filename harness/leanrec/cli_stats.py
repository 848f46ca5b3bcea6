"""`leanrec stats SOURCE ...`: per-field statistics of a log, printed as a table and optionally saved/plotted."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

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
    reader: str = typer.Option("native", "--reader", help="CSV/TSV reader: native (parsed and counted in Rust) | "
                               "arrow (pyarrow record batches); same results."),
) -> None:
    """Rows, nulls, distinct (exact + HLL), entropy, MI with each label, numeric summaries per field."""
    from leanrec.stats import compute

    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None  # noqa: E731
    labels = split(label)
    report = compute(source, dataset=dataset, format=format, names=split(names), label=labels,
                     fields=split(fields), pairs=pairs, memory_budget=memory_budget, threads=threads,
                     on_bad_rows=on_bad_rows, progress=progress, estimator=estimator,  # type: ignore[arg-type]
                     reader=reader)
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
    if out:
        console.print(f"wrote {report.write(out)}")
    if plot:
        console.print(f"wrote {report.plot(plot)}")


def format_(v: float, spec: str) -> str:
    return format(v, spec) if isinstance(v, float) else str(v)
