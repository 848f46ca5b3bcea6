"""Streaming statistics over files: CSV / TSV (with or without header) / Parquet / Arrow IPC / shard folders.

Sources are read as pyarrow record batches (bounded memory), validated (bad rows raise DataError naming
file, line and column, or are counted and skipped), and fed to mergeable Rust accumulators, all fields of
a batch in parallel with the GIL released. A `TableAccumulator` serialises to bytes, so shards can be
counted in other processes (see `compute_distributed`) and merged into exactly the one-pass result.
"""
from __future__ import annotations

import io
import json
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from leanrec import _native
from leanrec.errors import ConfigError, DataError
from leanrec.stats.report import StatsReport

FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".parquet": "parquet", ".pq": "parquet",
           ".arrow": "ipc", ".ipc": "ipc", ".feather": "ipc"}
BadRows = Literal["error", "skip"]
_MAGIC = b"LRTA1\n"  # TableAccumulator blob: magic, JSON header line, then length-prefixed accumulator blobs


def parse_size(size: str | int) -> int:
    """'2GB', '512MiB', '100k' or an int -> bytes (decimal and binary units both mean powers of 1024)."""
    if isinstance(size, int):
        return size
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kmgt]?)i?b?\s*", str(size).lower())
    if not m:
        raise ConfigError(f"cannot parse memory size {size!r}; use e.g. 2GB, 512MB, 1000000")
    return int(float(m.group(1)) * 1024 ** "_kmgt".index(m.group(2) or "_"))


def _files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(source, (list, tuple)):
        return [f for s in source for f in _files(s)]
    p = Path(source)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                       and (f.with_suffix("") if _compression(f) else f).suffix.lower() in FORMATS)
        if not files:
            raise DataError(f"no readable shards ({', '.join(sorted(FORMATS))}) in directory", path=str(p))
        return files
    if not p.exists():
        raise FileNotFoundError(f"no such file or directory: {p}")
    return [p]


# compressed text files (by suffix): Arrow's reader decompresses all of them, the native reader gzip
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4", ".br": "brotli"}


def _compression(path: Path) -> str | None:
    return COMPRESSIONS.get(path.suffix.lower())


def _format(path: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in {"csv", "tsv", "parquet", "ipc"}:
            raise ConfigError(f"unknown format {fmt!r}; use csv, tsv, parquet or ipc")
        return fmt
    try:
        return FORMATS[(path.with_suffix("") if _compression(path) else path).suffix.lower()]
    except KeyError:
        raise ConfigError(f"cannot tell the format of {path.name}; pass format='csv'|'tsv'|'parquet'|'ipc'") from None


@dataclass
class _ReadState:
    path: str
    header: bool
    skipped_lines: list[int] = field(default_factory=list)
    error: tuple[int, str] | None = None
    rows_seen: int = 0  # rows delivered in batches so far (file-local)

    def line(self, local_row: int) -> int:
        """Physical line of delivered row `local_row` (0-based), accounting for skipped malformed lines."""
        line = self.header + local_row + 1
        for s in self.skipped_lines:
            if s <= line:
                line += 1
            else:
                break
        return line


_DELIMITERS = {"csv": ",", "tsv": "\t"}


def _native_reads(path: Path, fmt: str, reader: str) -> bool:
    """Whether the native reader counts this file: CSV/TSV, plain or gzip, unless `reader="arrow"`."""
    return reader == "native" and fmt in _DELIMITERS and _compression(path) in (None, "gzip")


def _open_bytes(path: Path) -> Any:
    """The file's (decompressed) bytes as a binary stream with read() and readline()."""
    kind = _compression(path)
    return io.BufferedReader(pa.input_stream(str(path), compression=kind)) if kind else open(path, "rb")


def _columns(path: Path, delim: str, names: Sequence[str] | None) -> tuple[list[str], int]:
    """Column names of a CSV/TSV file (`names`, else its header line) and the byte offset of its first row.
    No columns: the file is empty."""
    if names is not None:
        return list(names), 0
    with _open_bytes(path) as fh:
        raw = fh.readline()
    first = raw.decode("utf-8-sig", errors="replace").rstrip("\r\n")  # -sig: drop a byte-order mark (Excel)
    return ([c.strip().strip('"') for c in first.split(delim)] if first else []), len(raw)


def _read(path: Path, fmt: str, names: Sequence[str] | None, on_bad_rows: BadRows,
          state: _ReadState, head_bytes: int | None = None) -> Iterator[pa.RecordBatch]:
    """Yield record batches of one file; CSV/TSV columns come back as strings (typed later, per field).
    head_bytes: for CSV/TSV, read only the complete lines within the file's first `head_bytes` bytes."""
    if fmt in ("csv", "tsv"):
        import pyarrow.csv as pacsv

        delim = _DELIMITERS[fmt]
        cols, _ = _columns(path, delim, names)
        if not cols:
            return

        def on_invalid(row: Any) -> str:
            if on_bad_rows == "skip":
                state.skipped_lines.append(row.number)
                return "skip"
            state.error = (row.number, f"expected {row.expected_columns} fields, found {row.actual_columns}")
            return "error"

        try:
            source: Any = path
            if head_bytes is not None:  # a sample (Arrow's streaming reader would read far ahead of batch 1)
                with _open_bytes(path) as fh:
                    head = fh.read(head_bytes)
                cut = head.rfind(b"\n") + 1 if len(head) == head_bytes else len(head)
                source = io.BytesIO(head[:cut or len(head)])
            reader = pacsv.open_csv(
                source,
                read_options=pacsv.ReadOptions(use_threads=False, block_size=8 << 20, column_names=cols,
                                               skip_rows=1 if names is None else 0),
                parse_options=pacsv.ParseOptions(delimiter=delim, invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in cols},
                                                     strings_can_be_null=True, null_values=[""]),
            )
            for batch in reader:
                yield batch
        except pa.ArrowInvalid as exc:
            if state.error:
                raise DataError(state.error[1], path=state.path, line=state.error[0]) from None
            if "Empty CSV file" in str(exc):
                return
            raise DataError(str(exc), path=state.path) from None
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        # pre_buffer=False: read column chunks as batches need them instead of a whole row group's
        # bytes at once (peak reader memory ~230 MB instead of ~730 MB on 1M-row, 21-column row groups)
        yield from pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=65536)
    else:
        import pyarrow.ipc as ipc

        try:
            r = ipc.open_file(path)
            for i in range(r.num_record_batches):
                yield r.get_batch(i)
        except pa.ArrowInvalid:
            with pa.memory_map(str(path)) as src:
                yield from ipc.open_stream(src)


def _nan_to_null(a: pa.Array) -> pa.Array:
    return pc.if_else(pc.is_nan(a), pa.scalar(None, pa.float64()), a) if a.null_count < len(a) else a


def _to_float(col: pa.Array) -> tuple[pa.Array, np.ndarray | None]:
    """Cast to float64 (NaN becomes null); on failure also return a mask of the unparseable (non-null) rows."""
    try:
        return _nan_to_null(pc.cast(col, pa.float64())), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        def bad(v: Any) -> bool:  # Arrow's own parser decides (Python's float() also takes "1 " and "1_0")
            if v is None:
                return False
            try:
                pc.cast(pa.scalar(v, col.type), pa.float64())
                return False
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return True
        mask = np.fromiter((bad(v) for v in col.to_pylist()), dtype=bool, count=len(col))
        fixed = pc.if_else(pa.array(mask), pa.scalar(None, col.type), col)
        return _nan_to_null(pc.cast(fixed, pa.float64())), mask


def _parses(col: pa.Array) -> bool:
    """Whether every non-null value of a text column parses as a number.

    A sample of 64 non-null values is tried first, so text columns (hashes, words) are rejected
    without casting the whole batch; only columns whose sample parses get the full check.
    """
    def ok(a: pa.Array) -> bool:
        try:
            pc.cast(a, pa.float64())
            return True
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
    sample = pc.drop_null(col.slice(0, 4096))[:64]
    return ok(sample) and ok(col)


@dataclass
class Spec:
    """What to count: fields (categorical stats for all), which are numeric, which keep string values."""

    fields: list[str]
    numeric: list[str]
    strings: list[str]
    labels: list[str]
    pairs: list[tuple[str, str]]
    budget: int
    hll_precision: int = 14

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "pairs": [list(p) for p in self.pairs]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Spec":
        return cls(**{**d, "pairs": [tuple(p) for p in d["pairs"]]})


def infer_spec(batch: pa.RecordBatch, *, labels: Sequence[str], fields: Sequence[str] | None,
               numeric: Sequence[str] | None, pairs: bool | Sequence[tuple[str, str]], budget: int,
               hll_precision: int, path: str) -> Spec:
    names = batch.schema.names
    missing = [lab for lab in labels if lab not in names]
    if missing:
        raise DataError(f"label column(s) {missing} not found; columns are {names}", path=path)
    chosen = list(fields) if fields is not None else [n for n in names if n not in labels]
    unknown = [f for f in chosen if f not in names]
    if unknown:
        raise ConfigError(f"unknown field(s) {unknown}; columns are {names}")
    if numeric is None:  # numeric = typed numbers, or strings that all parse as numbers in the first batch
        numeric = []
        for f in chosen:
            col = batch.column(f)
            if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
                numeric.append(f)
            elif pa.types.is_string(col.type) and col.null_count < len(col) and _parses(col):
                numeric.append(f)
    strings = [f for f in chosen if f not in numeric and _is_bytes(batch.column(f).type)]
    if pairs is True:
        pair_list = [(a, b) for i, a in enumerate(chosen) for b in chosen[i + 1:]]
    elif pairs:
        pair_list = [tuple(p) for p in pairs]  # type: ignore[misc]
        bad = [p for p in pair_list if p[0] not in chosen or p[1] not in chosen]
        if bad:
            raise ConfigError(f"pairs name unknown fields: {bad}")
    else:
        pair_list = []
    return Spec(chosen, list(numeric), strings, list(labels), pair_list, budget, hll_precision)


def _is_bytes(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or \
        pa.types.is_large_binary(t) or getattr(pa.types, "is_string_view", lambda _: False)(t)


class TableAccumulator:
    """All accumulators of one table: per field (categorical + numeric), per pair; mergeable, serialisable.

    The byte budget is split evenly over field and pair tables; a table that would exceed its share
    falls back to hashed bins (flagged `approx` in the report; see docs/stats.md).
    """

    def __init__(self, spec: Spec, threads: int | None = None):
        self.spec, self.threads = spec, threads
        n_l = len(spec.labels)
        share = max(1 << 20, spec.budget // max(1, len(spec.fields) + len(spec.pairs)))
        self.cat = {f: _native.FieldAccumulator(n_l, budget_bytes=share, hll_precision=spec.hll_precision,
                                                keep_values=f in spec.strings) for f in spec.fields}
        self.num = {f: _native.NumericAccumulator() for f in spec.numeric}
        self.pair = {p: _native.PairAccumulator(n_l, budget_bytes=share) for p in spec.pairs}
        self.bad_rows = 0

    def update(self, columns: dict[str, pa.Array], floats: dict[str, pa.Array], labels: np.ndarray) -> None:
        """Count one validated batch: raw columns for categorical stats, float64 columns for numeric."""
        _native.update_batch(
            [(self.cat[f], columns[f]) for f in self.spec.fields],
            [(self.num[f], floats[f]) for f in self.spec.numeric],
            [(self.pair[p], columns[p[0]], columns[p[1]]) for p in self.spec.pairs],
            labels, len(self.spec.labels), self.threads,
        )

    def merge(self, other: "TableAccumulator") -> None:
        if other.spec != self.spec:
            raise ConfigError("cannot merge accumulators of different field specs (fields, labels, budget)")
        for f, a in self.cat.items():
            a.merge(other.cat[f])
        for f, a in self.num.items():
            a.merge(other.num[f])
        for p, a in self.pair.items():
            a.merge(other.pair[p])
        self.bad_rows += other.bad_rows

    def to_bytes(self) -> bytes:
        blobs = [a.to_bytes() for a in (*self.cat.values(), *self.num.values(), *self.pair.values())]
        head = json.dumps({"spec": self.spec.to_json(), "bad_rows": self.bad_rows}).encode()
        return b"".join([_MAGIC, head, b"\n", *(struct.pack("<Q", len(b)) + b for b in blobs)])

    @classmethod
    def from_bytes(cls, data: bytes, threads: int | None = None) -> "TableAccumulator":
        if not data.startswith(_MAGIC):
            raise ValueError("not a leanrec TableAccumulator blob")
        end = data.index(b"\n", len(_MAGIC))
        head = json.loads(data[len(_MAGIC):end])
        acc = cls(Spec.from_json(head["spec"]), threads)
        acc.bad_rows = head["bad_rows"]
        pos = end + 1
        for store, kind in ((acc.cat, _native.FieldAccumulator), (acc.num, _native.NumericAccumulator),
                            (acc.pair, _native.PairAccumulator)):
            for k in store:
                (n,) = struct.unpack_from("<Q", data, pos)
                store[k] = kind.from_bytes(data[pos + 8:pos + 8 + n])
                pos += 8 + n
        if pos != len(data):
            raise ValueError("trailing bytes after TableAccumulator blob")
        return acc

    def report(self, source: str = "", top_k: int = 10, estimator: str = "plugin") -> StatsReport:
        """Final statistics (entropy/MI by `estimator`: "plugin" or "miller-madow"); raises DataError on empty
        input or a single-class label."""
        spec = self.spec
        rows_out, top = [], {}
        n_rows, positives = 0, [0] * len(spec.labels)
        for f in spec.fields:
            s = self.cat[f].stats(estimator=estimator)
            n_rows, positives = s["rows"], s["positives"]
            row: dict[str, Any] = {"name": f, "kind": "numeric" if f in spec.numeric else "categorical",
                                   "rows": s["rows"], "nulls": s["nulls"], "distinct": s["distinct"],
                                   "hll": s["hll"], "entropy": s["entropy"]}
            for i, lab in enumerate(spec.labels):
                row[f"mi_{lab}"], row[f"nmi_{lab}"] = s["mi"][i], s["nmi"][i]
            n_l = len(spec.labels)
            for i, li in enumerate(spec.labels):
                for j, lj in enumerate(spec.labels):
                    if i != j:
                        row[f"cmi_{lj}_given_{li}"] = s["label_cmi"][i * n_l + j]
            row["approx"] = s["approx"]
            if f in self.num:
                row.update(self.num[f].stats())
            rows_out.append(row)
            top[f] = [(self._value(f, key, raw), c) for key, c, raw in self.cat[f].top_k(top_k)]
        if spec.fields and n_rows == 0:
            raise DataError("the input has no rows (after skipping bad rows)", path=source or None)
        for lab, pos in zip(spec.labels, positives):
            if pos in (0, n_rows):
                raise DataError(f"label {lab!r} has a single class ({pos} positives in {n_rows} rows): "
                                "mutual information with it is identically 0", path=source or None)
        pair_rows = []
        for (a, b), acc in self.pair.items():
            s = acc.stats(estimator=estimator)
            pr: dict[str, Any] = {"a": a, "b": b, "mi_ab": s["mi_ab"], "approx": s["approx"]}
            for i, lab in enumerate(spec.labels):
                pr[f"cmi_a_given_b_{lab}"] = s["cmi_a_given_b"][i]
                pr[f"cmi_b_given_a_{lab}"] = s["cmi_b_given_a"][i]
            pair_rows.append(pr)
        return StatsReport(labels=list(spec.labels), rows=n_rows, fields=rows_out, pairs=pair_rows, top=top,
                           bad_rows=self.bad_rows, label_positives=dict(zip(spec.labels, positives)), source=source)

    def _value(self, f: str, key: int, raw: bytes | None) -> Any:
        if raw is not None:
            return raw.decode("utf-8", errors="replace")
        if f in self.spec.numeric:  # keys of numeric fields are float64 bit patterns
            return struct.unpack("<d", struct.pack("<Q", key))[0]
        return key - (1 << 64) if key >= 1 << 63 else key


def _prepare(batch: pa.RecordBatch, spec: Spec, state: _ReadState, on_bad_rows: BadRows,
             acc: TableAccumulator) -> tuple[dict[str, pa.Array], dict[str, pa.Array], np.ndarray] | None:
    """Validate and type one batch. Returns (columns, float columns, labels uint8) or None if all rows are bad."""
    n = batch.num_rows
    bad = np.zeros(n, dtype=bool)
    first_err: tuple[int, str, str] | None = None

    def flag(mask: np.ndarray, column: str, what: str) -> None:
        nonlocal first_err
        idx = np.flatnonzero(mask)
        if len(idx) and (first_err is None or idx[0] < first_err[0]):
            first_err = (int(idx[0]), column, what)
        bad[mask] = True

    label_cols = []
    for lab in spec.labels:
        col = batch.column(lab)
        fl, unparse = _to_float(col)
        vals = fl.to_numpy(zero_copy_only=False)
        miss = np.isnan(vals) if unparse is None else np.isnan(vals) & ~unparse
        invalid = ~np.isin(vals, (0.0, 1.0)) & ~np.isnan(vals)
        if unparse is not None:
            invalid |= unparse
        raw = col.to_pylist() if invalid.any() else None
        flag(invalid, lab, "label must be 0 or 1, found {!r}".format(raw[int(np.flatnonzero(invalid)[0])]) if raw else "")
        flag(miss, lab, "label is missing")
        label_cols.append(np.nan_to_num(vals).astype(np.uint8))
    floats = {}
    for f in spec.numeric:
        col = batch.column(f)
        fl, unparse = _to_float(col)
        if unparse is not None:
            v = col.to_pylist()[int(np.flatnonzero(unparse)[0])]
            flag(unparse, f, f"expected a number, found {v!r}")
        floats[f] = fl
    # numeric fields are counted by their float64 value, so CSV text and typed Parquet give equal keys
    columns = {f: floats[f] if f in floats else batch.column(f) for f in spec.fields}
    labels = np.ascontiguousarray(np.stack(label_cols, axis=1)) if label_cols else np.zeros((n, 0), np.uint8)
    if bad.any():
        if on_bad_rows == "error":
            assert first_err is not None
            row, column, what = first_err
            raise DataError(what, path=state.path, line=state.line(state.rows_seen + row), column=column)
        keep = pa.array(~bad)
        acc.bad_rows += int(bad.sum())
        columns = {k: pc.filter(v, keep) for k, v in columns.items()}
        floats = {k: pc.filter(v, keep) for k, v in floats.items()}
        labels = np.ascontiguousarray(labels[~bad])
        if not len(labels):
            return None
    return columns, floats, labels


def _slices(batch: pa.RecordBatch, rows: int | None) -> Iterator[pa.RecordBatch]:
    if not rows or batch.num_rows <= rows:
        yield batch
        return
    for start in range(0, batch.num_rows, rows):
        yield batch.slice(start, rows)


def _count_delimited(path: Path, fmt: str, names: Sequence[str] | None, acc: TableAccumulator,
                     on_bad_rows: BadRows, progress: Any) -> None:
    """Count one CSV/TSV file with the native reader (leanrec_core::delimited): parsing and counting in
    Rust, no Arrow string arrays. Same counts, bad-row rules and messages as the pyarrow path."""
    cols, offset = _columns(path, _DELIMITERS[fmt], names)
    if not cols:
        return
    spec, index = acc.spec, {c: i for i, c in enumerate(cols)}
    missing = [c for c in (*spec.labels, *spec.fields) if c not in index]  # a later file with other columns
    if missing:
        raise DataError(f"column(s) {missing} not found; columns are {cols}", path=str(path))
    number = [index[f] for f in spec.numeric]
    text = [index[f] for f in spec.fields if f not in spec.numeric]
    rows, bad, first_bad = _native.count_delimited(
        str(path), offset=offset, first_line=1 + (offset > 0), delimiter=_DELIMITERS[fmt], n_columns=len(cols),
        labels=[index[c] for c in spec.labels], text=text, number=number,
        fields=[(acc.cat[f], index[f]) for f in spec.fields], numeric=[(acc.num[f], index[f]) for f in spec.numeric],
        pairs=[(acc.pair[p], index[p[0]], index[p[1]]) for p in spec.pairs],
        skip_bad_rows=on_bad_rows == "skip", threads=acc.threads, progress=progress,
        gzip=_compression(path) == "gzip")
    if first_bad is not None and on_bad_rows == "error":
        line, column, message = first_bad
        raise DataError(message, path=str(path), line=line, column=None if column is None else cols[column])
    acc.bad_rows += bad


def _count(files: Sequence[Path], *, fmt: str | None, names: Sequence[str] | None, spec: Spec | None,
           spec_args: dict[str, Any], threads: int | None, on_bad_rows: BadRows,
           batch_rows: int | None = None, progress: Any = None, reader: str = "native") -> TableAccumulator:
    acc: TableAccumulator | None = None
    for path in files:
        file_fmt = _format(path, fmt)
        state = _ReadState(path=str(path), header=names is None and file_fmt in ("csv", "tsv"))
        if _native_reads(path, file_fmt, reader):
            if acc is None:  # the field spec comes from the file's first batch, as on the pyarrow path
                first = next(iter(_read(path, file_fmt, names, on_bad_rows, state, head_bytes=8 << 20)), None)
                if first is None:
                    continue
                acc = TableAccumulator(spec or infer_spec(first, path=str(path), **spec_args), threads)
            _count_delimited(path, file_fmt, names, acc, on_bad_rows, progress)
            continue
        for big in _read(path, file_fmt, names, on_bad_rows, state):
            for batch in _slices(big, batch_rows):
                if acc is None:
                    acc = TableAccumulator(spec or infer_spec(batch, path=str(path), **spec_args), threads)
                prepared = _prepare(batch, acc.spec, state, on_bad_rows, acc)
                state.rows_seen += batch.num_rows
                if prepared is not None:
                    acc.update(*prepared)
                if progress is not None:
                    progress(batch.num_rows, 0)
        acc_bad = len(state.skipped_lines)
        if acc is not None:
            acc.bad_rows += acc_bad
    if acc is None:
        raise DataError("the input has no rows", path=", ".join(map(str, files)))
    return acc


def _labels_arg(label: str | Sequence[str]) -> list[str]:
    return [label] if isinstance(label, str) else list(label)


def card_options(dataset: Any) -> tuple[list[Path], dict[str, Any]]:
    """Files and reader/field settings from a dataset card (``leanrec.data``): a card object, a TOML path or
    a registered name. Returns ``(files, {format, names, label, fields, numeric})`` for `compute`.

    Only cards whose fields and labels are raw columns of CSV/TSV or Parquet files apply; joins, derived
    columns and thresholded labels need the data layer's preprocessing (describe its encoded output instead).
    """
    from leanrec.data import resolve_card

    card = resolve_card(dataset)
    src = card.source
    where = f"dataset card {card.name!r}"
    if src.join or src.derive:
        raise ConfigError(f"{where} joins or derives columns; leanrec stats reads raw columns only "
                          "(run it on the encoded dataset instead)")
    if src.format == "parquet":
        fmt = "parquet"
    elif src.format == "csv" and src.delimiter in (",", "\t"):
        fmt = "csv" if src.delimiter == "," else "tsv"
    else:
        raise ConfigError(f"{where}: format {src.format!r} (delimiter {src.delimiter!r}) is not readable by "
                          "leanrec stats; it reads CSV (','), TSV ('\\t') and Parquet")
    thresholded = [lab.name for lab in card.labels if lab.threshold is not None]
    if thresholded:
        raise ConfigError(f"{where}: label(s) {thresholded} are thresholded; leanrec stats needs 0/1 label columns")
    names = list(src.columns) if fmt != "parquet" and not src.header else None
    if fmt != "parquet" and not src.header and not names:
        raise ConfigError(f"{where}: header = false but no [source] columns are named")
    labels = [lab.source for lab in card.labels]
    fields = [f.source for f in card.fields] or None
    if fields is None and names and src.drop:
        fields = [c for c in names if c not in labels and c not in src.drop]
    numeric = [f.source for f in card.fields if f.kind == "numeric"] if card.fields else None
    files = [card.resolve(rel) for rel in src.files.values()]
    return files, dict(format=fmt, names=names, label=labels, fields=fields, numeric=numeric)


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
    reader: CSV/TSV reader: "native" (default; parsed and counted in Rust, several times faster) or
        "arrow" (pyarrow record batches). Both give the same counts, bad-row rules and messages.
    """
    if on_bad_rows not in ("error", "skip"):
        raise ConfigError(f"on_bad_rows must be 'error' or 'skip', got {on_bad_rows!r}")
    if reader not in ("native", "arrow"):
        raise ConfigError(f"reader must be 'native' or 'arrow', got {reader!r}")
    source, format, names, label, fields, numeric = _with_card(source, dataset, format, names, label, fields,
                                                               numeric)
    files = _files(source)
    spec_args = dict(labels=_labels_arg(label), fields=fields, numeric=numeric, pairs=pairs,
                     budget=parse_size(memory_budget), hll_precision=hll_precision)
    kwargs = dict(fmt=format, names=names, spec=None, spec_args=spec_args, threads=threads,
                  on_bad_rows=on_bad_rows, batch_rows=batch_rows, reader=reader)
    if not progress:
        acc = _count(files, **kwargs)
    else:
        from rich import progress as rp

        # the native reader reports bytes as well: then a bar with percentage, MB/s and time left
        by_bytes = all(_native_reads(f, _format(f, format), reader) and not _compression(f) for f in files)
        columns = [rp.SpinnerColumn(), rp.TextColumn("{task.description}"), rp.TextColumn("{task.fields[rows]:,} rows")]
        if by_bytes:
            columns += [rp.BarColumn(), rp.TaskProgressColumn(), rp.TransferSpeedColumn(), rp.TimeRemainingColumn()]
        with rp.Progress(*columns, rp.TimeElapsedColumn(), transient=True) as bar:
            task = bar.add_task(f"counting {len(files)} file(s)", rows=0,
                                total=sum(f.stat().st_size for f in files) if by_bytes else None)
            seen = [0]

            def advance(rows: int, nbytes: int) -> None:
                seen[0] += rows
                bar.update(task, advance=nbytes, rows=seen[0])
            acc = _count(files, progress=advance, **kwargs)
    return acc.report(source=str(source), top_k=top_k, estimator=estimator)


def _with_card(source, dataset, format, names, label, fields, numeric) -> tuple:
    """`compute`'s source and reader settings, filled from a dataset card where not given explicitly."""
    if dataset is not None:
        card_files, opts = card_options(dataset)
        source = card_files if source is None else source
        format, names, label = format or opts["format"], names or opts["names"], label or opts["label"]
        fields = fields if fields is not None else opts["fields"]
        numeric = numeric if numeric is not None else opts["numeric"]
    if source is None:
        raise ConfigError("give a source (file, folder or list) or a dataset card")
    return source, format, names, label or "label", fields, numeric


def _count_shard(path: str, kwargs: dict[str, Any]) -> bytes:
    """Worker task: count one shard, return the serialised accumulator."""
    kwargs = dict(kwargs)
    spec = Spec.from_json(kwargs.pop("spec"))
    return _count([Path(path)], spec=spec, spec_args={}, **kwargs).to_bytes()


def compute_distributed(source: str | Path | Sequence[str | Path] | None = None, *, client: Any = None,
                        dataset: Any = None, format: str | None = None, names: Sequence[str] | None = None,
                        label: str | Sequence[str] | None = None, fields: Sequence[str] | None = None,
                        numeric: Sequence[str] | None = None, pairs: bool | Sequence[tuple[str, str]] = False,
                        memory_budget: str | int = "2GB", threads: int | None = None,
                        on_bad_rows: BadRows = "error", hll_precision: int = 14, top_k: int = 10,
                        estimator: str = "plugin") -> StatsReport:
    """Count each shard on a Dask cluster (one task per file), merge the byte blobs here.

    Arguments as in `compute` (a `dataset` card supplies the files and reader settings). The field spec
    (which fields are numeric / strings) is inferred once from the first shard so all workers count the same
    thing. The result equals `compute` over the same files exactly.
    """
    try:
        from dask.distributed import get_client
    except ImportError as exc:  # optional extra
        raise ConfigError("compute_distributed needs dask: pip install 'leanrec[distributed]'") from exc
    client = client or get_client()
    source, format, names, label, fields, numeric = _with_card(source, dataset, format, names, label, fields,
                                                               numeric)
    files = _files(source)
    first = next(iter(_read(files[0], _format(files[0], format), names, on_bad_rows,
                            _ReadState(str(files[0]), names is None), head_bytes=8 << 20)), None)
    if first is None:
        raise DataError("the first shard has no rows", path=str(files[0]))
    spec = infer_spec(first, labels=_labels_arg(label), fields=fields, numeric=numeric, pairs=pairs,
                      budget=parse_size(memory_budget), hll_precision=hll_precision, path=str(files[0]))
    kw = dict(fmt=format, names=list(names) if names else None, threads=threads, on_bad_rows=on_bad_rows,
              spec=spec.to_json())
    futures = client.map(_count_shard, [str(f) for f in files], kwargs=kw, pure=False)
    blobs = client.gather(futures)
    total = TableAccumulator.from_bytes(blobs[0], threads)
    for b in blobs[1:]:
        total.merge(TableAccumulator.from_bytes(b, threads))
    return total.report(source=str(source), top_k=top_k, estimator=estimator)
