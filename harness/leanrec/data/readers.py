"""Readers: raw files described by a card -> pyarrow record batches plus where every row came from.

Every reader is vectorised (pyarrow.csv / pyarrow.parquet / pyarrow.compute); no per-row Python loops on the
data path. Sources are read as a stream of batches (:func:`iter_source`), so a file of any size can be prepared
in bounded memory; :func:`read_source` concatenates the stream for small data. CSV columns are read as strings;
types are applied by preprocessing.

Errors name the file, the 1-based physical line and the column: wrong column count, missing columns, empty
files, unparsable numbers, bad labels. Arrow counts *records*; in a quoted CSV a record can span several
physical lines (a quoted value holding a newline), so on the error path only the file is re-scanned with
Python's csv module to turn the record number into the physical line where the record starts.

Multi-character delimiters (MovieLens 1M's ``::``) are read as whole lines (Arrow's CSV reader with the ASCII
unit separator as delimiter and no quoting) and split with ``pyarrow.compute.split_pattern``; such files are
never quoted.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from leanrec.data.cards import DatasetCard, JoinSpec
from leanrec.errors import DataError

THREADED_BYTES = 64 << 20      # files larger than this are parsed with Arrow's thread pool
BLOCK_BYTES = 16 << 20         # CSV bytes per record batch
BATCH_ROWS = 1 << 20           # Parquet rows per record batch
LINE_DELIMITER = "\x1f"        # single-character delimiter for multi-character-delimited files (never in data)
_NUMBER_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*[-+]?(nan|NaN|inf|Inf|infinity)\s*$"


@dataclass
class Segment:
    """Rows [start, start + n) of a table came from `path`; data row k is record `first_line + k` of the file.

    Records are physical lines unless the file is quoted CSV (`quoted` holds (encoding, delimiter) then), where
    :meth:`line` re-scans the file to find the physical line.
    """

    path: Path
    start: int
    n: int
    first_line: int  # record number (1-based, header included) of the segment's first data row
    part: str        # "all", "train", "valid" or "test"
    quoted: tuple[str, str] | None = None

    def line(self, row: int) -> int:
        """Physical 1-based line where table row `row` (global index) starts."""
        record = self.first_line + (row - self.start)
        return physical_line(self.path, record, *self.quoted) if self.quoted else record


@dataclass
class RawTable:
    """Rows of a dataset (all of them, or one batch of a stream): columns by name, and the file/line origin of
    every row. Row indices in `segments` are global (position in the whole source)."""

    table: pa.Table
    segments: list[Segment] = field(default_factory=list)
    start: int = 0      # global index of this table's first row
    part: str = "all"   # the card file set of a batch ("all", "train", "valid", "test"); batches never span files

    def locate(self, row: int) -> tuple[str, int | None]:
        """(file, physical line) of local row index `row`."""
        g = self.start + row
        for s in self.segments:
            if s.start <= g < s.start + s.n:
                return str(s.path), s.line(g)
        return "<generated>", None

    def error(self, row: int, column: str, message: str) -> DataError:
        path, line = self.locate(row)
        return DataError(message, path=path, line=line, column=column)


def physical_line(path: Path, record: int, encoding: str, delimiter: str) -> int:
    """The physical line where 1-based `record` of a quoted CSV file starts (error path only: a Python scan)."""
    with open(path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        end = 0  # physical line where the previous record ended
        for i, _ in enumerate(reader, 1):
            if i == record:
                return end + 1
            end = reader.line_num
    return record


# ---- sources -----------------------------------------------------------------------------------------------
def iter_source(card: DatasetCard, *, max_rows: int | None = None, block_bytes: int | None = None,
                batch_rows: int | None = None) -> Iterator[RawTable]:
    """Stream every file of a (non-synthetic) card as RawTable batches with joins and derived columns applied.

    `max_rows` keeps the first rows of each file. Attribute tables of joins are read once and held in memory.
    Batches never span two files; global row indices run over the files in the order all, train, valid, test.
    """
    src = card.source
    need = _needed_columns(card)
    joins = [prepare_join(j, card) for j in src.join]
    start = 0
    for part in ("all", "train", "valid", "test"):
        if part not in src.files:
            continue
        path = card.resolve(src.files[part])
        if src.format == "parquet":
            batches = ((t, 1) for t in _iter_parquet(path, need, max_rows, batch_rows or BATCH_ROWS))
            quoted = None
        elif src.format == "libfm":
            batches, quoted = _iter_libfm(path, card, max_rows, block_bytes), None
        else:
            batches = iter_csv(path, delimiter=src.delimiter, header=src.header, columns=src.columns,
                               encoding=src.encoding, quoting=src.quoting, missing=src.missing, include=need,
                               max_rows=max_rows, block_bytes=block_bytes)
            quoted = (src.encoding, src.delimiter) if src.quoting and len(src.delimiter) == 1 else None
        for table, first_line in batches:
            raw = RawTable(table, [Segment(path, start, table.num_rows, first_line, part, quoted)], start, part)
            for j in joins:
                raw.table = j.apply(raw)
            if src.derive:
                derived = {d.name: _derive(raw, d.from_, d.transform) for d in src.derive}
                for name, col in derived.items():
                    raw.table = _set_column(raw.table, name, col)
            yield raw
            start += table.num_rows


def read_source(card: DatasetCard, *, max_rows: int | None = None) -> RawTable:
    """Every row of a card's files in one table (the stream of :func:`iter_source`, concatenated)."""
    batches = list(iter_source(card, max_rows=max_rows))
    tables = [b.table for b in batches]
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
    return RawTable(table.combine_chunks(), [s for b in batches for s in b.segments])


def _needed_columns(card: DatasetCard) -> list[str] | None:
    """Columns to read from the main file(s), or None (= all) when that cannot be known in advance."""
    src = card.source
    if not card.fields or any(not j.columns for j in src.join):
        return None
    joined = {c for j in src.join for c in j.columns if c != j.on}
    derived = {d.name for d in src.derive}
    derive_sources = {d.from_ for d in src.derive}
    cols = [f.source for f in card.fields] + [lab.source for lab in card.labels] + sorted(derive_sources)
    cols += [j.on for j in src.join] + ([card.time] if card.time else [])
    # joined columns come from attribute files; derived ones are computed, unless derived in place (avazu hour)
    return list(dict.fromkeys(c for c in cols if c not in joined and (c not in derived or c in derive_sources)))


# ---- CSV ---------------------------------------------------------------------------------------------------
def read_csv(path: Path, *, delimiter: str = ",", header: bool = True, columns: tuple[str, ...] = (),
             encoding: str = "utf8", quoting: bool = True, missing: tuple[str, ...] = ("",),
             include: list[str] | None = None, max_rows: int | None = None) -> tuple[pa.Table, int]:
    """A whole delimited file as one table (every column a string); returns (table, line of first data row)."""
    parts = list(iter_csv(path, delimiter=delimiter, header=header, columns=columns, encoding=encoding,
                          quoting=quoting, missing=missing, include=include, max_rows=max_rows))
    table = pa.concat_tables([t for t, _ in parts]) if len(parts) > 1 else parts[0][0]
    return table.combine_chunks(), parts[0][1]


def iter_csv(path: Path, *, delimiter: str = ",", header: bool = True, columns: tuple[str, ...] = (),
             encoding: str = "utf8", quoting: bool = True, missing: tuple[str, ...] = ("",),
             include: list[str] | None = None, max_rows: int | None = None,
             block_bytes: int | None = None) -> Iterator[tuple[pa.Table, int]]:
    """Stream a delimited file as (table of string columns, record number of its first row) batches.

    `delimiter` may have several characters (then the file is unquoted). Raises DataError for a missing or
    empty file, missing columns (line 1 when there is a header), rows with the wrong number of columns
    (naming the physical line) and files with no data rows.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found (fetch it with `leanrec data fetch NAME`, or set LEANREC_DATA_DIR)",
                        path=str(path))
    size = path.stat().st_size
    if size == 0:
        raise DataError("empty file", path=str(path))
    multi = len(delimiter) > 1
    quoting = quoting and not multi
    names = list(columns)
    if header:
        with open(path, "rb") as fh:   # decode the header line alone: a bad byte further down is reported below
            raw = fh.readline()
        try:
            first = raw.decode(encoding).rstrip("\r\n").removeprefix("\ufeff")  # BOM (spreadsheet exports)
        except UnicodeDecodeError as exc:
            raise DataError(f"header is not valid {encoding} (byte {raw[exc.start]:#04x} at offset {exc.start}); "
                            "set the card's [source] encoding", path=str(path), line=1) from None
        found = (first.split(delimiter) if not quoting else
                 next(csv.reader([first], delimiter=delimiter)))
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

    def options(threads: bool) -> dict:
        read = dict(skip_rows=1 if header else 0, encoding=encoding, use_threads=threads,
                    block_size=block_bytes or BLOCK_BYTES)
        if multi:
            return dict(read_options=pcsv.ReadOptions(column_names=["line"], **read),
                        parse_options=pcsv.ParseOptions(delimiter=LINE_DELIMITER, quote_char=False,
                                                        ignore_empty_lines=False, invalid_row_handler=on_invalid),
                        convert_options=pcsv.ConvertOptions(column_types={"line": pa.string()},
                                                            strings_can_be_null=False))
        return dict(
            read_options=pcsv.ReadOptions(column_names=names, **read),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoting else False,
                                            newlines_in_values=quoting, ignore_empty_lines=False,
                                            invalid_row_handler=on_invalid),
            convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in (include or names)}, include_columns=include,
                strings_can_be_null=True, null_values=list(missing)),
        )

    # Arrow's parallel CSV reader can hang when a read is aborted by an error (apache/arrow#38676, #43892), so
    # small files (all our tests, the samples) are parsed on one thread; big logs use the thread pool.
    threads = size > THREADED_BYTES
    line, total = first_line, 0
    try:
        for batch in pcsv.open_csv(path, **options(threads)):
            table = pa.Table.from_batches([batch])
            if max_rows is not None and total + table.num_rows > max_rows:
                table = table.slice(0, max_rows - total)
            if multi:
                table = _split_lines(table["line"], delimiter, names, include, missing, path, line)
            if table.num_rows:
                yield table, line
            line += table.num_rows
            total += table.num_rows
            if max_rows is not None and total >= max_rows:
                break
    except pa.ArrowInvalid as exc:
        if bad and bad[0].number is None:  # record numbers are only known to the single-threaded parser
            bad.clear()
            try:
                for _ in pcsv.open_csv(path, **options(False)):
                    pass
            except pa.ArrowInvalid:
                pass
        if bad:
            r = bad[0]
            where = physical_line(path, r.number, encoding, delimiter) if quoting else r.number
            if multi:
                msg = (f"contains the control character \\x1f, which cannot be read with a multi-character "
                       f"delimiter: {r.text[:120]!r}")
            else:
                msg = f"expected {r.expected_columns} columns, found {r.actual_columns}: {r.text[:120]!r}"
            raise DataError(msg, path=str(path), line=where) from None
        if "UTF8" in str(exc) or "UTF-8" in str(exc):
            where, col = first_undecodable(path, encoding, delimiter, names)
            raise DataError(f"not valid {encoding} text; set the card's [source] encoding (e.g. \"latin1\") or "
                            "fix the file", path=str(path), line=where, column=col) from None
        raise DataError(f"cannot parse: {exc}", path=str(path)) from None
    if total == 0:
        raise DataError("no data rows", path=str(path))


def first_undecodable(path: Path, encoding: str, delimiter: str, names: list[str]
                      ) -> tuple[int | None, str | None]:
    """(physical line, column name) of the first value in `path` that is not valid `encoding` text."""
    delim = delimiter.encode(encoding, errors="replace")
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as exc:
                index = raw[:exc.start].count(delim)
                return number, names[index] if index < len(names) else None
    return None, None


def _split_lines(lines: pa.ChunkedArray, delimiter: str, names: list[str], include: list[str] | None,
                 missing: tuple[str, ...], path: Path, first_line: int) -> pa.Table:
    """Split whole lines on a multi-character delimiter into string columns (vectorised)."""
    parts = pc.split_pattern(lines, pattern=delimiter)
    counts = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(counts != len(names))
    if len(bad):
        k = int(bad[0])
        raise DataError(f"expected {len(names)} columns, found {counts[k]}: {lines[k].as_py()[:120]!r}",
                        path=str(path), line=first_line + k)
    cols = {}
    for i, name in enumerate(names):
        if include is not None and name not in include:
            continue
        col = pc.list_element(parts, i)
        cols[name] = pc.if_else(pc.is_in(col, value_set=pa.array(list(missing), pa.string())),
                                pa.scalar(None, pa.string()), col) if missing else col
    return pa.table(cols)


# ---- Parquet and libFM -------------------------------------------------------------------------------------
def _iter_parquet(path: Path, include: list[str] | None, max_rows: int | None, batch_rows: int
                  ) -> Iterator[pa.Table]:
    if not Path(path).is_file():
        raise DataError("file not found", path=str(path))
    schema = pq.read_schema(path)
    for c in include or []:
        if c not in schema.names:
            raise DataError(f"missing column {c!r} (columns: {', '.join(schema.names)})", path=str(path), column=c)
    total = 0
    # pre_buffer=False: a pre-buffering reader caches the byte ranges of every row group it will read, so its
    # memory grows with the file
    for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=batch_rows, columns=include):
        table = pa.Table.from_batches([batch])
        if max_rows is not None and total + table.num_rows > max_rows:
            table = table.slice(0, max_rows - total)
        if table.num_rows:
            yield table
        total += table.num_rows
        if max_rows is not None and total >= max_rows:
            break
    if total == 0:
        raise DataError("no data rows", path=str(path))


def _iter_libfm(path: Path, card: DatasetCard, max_rows: int | None, block_bytes: int | None
                ) -> Iterator[tuple[pa.Table, int]]:
    """libFM / libSVM with one `index:value` token per field, in field order: `label idx:val idx:val ...`.

    The feature index is the categorical value; labels -1/+1 map to 0/1.
    """
    if len(card.labels) != 1:
        raise DataError("libfm files carry exactly one label", path=str(path))
    label = card.labels[0].source
    names = [label] + [f.source for f in card.fields]
    for table, line in iter_csv(path, delimiter=card.source.delimiter, header=False, columns=tuple(names),
                                quoting=False, max_rows=max_rows, block_bytes=block_bytes):
        cols = {label: pc.if_else(pc.equal(table[label], "-1"), "0",
                                  pc.if_else(pc.equal(table[label], "+1"), "1", table[label]))}
        for c in names[1:]:
            cols[c] = pc.replace_substring_regex(table[c], pattern=":.*$", replacement="")
        yield pa.table(cols), line


# ---- joins and derived columns -----------------------------------------------------------------------------
@dataclass
class PreparedJoin:
    """An attribute table read once (keys checked unique), applied to each batch as a left join."""

    spec: JoinSpec
    path: Path
    right: pa.Table
    keys: pa.Array

    def apply(self, raw: RawTable) -> pa.Table:
        if self.spec.on not in raw.table.column_names:
            raise DataError(f"join key {self.spec.on!r} is not a column of the main table", column=self.spec.on)
        idx = pc.index_in(raw.table[self.spec.on], value_set=self.keys)
        table = raw.table
        for c in self.right.column_names:
            if c != self.spec.on:
                table = _set_column(table, c, self.right[c].take(idx))
        return table


def prepare_join(j: JoinSpec, card: DatasetCard) -> PreparedJoin:
    """Read a join's attribute file; duplicate keys raise DataError naming the line."""
    path = card.resolve(j.file)
    right, first_line = read_csv(path, delimiter=j.delimiter, header=j.header, columns=j.columns,
                                 encoding=j.encoding, quoting=j.quoting, missing=card.source.missing)
    if j.on not in right.column_names:
        raise DataError(f"join key {j.on!r} is not a column", path=str(path), column=j.on)
    keys = right[j.on].combine_chunks()
    if pc.count_distinct(keys).as_py() != len(keys):
        _, first_dup = np.unique(keys.to_numpy(zero_copy_only=False), return_index=True)
        dup_row = int(np.setdiff1d(np.arange(len(keys)), first_dup)[0])
        record = first_line + dup_row
        line = physical_line(path, record, j.encoding, j.delimiter) if j.quoting and len(j.delimiter) == 1 \
            else record
        raise DataError(f"duplicate join key {keys[dup_row].as_py()!r}", path=str(path), line=line, column=j.on)
    return PreparedJoin(j, path, right, keys)


def _derive(raw: RawTable, source: str, transform: str) -> pa.Array:
    col = raw.table[source]
    if transform.startswith("yymmddhh_"):
        ts = pc.strptime(pc.cast(col, pa.string()), format="%y%m%d%H", unit="s", error_is_null=True)
        bad = np.flatnonzero(pc.and_(pc.is_null(ts), pc.is_valid(col)).to_numpy(zero_copy_only=False))
        if len(bad):
            raise raw.error(int(bad[0]), source, f"expected a YYMMDDHH timestamp, found {col[int(bad[0])].as_py()!r}")
        return pc.day_of_week(ts) if transform == "yymmddhh_weekday" else pc.hour(ts)
    if transform == "first_of_list":
        # "a|b|c" -> "a" (MovieLens genres); missing stays missing
        return pc.list_element(pc.split_pattern(pc.cast(col, pa.string()), pattern="|", max_splits=1), 0)
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


_ZONED_RE = r"\d\d:\d\d(:\d\d([.,]\d*)?)?(Z|z|[+-]\d\d(:?\d\d)?)$"  # a time of day with Z or a UTC offset
TIME_FORMS = ("a number (epoch seconds or milliseconds) or an ISO 8601 date-time such as 2017-11-07 09:30:38, "
              "2017-11-07T09:30:38, 2017-11-07T09:30:38.250+01:00 or 2017-11-07")


def to_time(raw: RawTable, column: str) -> np.ndarray:
    """A time column as float64 for ordering rows (missing = NaN).

    Numbers (epoch seconds or milliseconds, or any increasing count) are kept as they are; ISO 8601 date-times
    (``2017-11-07 09:30:38``, with ``T``, fractional seconds, ``Z`` or a UTC offset such as ``+01:00``; a bare
    date) become epoch seconds, a date-time without a zone read as UTC. Parquet timestamp and date columns
    become epoch seconds. The first valid value decides the form; a value of another form, or of neither,
    raises DataError naming file, line and column.
    """
    col = raw.table[column]
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_date(col.type):
        col = pc.cast(col, pa.timestamp("s"))
    if pa.types.is_timestamp(col.type):
        micros = pc.cast(col, pa.timestamp("us", tz=col.type.tz)).cast(pa.int64())
        return pc.cast(micros, pa.float64()).to_numpy(zero_copy_only=False) / 1e6
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return to_float(raw, column)
    col = pc.utf8_trim_whitespace(col)
    valid = pc.is_valid(col).to_numpy(zero_copy_only=False)
    numeric = pc.fill_null(pc.match_substring_regex(col, _NUMBER_RE), True).to_numpy(zero_copy_only=False)
    if numeric.all():
        return to_float(raw, column)
    first = int(np.argmax(valid))
    if numeric[first]:
        row = int(np.argmax(~numeric))
        raise raw.error(row, column, f"expected a number (epoch seconds or milliseconds) like the first value "
                                     f"{col[first].as_py()!r}; found {col[row].as_py()!r}")
    if (numeric & valid).any():
        row = int(np.argmax(numeric & valid))
        raise raw.error(row, column, f"expected an ISO 8601 date-time like the first value {col[first].as_py()!r}"
                                     f" (a time column holds numbers or date-times, not both); found "
                                     f"{col[row].as_py()!r}")
    zoned = pc.fill_null(pc.match_substring_regex(col, _ZONED_RE), False)
    micros = np.full(len(col), np.nan)
    for mask, typ in ((pc.invert(zoned), pa.timestamp("us")), (zoned, pa.timestamp("us", tz="UTC"))):
        parsed = _cast_or_raise(raw, column, pc.if_else(mask, col, pa.scalar(None, col.type)), typ)
        rows = np.flatnonzero(mask.to_numpy(zero_copy_only=False) & valid)
        micros[rows] = pc.cast(parsed.cast(pa.int64()), pa.float64()).to_numpy(zero_copy_only=False)[rows]
    return micros / 1e6


def _cast_or_raise(raw: RawTable, column: str, values: pa.Array, typ: pa.DataType) -> pa.Array:
    """`values` cast to timestamp type `typ`; on failure the first unparsable row is found by bisection (a few
    casts of halves, no per-row loop) and named in a DataError."""
    try:
        return pc.cast(values, typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    lo, n = 0, len(values)
    while n > 1:  # invariant: values[lo:lo + n] holds an unparsable value
        half = n // 2
        try:
            pc.cast(values.slice(lo, half), typ)
            lo, n = lo + half, n - half
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            n = half
    raise raw.error(lo, column, f"expected {TIME_FORMS}; found {values[lo].as_py()!r}")
