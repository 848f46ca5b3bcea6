"""Findings: what a person should do about each field of a `StatsReport`, with the evidence.

`find(report, null)` turns a report (what `leanrec.stats.compute` returns) into a list of `Finding`s:

* ``leakage``: the field almost determines a label (NMI with the label >= `leak_nmi`, i.e. its MI is within
  (1 - leak_nmi)·H(label) of the label's entropy). With a permutation null the NMI adjusted for chance,
  (I - E0[I]) / (H(label) - E0[I]) with E0 the permutation mean, must also reach the threshold and I must
  exceed every permutation value, so a many-valued field whose NMI is only the plug-in bias of unique
  values is not called a leak, while one that is unique on the positives and missing on the negatives is;
  without a null, identifier-like fields are not tested (their NMI is ~1 for that reason alone).
* ``identifier``: distinct values / non-null rows >= `identifier_ratio` (row ids, timestamps, hashes).
* ``constant``: at most one state (one value and no nulls, or all null).
* ``near-constant``: the most frequent value covers >= `near_constant_share` of the rows.
* ``mostly-null``: nulls >= `mostly_null_share` of the rows.
* ``no-signal``: the field's MI with a label is at most the largest of `shuffles` label-permutation
  values (permutation p-value >= 1/(shuffles+1), 0.05 for 19 shuffles): no detectable signal at this row
  count. Needs a `LabelNull` (see `label_null`, computed on in-memory rows, e.g. from `read_sample`). Not
  reported for constant or identifier-like fields (their own finding says more).

Each finding names the field, the measure, its value, the threshold and what to do (`action`: ``drop`` /
``bucket`` / ``review``; `advice` says it in words). `leanrec stats` prints them after the table and writes
them to its outputs; `leanrec data init` drops the fields whose action is ``drop`` (reason as a comment).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from leanrec.errors import ConfigError, DataError
from leanrec.stats import StatsReport, field_label_mi, permutation_null

NULL_ROWS = 500_000  # rows of the label-permutation null by default (19 shuffles of 1M rows x 20 fields: ~4 s)
KINDS = ("leakage", "identifier", "constant", "mostly-null", "near-constant", "no-signal")  # severity order


@dataclass(frozen=True)
class Thresholds:
    """Where a measure becomes a finding (see the module docstring)."""

    leak_nmi: float = 0.8
    identifier_ratio: float = 0.9
    identifier_min_distinct: int = 50  # fewer distinct values than this is never called an identifier
    near_constant_share: float = 0.99
    mostly_null_share: float = 0.9


@dataclass(frozen=True)
class Finding:
    """One finding about one field: `kind` (see KINDS), the `measure` and its `value` against `threshold`,
    the `action` (drop | bucket | review) and `advice` in words; `label` for label measures."""

    field: str
    kind: str
    measure: str
    value: float
    threshold: float
    action: str
    advice: str
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: kind, measure value vs threshold, advice."""
        op = "<=" if self.kind in ("no-signal", "constant") else ">="
        return f"{self.kind}: {self.measure} = {_num(self.value)} {op} {_num(self.threshold)}; {self.advice}"


@dataclass
class LabelNull:
    """Label-permutation null of I(field; label), measured on `rows` in-memory rows.

    observed / mean / high: field -> label -> MI on those rows, mean over shuffles, largest over shuffles.
    label_entropy: label -> plug-in H(label) on those rows (nats).
    """

    rows: int
    shuffles: int
    observed: dict[str, dict[str, float]]
    mean: dict[str, dict[str, float]]
    high: dict[str, dict[str, float]]
    label_entropy: dict[str, float]


def _num(v: float) -> str:
    return f"{v:.4g}" if isinstance(v, float) else f"{v:,}"


def encode(table: pa.Table, fields: Sequence[str]) -> np.ndarray:
    """(rows, fields) int32 codes (Fortran order): each field's values dictionary-encoded, null as one more code."""
    out = np.empty((table.num_rows, len(fields)), dtype=np.int32, order="F")  # columns contiguous: faster counts
    for j, f in enumerate(fields):
        col = table.column(f)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        enc = pc.dictionary_encode(col.combine_chunks())
        out[:, j] = enc.indices.fill_null(len(enc.dictionary)).to_numpy(zero_copy_only=False)
    return out


def label_matrix(table: pa.Table, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """((rows_kept, L) uint8 labels, bool mask of the rows whose labels are all 0/1)."""
    cols, keep = [], np.ones(table.num_rows, dtype=bool)
    for lab in labels:
        col = table.column(lab).combine_chunks()
        try:
            vals = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # some text is not a number: those rows go
            vals = np.array([_float(v) for v in col.to_pylist()], dtype=np.float64)
        keep &= (vals == 0) | (vals == 1)
        cols.append(vals)
    return np.stack(cols, axis=1)[keep].astype(np.uint8), keep


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def binary_entropy(positives: int, rows: int) -> float:
    """Plug-in H of a 0/1 label with `positives` of `rows` (nats)."""
    h = 0.0
    for c in (positives, rows - positives):
        if 0 < c < rows:
            h -= c / rows * math.log(c / rows)
    return h


def label_null(table: pa.Table, *, labels: Sequence[str], fields: Sequence[str], shuffles: int = 19,
               seed: int = 0, threads: int | None = None) -> LabelNull:
    """MI of each field with each label on the rows of `table`, and its label-permutation null.

    Each of `shuffles` fixed-seed permutations of the label rows gives one null value per field and label
    (`leanrec.stats.permutation_null` with one shuffle per seed); `high` is their maximum, so observed <=
    high means a permutation p-value >= 1/(shuffles+1). Rows whose labels are not 0/1 are left out.
    """
    if shuffles < 1:
        raise ConfigError(f"shuffles must be >= 1, got {shuffles}")
    y, keep = label_matrix(table, labels)
    if not keep.all():
        table = table.filter(pa.array(keep))
    codes = encode(table, fields)
    obs = field_label_mi(codes, y, threads=threads)
    draws = np.stack([permutation_null(field_label_mi, codes, y, shuffles=1, seed=seed + s, threads=threads)
                      for s in range(shuffles)])
    per = lambda a: {f: {lab: float(a[i, j]) for j, lab in enumerate(labels)} for i, f in enumerate(fields)}  # noqa: E731
    return LabelNull(rows=len(y), shuffles=shuffles, observed=per(obs), mean=per(draws.mean(axis=0)),
                     high=per(draws.max(axis=0)),
                     label_entropy={lab: binary_entropy(int(y[:, j].sum()), len(y)) for j, lab in enumerate(labels)})


def adjusted_nmi(null: LabelNull, name: str, label: str) -> float:
    """(I - E0[I]) / (H(label) - E0[I]) on the null's rows, E0 the permutation mean: the share of the label's
    entropy a field explains beyond chance (1: determines it; ~0: no more than random values would)."""
    h, e0, obs = null.label_entropy[label], null.mean[name][label], null.observed[name][label]
    room = h - e0
    return (obs - e0) / room if room > 1e-9 * max(h, 1e-300) else 0.0


def find(report: StatsReport, null: LabelNull | None = None, thresholds: Thresholds = Thresholds()) -> list[Finding]:
    """Findings for every field of `report` (ordered by field, then severity; see the module docstring).

    null: the label-permutation null (`label_null`) of the same source; without it the ``no-signal`` test is
    skipped and identifier-like fields are not tested for leakage.
    """
    t = thresholds
    out: list[Finding] = []
    for f in report.fields:
        name, rows, nulls = f["name"], f["rows"], f["nulls"]
        if rows == 0:
            continue
        distinct = f["distinct"] if f["distinct"] is not None else int(round(f["hll"]))
        present = rows - nulls
        numeric = f["kind"] == "numeric"
        found: list[Finding] = []
        states = distinct + (nulls > 0)
        if states <= 1:
            what = "every row is missing" if distinct == 0 else "one value in every row"
            found.append(Finding(name, "constant", "distinct values (nulls counted)", states, 1, "drop",
                                 f"{what}: no information; drop it from the card"))
        ratio = distinct / present if present else 0.0
        ident = distinct >= t.identifier_min_distinct and ratio >= t.identifier_ratio
        if ident:
            measurement = numeric and not _integral(report, f)
            advice = ("almost every row has its own value, and they are not all integers (a measurement?): keep "
                      "it as kind = \"numeric\" (bucketed), never as a categorical field" if measurement else
                      "almost every row has its own value (a row id, timestamp or hash?): drop it from the card "
                      "(test rows would hold unseen values), or bucket it if the values carry meaning")
            found.append(Finding(name, "identifier", "distinct / non-null rows", ratio, t.identifier_ratio,
                                 "bucket" if measurement else "drop", advice))
        if nulls / rows >= t.mostly_null_share and states > 1:
            found.append(Finding(name, "mostly-null", "null share", nulls / rows, t.mostly_null_share, "review",
                                 "keep it only if being present says something (then its MI shows it); "
                                 "otherwise drop it"))
        top = report.top.get(name) or []
        if top and states > 1 and top[0][1] / rows >= t.near_constant_share:
            found.append(Finding(name, "near-constant", "most frequent value's share", top[0][1] / rows,
                                 t.near_constant_share, "review",
                                 f"value {top[0][0]!r} in almost every row: little to learn; drop it unless the "
                                 "rare values carry signal"))
        for lab in report.labels:
            nmi = f.get(f"nmi_{lab}")
            if nmi is None or states <= 1:
                continue
            if nmi >= t.leak_nmi:
                if null is not None:
                    adj = adjusted_nmi(null, name, lab)
                    leak = adj >= t.leak_nmi and null.observed[name][lab] > null.high[name][lab]
                    extra = f" (adjusted for chance {adj:.3f})"
                else:
                    leak, extra = not ident, ""
                if leak:
                    found.append(Finding(
                        name, "leakage", f"nmi_{lab}", float(nmi), t.leak_nmi, "drop",
                        f"determines {lab!r} almost fully{extra}: likely recorded after the outcome or derived "
                        "from it; drop it from the card", label=lab))
            if null is not None and not ident and null.observed[name][lab] <= null.high[name][lab]:
                scope = "" if null.rows == report.rows else f" (on the first {null.rows:,} rows)"
                found.append(Finding(
                    name, "no-signal", f"mi_{lab}", null.observed[name][lab], null.high[name][lab], "review",
                    f"within its label-permutation null{scope} (p >= {1 / (null.shuffles + 1):.2g}): no detectable "
                    f"signal at {null.rows:,} rows; a candidate to drop (may still help jointly or with more rows)",
                    label=lab))
        out += sorted(found, key=lambda x: KINDS.index(x.kind))
    return out


def _integral(report: StatsReport, f: dict[str, Any]) -> bool:
    """Whether a numeric field's min, max and most frequent values are all integers (ids, timestamps)."""
    vals = [f.get("min"), f.get("max"), *(v for v, _ in report.top.get(f["name"], []))]
    return all(isinstance(v, (int, float)) and math.isfinite(v) and float(v).is_integer() for v in vals
               if v is not None)


def drops(findings: Sequence[Finding]) -> dict[str, list[Finding]]:
    """Fields whose findings say drop: field -> those findings."""
    out: dict[str, list[Finding]] = {}
    for x in findings:
        if x.action == "drop":
            out.setdefault(x.field, []).append(x)
    return out


def attach(report: StatsReport, findings: Sequence[Finding]) -> StatsReport:
    """Store `findings` in the report: `report.findings` (JSON output) and a per-field `findings` column
    (CSV/Parquet output), one line per finding, separated by " | "."""
    by_field: dict[str, list[str]] = {}
    for x in findings:
        by_field.setdefault(x.field, []).append(x.summary())
    for f in report.fields:
        f["findings"] = " | ".join(by_field.get(f["name"], []))
    report.findings = [x.to_dict() for x in findings]
    return report


# ---- reading the first rows of a source (for `label_null`) ------------------------------------------------
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4", ".br")


def _suffix_format(path: Path) -> str | None:
    p = path.with_suffix("") if path.suffix.lower() in _COMPRESSED else path
    from leanrec.stats.engine import FORMATS  # suffix -> format, as compute reads them

    return FORMATS.get(p.suffix.lower())


def source_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """The files of a source as `compute` takes it: a file, a folder of shards (sorted), or a list."""
    if isinstance(source, (list, tuple)):
        return [f for s in source for f in source_files(s)]
    p = Path(source)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".") and _suffix_format(f))
    if not p.exists():
        raise DataError("no such file or directory", path=str(p))
    return [p]


def read_sample(source: str | Path | Sequence[str | Path], *, columns: Sequence[str] | None, rows: int,
                format: str | None = None, names: Sequence[str] | None = None,
                skip_bad_lines: bool = True) -> pa.Table:
    """The first `rows` rows of `columns` (None: all) over the source's files in order. CSV/TSV values stay
    strings (empty = null; malformed lines skipped, as the report already judged them, unless
    `skip_bad_lines=False`: then a DataError names the file and Arrow's row), Parquet/IPC keep their types."""
    import pyarrow.csv as pacsv

    batches: list[pa.RecordBatch] = []
    left = rows
    for path in source_files(source):
        fmt = format or _suffix_format(path)
        if fmt is None:
            raise ConfigError(f"cannot tell the format of {path.name}; pass format='csv'|'tsv'|'parquet'|'ipc'")
        cols = list(columns) if columns is not None else None
        if fmt in ("csv", "tsv"):
            opts = pacsv.ReadOptions(column_names=list(names) if names else None, block_size=4 << 20)
            parse = pacsv.ParseOptions(delimiter="," if fmt == "csv" else "\t",
                                       invalid_row_handler=(lambda _row: "skip") if skip_bad_lines else None)
            try:
                if cols is None:  # every column, as text: the header gives the names
                    cols = pacsv.open_csv(path, read_options=opts, parse_options=parse).schema.names
                conv = pacsv.ConvertOptions(include_columns=cols, strings_can_be_null=True, null_values=[""],
                                            column_types={c: pa.string() for c in cols})
                it: Any = pacsv.open_csv(path, read_options=opts, parse_options=parse, convert_options=conv)
            except pa.ArrowInvalid as exc:
                raise DataError(str(exc), path=str(path)) from None
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            it = pq.ParquetFile(path).iter_batches(batch_size=65536, columns=cols)
        else:
            import pyarrow.ipc as ipc

            try:
                reader = ipc.open_file(path)
                it = (reader.get_batch(i) for i in range(reader.num_record_batches))
            except pa.ArrowInvalid:  # the stream format
                it = iter(ipc.open_stream(pa.memory_map(str(path))))
            if cols is not None:
                it = (b.select(cols) for b in it)
        try:
            for batch in it:
                batches.append(batch.slice(0, left))
                left -= batches[-1].num_rows
                if left <= 0:
                    break
        except pa.ArrowInvalid as exc:
            raise DataError(str(exc), path=str(path)) from None
        if left <= 0:
            break
    if not batches:
        raise DataError("the input has no rows", path=str(source))
    return pa.Table.from_batches(batches)


def analyse(report: StatsReport, source: str | Path | Sequence[str | Path], *, format: str | None = None,
            names: Sequence[str] | None = None, null_rows: int = NULL_ROWS, shuffles: int = 19,
            thresholds: Thresholds = Thresholds(), threads: int | None = None) -> list[Finding]:
    """`find` with a label-permutation null measured on the first `null_rows` rows of `source`."""
    fields = [f["name"] for f in report.fields]
    table = read_sample(source, columns=[*report.labels, *fields], rows=null_rows, format=format, names=names)
    null = label_null(table, labels=report.labels, fields=fields, shuffles=shuffles, threads=threads)
    return find(report, null, thresholds)
