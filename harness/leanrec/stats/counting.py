"""Counting files into a TableAccumulator: CSV/TSV through the native reader (parsed and counted in Rust),
everything else as Arrow record batches (validated, then counted by the Rust accumulators)."""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pyarrow as pa

from leanrec import _native
from leanrec.errors import DataError
from leanrec.prefetch import prefetched
from leanrec.stats.arrow_reader import ReadState, read_batches, slices
from leanrec.stats.sources import DELIMITERS, BadRows, compression, file_format, header_columns, native_reads
from leanrec.stats.spec import Spec, infer_spec, is_bytes
from leanrec.stats.table import TableAccumulator
from leanrec.stats.validate import prepare


def _typed(t: pa.DataType, allow_bool: bool = False) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or (allow_bool and pa.types.is_boolean(t))


def check_columns(schema: pa.Schema, spec: Spec, path: str) -> None:
    """A later file's columns fit the spec inferred from the first: present, numbers where numeric, text
    where the first file had text (DataError naming the file and column otherwise)."""
    for col in (*spec.labels, *spec.fields):
        if schema.get_field_index(col) < 0:
            raise DataError(f"column not found; columns are {schema.names}", path=path, column=col)
    for f in spec.fields:
        t = schema.field(f).type
        if f in spec.numeric and not (_typed(t) or pa.types.is_string(t) or pa.types.is_large_string(t)):
            raise DataError(f"a numeric field holds {t} values here", path=path, column=f)
        if f in spec.strings and not is_bytes(t):
            raise DataError(f"the field holds {t} values here but text in the first file; give the files one "
                            "format and column types", path=path, column=f)


def takes_as_is(schema: pa.Schema, spec: Spec) -> bool:
    """Whether batches of this schema can be counted as they are (`TableAccumulator.count_arrow`): typed
    label columns and typed numeric fields; text columns (the CSV Arrow reader) are validated first."""
    return all(_typed(schema.field(lab).type, allow_bool=True) for lab in spec.labels) and \
        all(_typed(schema.field(f).type) for f in spec.numeric)


def count_delimited(path: Path, fmt: str, names: Sequence[str] | None, acc: TableAccumulator,
                    on_bad_rows: BadRows, progress: Any) -> None:
    """Count one CSV/TSV file with the native reader (leanrec_core::delimited): parsing and counting in
    Rust, no Arrow string arrays. Same counts, bad-row rules and messages as the pyarrow path."""
    cols, offset = header_columns(path, DELIMITERS[fmt], names)
    if not cols:
        return
    spec, index = acc.spec, {c: i for i, c in enumerate(cols)}
    missing = [c for c in (*spec.labels, *spec.fields) if c not in index]  # a later file with other columns
    if missing:
        raise DataError(f"column(s) {missing} not found; columns are {cols}", path=str(path))
    typed = [f for f in spec.fields if f not in spec.numeric and f not in spec.strings]
    if typed:  # the spec came from a typed (Parquet/IPC) file where these were not text
        raise DataError("the field holds text here but typed values in the first file; give the files one format",
                        path=str(path), column=typed[0])
    number = [index[f] for f in spec.numeric]
    text = [index[f] for f in spec.fields if f not in spec.numeric]
    rows, bad, first_bad = _native.count_delimited(
        str(path), offset=offset, first_line=1 + (offset > 0), delimiter=DELIMITERS[fmt], n_columns=len(cols),
        labels=[index[c] for c in spec.labels], text=text, number=number,
        fields=[(acc.cat[f], index[f]) for f in spec.fields], numeric=[(acc.num[f], index[f]) for f in spec.numeric],
        pairs=[(acc.pair[p], index[p[0]], index[p[1]]) for p in spec.pairs],
        skip_bad_rows=on_bad_rows == "skip", threads=acc.threads, progress=progress,
        gzip=compression(path) == "gzip")
    if first_bad is not None and on_bad_rows == "error":
        line, column, message = first_bad
        raise DataError(message, path=str(path), line=line, column=None if column is None else cols[column])
    acc.bad_rows += bad


def _signed_int(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) and pa.types.is_signed_integer(t)


def _plain_bytes(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_binary(t)


def _open_parquet(path: Path) -> Any:
    """The file's pyarrow ParquetFile (its footer read once), or None when it cannot be read (the Arrow path
    reports that)."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError):
        return None


def _parquet_spec(path: Path, spec_args: dict[str, Any], batch_rows: int | None = None, file: Any = None) -> Spec | None:
    """The field spec of a Parquet file as the Arrow path infers it: from the schema alone when every column is
    an integer (inference looks only at the types then), else from the first batch (text columns that parse
    as numbers are numeric); None when the file cannot be read or has no rows (the Arrow path decides)."""
    file = file if file is not None else _open_parquet(path)
    if file is None:
        return None
    try:
        schema = file.schema_arrow
        if all(pa.types.is_integer(t) for t in schema.types):
            first = pa.record_batch([pa.array([], type=t) for t in schema.types], schema=schema)
        else:
            first = next(iter(file.iter_batches(batch_size=65536)), None)
            first = None if first is None else next(slices(first, batch_rows))  # the batch the Arrow path infers from
    except (pa.ArrowInvalid, OSError):
        return None
    return None if first is None else infer_spec(first, path=str(path), **spec_args)


def count_parquet(path: Path, spec: Spec, threads: int | None, progress: Any, file: Any = None) -> TableAccumulator | None:
    """Count a Parquet file of signed integer and text columns natively (leanrec_core::parquet: pages decoded
    in Rust, dictionary pages counted by index), into a fresh accumulator; None when the file is not such a
    file (another column type, pairs, a null or non-0/1 label, ...) and the Arrow path must count it. Both
    paths give the same accumulator (tests/test_stats_parquet.py)."""
    if spec.pairs:
        return None
    file = file if file is not None else _open_parquet(path)
    if file is None:
        return None   # the Arrow path reports it
    schema = file.schema_arrow   # the types the Arrow path reads (dictionary, timestamp, ... kept)
    if file.metadata.num_rows == 0:
        return None   # no batches: the Arrow path skips the file, as it does any empty file
    for col in (*spec.labels, *spec.fields):
        i = schema.get_field_index(col)
        text = col in spec.strings
        if i < 0 or not (_plain_bytes(schema.field(i).type) if text else _signed_int(schema.field(i).type)):
            return None
    acc = TableAccumulator(spec, threads)
    reported = [0]

    def advance(rows: int, nbytes: int) -> None:
        reported[0] += rows
        progress(rows, nbytes)
    declined = _native.count_parquet(
        str(path), labels=list(spec.labels), fields=[(acc.cat[f], f, f in acc.numeric_set) for f in spec.fields],
        numeric=[(acc.num[f], f) for f in spec.numeric], threads=threads,
        progress=advance if progress is not None else None)
    if declined and progress is not None:
        progress(-reported[0], 0)   # the Arrow path counts these rows again
    return None if declined else acc


def count_files(files: Sequence[Path], *, fmt: str | None, names: Sequence[str] | None, spec: Spec | None,
                spec_args: dict[str, Any], threads: int | None, on_bad_rows: BadRows,
                batch_rows: int | None = None, progress: Any = None, reader: str = "native") -> TableAccumulator:
    """Count `files` into one TableAccumulator; the field spec is `spec`, else inferred from the first batch
    with `spec_args` (see `infer_spec`)."""
    acc: TableAccumulator | None = None
    for path in files:
        file_fmt = file_format(path, fmt)
        text = file_fmt in ("csv", "tsv")
        state = ReadState(path=str(path), header=names is None and text, text=text)
        if native_reads(path, file_fmt, reader):
            if acc is None:  # the field spec comes from the file's first batch, as on the pyarrow path
                first = next(iter(read_batches(path, file_fmt, names, on_bad_rows, state, head_bytes=8 << 20)), None)
                if first is None:
                    continue
                acc = TableAccumulator(spec or infer_spec(first, path=str(path), **spec_args), threads)
            count_delimited(path, file_fmt, names, acc, on_bad_rows, progress)
            continue
        if file_fmt == "parquet" and reader == "native":
            file = _open_parquet(path)   # one footer read for the spec and the count
            file_spec = acc.spec if acc is not None else spec or _parquet_spec(path, spec_args, batch_rows, file)
            counted = count_parquet(path, file_spec, threads, progress, file) if file_spec is not None and file is not None else None
            if counted is not None:
                if acc is None:
                    acc = counted
                else:
                    acc.merge(counted)
                continue
        as_is: dict[pa.Schema, bool] = {}
        # the reader decodes the next batch on its own thread while this one is counted; closing() stops
        # it at once when counting stops early (a bad row), not when the traceback is dropped
        with closing(prefetched(read_batches(path, file_fmt, names, on_bad_rows, state), name="leanrec-stats-reader")) as batches:
            for big in batches:
                for batch in slices(big, batch_rows):
                    if acc is None:
                        acc = TableAccumulator(spec or infer_spec(batch, path=str(path), **spec_args), threads)
                    fast = as_is.get(batch.schema)
                    if fast is None:
                        check_columns(batch.schema, acc.spec, str(path))
                        fast = as_is[batch.schema] = takes_as_is(batch.schema, acc.spec)
                    if not (fast and acc.count_arrow(batch)):
                        prepared = prepare(batch, acc.spec, state, on_bad_rows, acc)
                        if prepared is not None:
                            acc.update(*prepared)
                    state.rows_seen += batch.num_rows
                    if progress is not None:
                        progress(batch.num_rows, 0)
        if acc is not None:
            acc.bad_rows += len(state.skipped_lines)
    if acc is None:
        raise DataError("the input has no rows", path=", ".join(map(str, files)))
    return acc
