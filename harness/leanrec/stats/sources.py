"""Where the input comes from: file listing, format detection by suffix, compression, CSV/TSV headers."""
from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from leanrec.errors import ConfigError, DataError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".parquet": "parquet", ".pq": "parquet",
           ".arrow": "ipc", ".ipc": "ipc", ".feather": "ipc"}
# compressed text files (by suffix): Arrow's reader decompresses all of them, the native reader gzip
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4", ".br": "brotli"}
DELIMITERS = {"csv": ",", "tsv": "\t"}
BadRows = Literal["error", "skip"]


def list_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """The files of `source`: a file, a directory of shards (readable suffixes only), or a list of them."""
    if isinstance(source, (list, tuple)):
        return [f for s in source for f in list_files(s)]
    p = Path(source)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                       and (f.with_suffix("") if compression(f) else f).suffix.lower() in FORMATS)
        if not files:
            raise DataError(f"no readable shards ({', '.join(sorted(FORMATS))}) in directory", path=str(p))
        kinds: dict[str, str] = {}
        for f in files:
            kinds.setdefault(file_format(f, None), f.name)
        if len(kinds) > 1:  # text and typed shards would not agree on column types
            found = ", ".join(f"{k} ({name})" for k, name in kinds.items())
            raise DataError(f"the shards mix formats: {found}; keep one format per directory", path=str(p))
        return files
    if not p.exists():
        raise DataError("no such file or directory", path=str(p))
    return [p]


def compression(path: Path) -> str | None:
    """The compression of a file by its suffix (`log.tsv.gz` -> "gzip"), None for a plain file."""
    return COMPRESSIONS.get(path.suffix.lower())


def file_format(path: Path, fmt: str | None) -> str:
    """`fmt` if given (validated), else the format named by the file's suffix (under a compression suffix)."""
    if fmt:
        if fmt not in {"csv", "tsv", "parquet", "ipc"}:
            raise ConfigError(f"unknown format {fmt!r}; use csv, tsv, parquet or ipc")
        return fmt
    try:
        return FORMATS[(path.with_suffix("") if compression(path) else path).suffix.lower()]
    except KeyError:
        raise ConfigError(f"cannot tell the format of {path.name}; pass format='csv'|'tsv'|'parquet'|'ipc'") from None


def native_reads(path: Path, fmt: str, reader: str) -> bool:
    """Whether the native reader counts this file: CSV/TSV, plain or gzip, unless `reader="arrow"`."""
    return reader == "native" and fmt in DELIMITERS and compression(path) in (None, "gzip")


def open_bytes(path: Path) -> Any:
    """The file's (decompressed) bytes as a binary stream with read() and readline()."""
    kind = compression(path)
    return io.BufferedReader(pa.input_stream(str(path), compression=kind)) if kind else open(path, "rb")


def header_columns(path: Path, delim: str, names: Sequence[str] | None) -> tuple[list[str], int]:
    """Column names of a CSV/TSV file (`names`, else its header line) and the byte offset of its first row.
    No columns: the file is empty."""
    if names is not None:
        return list(names), 0
    with open_bytes(path) as fh:
        raw = fh.readline()
    first = raw.decode("utf-8-sig", errors="replace").rstrip("\r\n")  # -sig: drop a byte-order mark (Excel)
    return ([c.strip().strip('"') for c in first.split(delim)] if first else []), len(raw)
