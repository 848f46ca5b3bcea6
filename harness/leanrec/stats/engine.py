"""Streaming statistics over files: CSV / TSV (with or without header) / Parquet / Arrow IPC / shard folders.

`compute` reads a source in bounded memory and feeds mergeable Rust accumulators. The pieces live in
modules by concern:

* `sources`: file listing, format detection, compression, CSV/TSV headers;
* `arrow_reader`: reading files as Arrow record batches; `validate`: checking and typing a batch;
* `spec`: what to count and how field kinds are inferred;
* `table`: `TableAccumulator` (all accumulators of a table, its blob format, the report);
* `counting`: the loop over files (native CSV/TSV reader or Arrow batches);
* `cards`: settings from dataset cards; `progress`: the progress display;
* `distributed`: `compute_distributed` over a Dask cluster.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from leanrec.errors import ConfigError
from leanrec.stats.cards import card_options, labels_arg, with_card
from leanrec.stats.counting import count_files
from leanrec.stats.distributed import compute_distributed
from leanrec.stats.progress import progress_bar
from leanrec.stats.report import StatsReport
from leanrec.stats.sources import FORMATS, BadRows, list_files
from leanrec.stats.spec import Spec, infer_spec, parse_size
from leanrec.stats.table import TableAccumulator

__all__ = ["compute", "compute_distributed", "card_options", "infer_spec", "parse_size", "Spec",
           "TableAccumulator", "FORMATS"]


def compute(source: str | Path | Sequence[str | Path] | None = None, *, dataset: Any = None,
            format: str | None = None, names: Sequence[str] | None = None,
            label: str | Sequence[str] | None = None,
            fields: Sequence[str] | None = None, numeric: Sequence[str] | None = None,
            pairs: bool | Sequence[tuple[str, str]] = False, memory_budget: str | int = "2GB",
            threads: int | None = None, on_bad_rows: BadRows = "error", progress: bool = True,
            hll_precision: int = 14, batch_rows: int | None = None, top_k: int = 10,
            estimator: str = "plugin", reader: str = "native") -> StatsReport:
    """Stream `source` through the statistics engine and return a StatsReport.

    source: a file, a directory of shards, or a list of them (CSV/TSV/Parquet/Arrow IPC); default: the
        files of `dataset`.
    dataset: a dataset card (object, TOML path or registered name, see `card_options`): it supplies the
        format, column names, labels, fields and which are numeric (no type sniffing); explicit
        arguments override it.
    names: column names for header-less CSV/TSV (e.g. Criteo: label, I1..I13, C1..C26); without
        names the first line is the header.
    label: label column(s), values 0/1 (at most 8).  fields: fields to describe (default: all others).
    numeric: fields that also get numeric stats (default: typed numbers, or text columns whose first
        batch parses as numbers).  pairs: True for all field pairs, or a list of (a, b) names.
    memory_budget: bytes (or '2GB') shared by all exact tables; tables beyond their share fall back to
        hashed bins, flagged `approx`.  threads: rayon threads (None: all cores).
    on_bad_rows: 'error' raises DataError naming file, line and column; 'skip' counts them in
        `report.bad_rows`.  batch_rows: re-slice batches (results do not depend on it).
    estimator: "plugin" (default) or "miller-madow" (bias-corrected entropy/MI, see docs/stats.md).
    reader: "native" (default; CSV/TSV parsed and counted in Rust, and Parquet files of integer columns
        read page by page in Rust, several times faster) or "arrow" (pyarrow record batches). Both give the
        same results, bad-row rules and messages.
    """
    if on_bad_rows not in ("error", "skip"):
        raise ConfigError(f"on_bad_rows must be 'error' or 'skip', got {on_bad_rows!r}")
    if reader not in ("native", "arrow"):
        raise ConfigError(f"reader must be 'native' or 'arrow', got {reader!r}")
    source, format, names, label, fields, numeric = with_card(source, dataset, format, names, label, fields,
                                                              numeric)
    files = list_files(source)
    spec_args = dict(labels=labels_arg(label), fields=fields, numeric=numeric, pairs=pairs,
                     budget=parse_size(memory_budget), hll_precision=hll_precision)
    kwargs = dict(fmt=format, names=names, spec=None, spec_args=spec_args, threads=threads,
                  on_bad_rows=on_bad_rows, batch_rows=batch_rows, reader=reader)
    if not progress:
        acc = count_files(files, **kwargs)
    else:
        with progress_bar(files, format, reader) as advance:
            acc = count_files(files, progress=advance, **kwargs)
    return acc.report(source=str(source), top_k=top_k, estimator=estimator)
