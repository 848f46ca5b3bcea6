"""The progress indicator of `compute`: rows counted, and for plain text files on the native reader a bar
with percentage, MB/s and time left."""
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
        yield advance
