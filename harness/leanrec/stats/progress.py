"""The progress indicator of `compute`: rows counted, and a bar with percentage and time left for plain text
files on the native reader (by bytes, with MB/s) and for Parquet files (by rows, from their footers)."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from leanrec.stats.sources import compression, file_format, native_reads


@contextmanager
def progress_bar(files: Sequence[Path], fmt: str | None, reader: str) -> Iterator[Callable[[int, int], None]]:
    """A transient rich progress display; yields `advance(rows, nbytes)` for the counting loop."""
    from rich import progress as rp

    # the native reader reports bytes as well: then a bar with percentage, MB/s and time left
    by_bytes = all(native_reads(f, file_format(f, fmt), reader) and not compression(f) for f in files)
    total_rows = None if by_bytes else parquet_rows(files, fmt)
    columns = [rp.SpinnerColumn(), rp.TextColumn("{task.description}"), rp.TextColumn("{task.fields[rows]:,} rows")]
    if by_bytes:
        columns += [rp.BarColumn(), rp.TaskProgressColumn(), rp.TransferSpeedColumn(), rp.TimeRemainingColumn()]
    elif total_rows is not None:
        columns += [rp.BarColumn(), rp.TaskProgressColumn(), rp.TimeRemainingColumn()]
    with rp.Progress(*columns, rp.TimeElapsedColumn(), transient=True) as bar:
        total = sum(f.stat().st_size for f in files) if by_bytes else total_rows
        task = bar.add_task(f"counting {len(files)} file(s)", rows=0, total=total)
        seen = [0]

        def advance(rows: int, nbytes: int) -> None:
            seen[0] += rows
            bar.update(task, advance=nbytes if by_bytes else rows, rows=seen[0])
        yield advance


def parquet_rows(files: Sequence[Path], fmt: str | None) -> int | None:
    """Rows of the files from their Parquet footers, when they are all Parquet files (None otherwise)."""
    if not files or any(file_format(f, fmt) != "parquet" for f in files):
        return None
    import pyarrow.parquet as pq

    try:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    except Exception:  # noqa: BLE001 - a damaged footer: counting reports it, the bar just has no total
        return None
