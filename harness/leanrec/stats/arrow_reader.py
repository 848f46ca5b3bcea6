"""Reading files as pyarrow record batches (the Arrow path): CSV/TSV as string columns, Parquet, Arrow IPC."""
from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from leanrec.errors import DataError
from leanrec.stats.sources import DELIMITERS, BadRows, header_columns, open_bytes


@dataclass
class ReadState:
    """Where reading one file stands: for line numbers in messages and the malformed lines skipped."""

    path: str
    header: bool
    text: bool = True  # CSV/TSV: positions are physical lines; else (Parquet, IPC) rows
    skipped_lines: list[int] = field(default_factory=list)
    error: tuple[int, str] | None = None
    rows_seen: int = 0  # rows delivered in batches so far (file-local)

    def where(self, local_row: int) -> dict[str, int]:
        """Where delivered row `local_row` (0-based) is, as DataError arguments: `line` for text, else `row`."""
        return {"line": self.line(local_row)} if self.text else {"row": local_row + 1}

    def line(self, local_row: int) -> int:
        """Physical line of delivered row `local_row` (0-based), accounting for skipped malformed lines."""
        line = self.header + local_row + 1
        for s in self.skipped_lines:
            if s <= line:
                line += 1
            else:
                break
        return line


def read_batches(path: Path, fmt: str, names: Sequence[str] | None, on_bad_rows: BadRows,
                 state: ReadState, head_bytes: int | None = None) -> Iterator[pa.RecordBatch]:
    """Yield record batches of one file; CSV/TSV columns come back as strings (typed later, per field).
    head_bytes: for CSV/TSV, read only the complete lines within the file's first `head_bytes` bytes."""
    if fmt in ("csv", "tsv"):
        import pyarrow.csv as pacsv

        delim = DELIMITERS[fmt]
        cols, _ = header_columns(path, delim, names)
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
                with open_bytes(path) as fh:
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
            # e.g. "In CSV column #2: Row #7: CSV conversion error to string: invalid UTF8 data" (0-based
            # column, physical line)
            m = re.search(r"column #(\d+): Row #(\d+): (.*)", str(exc))
            if m and int(m.group(1)) < len(cols):
                raise DataError(m.group(3), path=state.path, line=int(m.group(2)), column=cols[int(m.group(1))]) from None
            raise DataError(str(exc), path=state.path) from None
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        # pre_buffer=False: read column chunks as batches need them instead of a whole row group's
        # bytes at once (peak reader memory ~230 MB instead of ~730 MB on 1M-row, 21-column row groups)
        rows = 0
        try:
            for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=65536):
                yield batch
                rows += batch.num_rows
        except (pa.ArrowInvalid, OSError) as exc:  # a damaged file: which one, and after how many good rows
            raise DataError(f"cannot read the Parquet file after row {rows}: {exc}".replace("\n", " "),
                            path=state.path) from None
    else:
        import pyarrow.ipc as ipc

        try:
            r = ipc.open_file(path)
            for i in range(r.num_record_batches):
                yield r.get_batch(i)
        except pa.ArrowInvalid:
            with pa.memory_map(str(path)) as src:
                yield from ipc.open_stream(src)


def slices(batch: pa.RecordBatch, rows: int | None) -> Iterator[pa.RecordBatch]:
    """`batch` cut into slices of at most `rows` rows (None: as it is)."""
    if not rows or batch.num_rows <= rows:
        yield batch
        return
    for start in range(0, batch.num_rows, rows):
        yield batch.slice(start, rows)


