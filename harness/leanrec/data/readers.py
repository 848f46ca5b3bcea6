"""Readers: raw files described by a card -> one pyarrow Table plus where every row came from.

Every reader is vectorised (pyarrow.csv / pyarrow.parquet / pyarrow.compute); no per-row Python loops. Errors
name the file, the 1-based physical line and the column: wrong column count, missing columns, empty files,
unparsable numbers, bad labels. CSV columns are read as strings; types are applied by preprocessing.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from leanrec.data.cards import DatasetCard, JoinSpec
from leanrec.errors import DataError

THREADED_BYTES = 64 << 20  # files larger than this are parsed with Arrow's thread pool
_NUMBER_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*[-+]?(nan|NaN|inf|Inf|infinity)\s*$"


@dataclass
class Segment:
    """Rows [start, start + n) of the combined table came from `path`; data row k is on line k + first_line."""

    path: Path
    start: int
    n: int
    first_line: int  # physical line number of the segment's first data row (1-based)
    part: str        # "all", "train", "valid" or "test"


@dataclass
class RawTable:
    """The rows of a dataset, as read: columns by name, and the file/line origin of every row."""

    table: pa.Table
    segments: list[Segment] = field(default_factory=list)

    def locate(self, row: int) -> tuple[str, int | None]:
        """(file, line) of global row index `row`."""
        for s in self.segments:
            if s.start <= row < s.start + s.n:
                return str(s.path), s.first_line + (row - s.start)
        return "<generated>", None

    def error(self, row: int, column: str, message: str) -> DataError:
        path, line = self.locate(row)
        return DataError(message, path=path, line=line, column=column)

    def parts(self) -> dict[str, np.ndarray]:
        """Row indices per part of a fixed split ({"all": ...} when the card names a single file set)."""
        out: dict[str, list[np.ndarray]] = {}
        for s in self.segments:
            out.setdefault(s.part, []).append(np.arange(s.start, s.start + s.n, dtype=np.int64))
        return {k: np.concatenate(v) for k, v in out.items()}


def read_source(card: DatasetCard, *, max_rows: int | None = None) -> RawTable:
    """Read every file of a (non-synthetic) card into one table, apply joins and derived columns.

    `max_rows` keeps the first rows of each file (for quick experiments on huge logs; read in a stream).
    """
    src = card.source
    need = _needed_columns(card)
    tables, segments, start = [], [], 0
    for part in ("all", "train", "valid", "test"):
        if part not in src.files:
            continue
        path = card.resolve(src.files[part])
        if src.format == "parquet":
            t, first_line = _read_parquet(path, need, max_rows), 1
        elif src.format == "libfm":
            t, first_line = _read_libfm(path, card, max_rows), 1
        else:
            t, first_line = read_csv(path, delimiter=src.delimiter, header=src.header, columns=src.columns,
                                     encoding=src.encoding, quoting=src.quoting, missing=src.missing,
                                     include=need, max_rows=max_rows)
        segments.append(Segment(path, start, t.num_rows, first_line, part))
        tables.append(t)
        start += t.num_rows
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
    raw = RawTable(table.combine_chunks(), segments)
    for j in src.join:
        raw.table = _join(raw, j, card)
    if src.derive:
        derived = {d.name: _derive(raw, d.from_, d.transform) for d in src.derive}
        for name, col in derived.items():
            raw.table = _set_column(raw.table, name, col)
    return raw


def _needed_columns(card: DatasetCard) -> list[str] | None:
    """Columns to read from the main file(s), or None (= all) when that cannot be known in advance."""
    src = card.source
    if not card.fields or any(not j.columns for j in src.join):
        return None
    produced = {d.name for d in src.derive} | {c for j in src.join for c in j.columns if c != j.on}
    derive_sources = {d.from_ for d in src.derive}
    cols = [f.source for f in card.fields] + [lab.source for lab in card.labels] + sorted(derive_sources)
    cols += [j.on for j in src.join] + ([card.time] if card.time else [])
    return list(dict.fromkeys(c for c in cols if c not in produced or c in derive_sources))


# ---- CSV ---------------------------------------------------------------------------------------------------
def read_csv(path: Path, *, delimiter: str = ",", header: bool = True, columns: tuple[str, ...] = (),
             encoding: str = "utf8", quoting: bool = True, missing: tuple[str, ...] = ("",),
             include: list[str] | None = None, max_rows: int | None = None) -> tuple[pa.Table, int]:
    """Read a delimited text file with every column as string; returns (table, line of first data row).

    Raises DataError for a missing/empty file, missing columns (line 1 when there is a header), rows with the
    wrong number of columns (naming the line) and files with no data rows.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found (fetch it with `leanrec data fetch NAME`, or set LEANREC_DATA_DIR)",
                        path=str(path))
    if path.stat().st_size == 0:
        raise DataError("empty file", path=str(path))
    names = list(columns)
    if header:
        with open(path, encoding=encoding, newline="") as fh:
            first = fh.readline().rstrip("\r\n")
        found = next(csv.reader([first], delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoting
                                else csv.QUOTE_NONE))
        if not names:
            names = found
        elif len(found) != len(names):
            raise DataError(f"header has {len(found)} columns but the card lists {len(names)}",
                            path=str(path), line=1)
    if not names:
        raise DataError("no header and the card lists no `columns`", path=str(path))
    for c in include or []:
        if c not in names:
            raise DataError(f"missing column {c!r} (columns: {', '.join(names)})", path=str(path),
                            line=1 if header else None, column=c)
    first_line = 2 if header else 1
    bad: list = []

    def on_invalid(row: pcsv.InvalidRow) -> str:
        bad.append(row)
        return "error"

    def options(threads: bool):
        return dict(
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=1 if header else 0, encoding=encoding,
                                          use_threads=threads),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoting else False,
                                            ignore_empty_lines=False, invalid_row_handler=on_invalid),
            convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in (include or names)}, include_columns=include,
                strings_can_be_null=True, null_values=list(missing)),
        )

    # Arrow's parallel CSV reader can hang when a read is aborted by an error (apache/arrow#38676, #43892), so
    # small files (all our tests, the samples) are parsed on one thread; big logs use the thread pool.
    threads = path.stat().st_size > THREADED_BYTES
    try:
        if max_rows is None:
            table = pcsv.read_csv(path, **options(threads))
        else:
            table = _read_head(pcsv.open_csv(path, **options(threads)), max_rows)
    except pa.ArrowInvalid as exc:
        if bad and bad[0].number is None:  # line numbers are only known to the single-threaded parser
            bad.clear()
            try:
                pcsv.read_csv(path, **options(False))
            except pa.ArrowInvalid:
                pass
        if bad:
            r = bad[0]
            line = r.number  # physical 1-based line (skipped header rows included)
            raise DataError(f"expected {r.expected_columns} columns, found {r.actual_columns}: {r.text[:120]!r}",
                            path=str(path), line=line) from None
        raise DataError(f"cannot parse: {exc}", path=str(path)) from None
    if table.num_rows == 0:
        raise DataError("no data rows", path=str(path))
    return table, first_line


def _read_head(reader: pcsv.CSVStreamingReader, max_rows: int) -> pa.Table:
    batches, n = [], 0
    for batch in reader:
        batches.append(batch)
        n += batch.num_rows
        if n >= max_rows:
            break
    return pa.Table.from_batches(batches, schema=reader.schema).slice(0, max_rows)


# ---- Parquet and libFM -------------------------------------------------------------------------------------
def _read_parquet(path: Path, include: list[str] | None, max_rows: int | None) -> pa.Table:
    if not Path(path).is_file():
        raise DataError("file not found", path=str(path))
    schema = pq.read_schema(path)
    for c in include or []:
        if c not in schema.names:
            raise DataError(f"missing column {c!r} (columns: {', '.join(schema.names)})", path=str(path), column=c)
    if max_rows is None:
        table = pq.read_table(path, columns=include)
    else:
        table = _read_head_batches(pq.ParquetFile(path).iter_batches(columns=include), max_rows)
    if table.num_rows == 0:
        raise DataError("no data rows", path=str(path))
    return table


def _read_head_batches(batches, max_rows: int) -> pa.Table:
    out, n = [], 0
    for b in batches:
        out.append(b)
        n += b.num_rows
        if n >= max_rows:
            break
    return pa.Table.from_batches(out).slice(0, max_rows)


def _read_libfm(path: Path, card: DatasetCard, max_rows: int | None) -> pa.Table:
    """libFM / libSVM with one `index:value` token per field, in field order: `label idx:val idx:val ...`.

    The feature index is the categorical value; labels -1/+1 map to 0/1.
    """
    if len(card.labels) != 1:
        raise DataError("libfm files carry exactly one label", path=str(path))
    label = card.labels[0].source
    names = [label] + [f.source for f in card.fields]
    table, _ = read_csv(path, delimiter=card.source.delimiter, header=False, columns=tuple(names),
                        quoting=False, max_rows=max_rows)
    cols = {label: pc.if_else(pc.equal(table[label], "-1"), "0",
                              pc.if_else(pc.equal(table[label], "+1"), "1", table[label]))}
    for c in names[1:]:
        cols[c] = pc.replace_substring_regex(table[c], pattern=":.*$", replacement="")
    return pa.table(cols)


# ---- joins and derived columns -----------------------------------------------------------------------------
def _join(raw: RawTable, j: JoinSpec, card: DatasetCard) -> pa.Table:
    path = card.resolve(j.file)
    right, first_line = read_csv(path, delimiter=j.delimiter, header=j.header, columns=j.columns,
                                 encoding=j.encoding, quoting=j.quoting, missing=card.source.missing)
    if j.on not in right.column_names:
        raise DataError(f"join key {j.on!r} is not a column", path=str(path), column=j.on)
    if j.on not in raw.table.column_names:
        raise DataError(f"join key {j.on!r} is not a column of the main table", column=j.on)
    keys = right[j.on].combine_chunks()
    if pc.count_distinct(keys).as_py() != len(keys):
        _, first_dup = np.unique(keys.to_numpy(zero_copy_only=False), return_index=True)
        dup_row = sorted(set(range(len(keys))) - set(first_dup.tolist()))[0]
        raise DataError(f"duplicate join key {keys[dup_row].as_py()!r}", path=str(path),
                        line=first_line + dup_row, column=j.on)
    idx = pc.index_in(raw.table[j.on], value_set=keys)
    table = raw.table
    for c in right.column_names:
        if c != j.on:
            table = _set_column(table, c, right[c].take(idx))
    return table


def _derive(raw: RawTable, source: str, transform: str) -> pa.Array:
    col = raw.table[source]
    if transform.startswith("yymmddhh_"):
        ts = pc.strptime(pc.cast(col, pa.string()), format="%y%m%d%H", unit="s", error_is_null=True)
        bad = np.flatnonzero(pc.and_(pc.is_null(ts), pc.is_valid(col)).to_numpy(zero_copy_only=False))
        if len(bad):
            raise raw.error(int(bad[0]), source, f"expected a YYMMDDHH timestamp, found {col[int(bad[0])].as_py()!r}")
        return pc.day_of_week(ts) if transform == "yymmddhh_weekday" else pc.hour(ts)
    raise DataError(f"unknown derive transform {transform!r}")


def _set_column(table: pa.Table, name: str, col) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, col)
    return table.append_column(name, col)


def to_float(raw: RawTable, column: str) -> np.ndarray:
    """A column as float64 (missing = NaN); an unparsable value raises DataError naming file, line, column."""
    col = raw.table[column]
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
        return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    try:
        return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        ok = pc.match_substring_regex(col, _NUMBER_RE)
        bad = np.flatnonzero(pc.and_(pc.invert(pc.fill_null(ok, True)), pc.is_valid(col))
                             .to_numpy(zero_copy_only=False))
        row = int(bad[0]) if len(bad) else 0
        raise raw.error(row, column, f"expected a number, found {col[row].as_py()!r}") from None
