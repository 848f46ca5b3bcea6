"""`leanrec data init FILE --label COL`: a dataset card for one's own log, inferred from a sample.

`init_card` reads the first rows of a CSV/TSV/Parquet file, infers each column's kind, runs the statistics
engine and its findings (`leanrec.stats.findings`) on the sample, and writes a card that `leanrec data info`
and `leanrec run -d CARD` accept as is. Columns the findings say to drop (leaking, identifier-like,
constant) are left out of `fields`, each with its reason as a TOML comment; the other findings are
comments next to their field. Kinds: text and integer columns are categorical; a column whose values all
parse as numbers and are not all integers is numeric (bucketed by the data layer). A `time` column is
marked in the card (and the split set to `time`); its values must be ISO 8601 date-times or epoch
seconds / milliseconds.
"""
from __future__ import annotations

import json
import re
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from leanrec.errors import ConfigError, DataError

SAMPLE_ROWS = 200_000
_FORMATS = {".csv": ("csv", ","), ".tsv": ("csv", "\t"), ".txt": ("csv", "\t"), ".parquet": ("parquet", None),
            ".pq": ("parquet", None)}


def _layout(path: Path) -> tuple[str, str | None]:
    """(card format, delimiter) by suffix."""
    try:
        return _FORMATS[path.suffix.lower()]
    except KeyError:
        raise ConfigError(f"{path}: cannot tell the format from the suffix {path.suffix!r}; leanrec data init "
                          f"reads {', '.join(sorted(_FORMATS))} files (CSV/TSV with a header line)") from None


def _line(fmt: str, row: int) -> int:
    """Physical line of sample row `row` (0-based) in a CSV with a header; the row number for Parquet."""
    return row + 2 if fmt == "csv" else row + 1


def _first_bad(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if len(idx) else None


def _floats(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, mask of non-null values that do not parse as numbers)."""
    col = col.combine_chunks()
    if pa.types.is_boolean(col.type):
        col = col.cast(pa.int8())
    try:
        return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), np.zeros(len(col), bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        vals = col.to_pylist()
        out = np.full(len(vals), np.nan)
        bad = np.zeros(len(vals), bool)
        for i, v in enumerate(vals):
            if v is None:
                continue
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                bad[i] = True
        return out, bad


def numeric_kind(col: pa.ChunkedArray) -> bool:
    """Numeric (bucketed) when every non-null value is a number and not all are integers; integer codes and
    text are categorical."""
    if pa.types.is_floating(col.type):
        vals = col.to_numpy(zero_copy_only=False)
    elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        vals, bad = _floats(col)
        if bad.any():
            return False
    else:
        return False
    vals = vals[np.isfinite(vals)]
    return bool(len(vals)) and bool(np.any(vals != np.floor(vals)))


def time_kind(col: pa.ChunkedArray, *, path: Path, fmt: str, name: str) -> str:
    """How a time column is written: "epoch seconds", "epoch milliseconds" or "ISO 8601 date-times".
    Raises DataError naming the line of the first value that is none of them (or missing)."""
    missing = _first_bad(np.asarray(col.is_null().to_numpy(zero_copy_only=False)))
    if missing is not None:
        raise DataError("time value is missing", path=str(path), line=_line(fmt, missing), column=name)
    if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
        return "date-times"
    vals, bad = _floats(col)
    if not bad.any():
        big = float(np.nanmax(np.abs(vals))) if len(vals) else 0.0
        return "epoch milliseconds" if big >= 1e11 else "epoch seconds"
    for i, v in enumerate(col.to_pylist()):
        text = str(v).strip()
        try:
            datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise DataError(f"time value {v!r} is neither an ISO 8601 date-time (e.g. 2017-11-07 09:30:38) nor "
                            "epoch seconds/milliseconds", path=str(path), line=_line(fmt, i), column=name) from None
    return "ISO 8601 date-times"


def _labels_ok(col: pa.ChunkedArray, *, path: Path, fmt: str, name: str) -> None:
    vals, bad = _floats(col)
    wrong = bad | ~np.isin(vals, (0.0, 1.0))
    i = _first_bad(wrong)
    if i is not None:
        v = col[i].as_py()
        what = "missing" if v is None else f"{v!r}"
        raise DataError(f"label must be 0 or 1, found {what} (for ratings or scores, add `threshold = ...` to "
                        "the card's [[labels]] by hand)", path=str(path), line=_line(fmt, i), column=name)


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _comment(text: str) -> str:
    return " ".join(str(text).split())


def init_card(path: str | Path, label: str, time: str | None = None, out: str | Path | None = None, *,
              sample_rows: int = SAMPLE_ROWS, name: str | None = None, overwrite: bool = False,
              threads: int | None = None) -> Path:
    """Write a dataset card for the log at `path` and return the card's path.

    label: the 0/1 label column.  time: a time column (ISO 8601 or epoch s/ms): marked as the card's
    `time`, split "time"; without it the split is random 8:1:1.  out: the card file (default:
    ``<file stem>.toml`` in the current directory; an existing file is an error unless `overwrite`).
    sample_rows: rows read for kinds and findings (the first rows of the file).  name: the card's name
    (default: the card file's stem).
    """
    from leanrec.data.cards import DatasetCard, tomllib
    from leanrec.records import atomic_write_text
    from leanrec.stats import compute
    from leanrec.stats import findings as fnd

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError("no such file", path=str(path))
    fmt, delim = _layout(path)
    out = Path(out) if out is not None else Path.cwd() / f"{path.stem}.toml"
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; pass --force (overwrite=True) to replace it, or --out another path")
    stats_fmt = "parquet" if fmt == "parquet" else ("tsv" if delim == "\t" else "csv")
    table = fnd.read_sample(path, columns=None, rows=sample_rows, format=stats_fmt, skip_bad_lines=False)
    columns = table.column_names
    for role, col in (("label", label), ("time", time)):
        if col is not None and col not in columns:
            raise DataError(f"{role} column {col!r} not found; columns are {columns}", path=str(path))
    if time == label:
        raise ConfigError("the time column cannot be the label")
    _labels_ok(table.column(label), path=path, fmt=fmt, name=label)
    positives = int(pc.sum(pc.cast(pc.cast(table.column(label), pa.float64()), pa.int64())).as_py() or 0)
    if positives in (0, table.num_rows):
        raise DataError(f"label {label!r} has a single class in the first {table.num_rows:,} rows ({positives} "
                        "positives); a larger --sample-rows may reach both", path=str(path), column=label)
    when = time_kind(table.column(time), path=path, fmt=fmt, name=time) if time else None
    candidates = [c for c in columns if c not in (label, time)]
    if not candidates:
        raise DataError("no columns besides the label and time columns", path=str(path))
    numeric = [c for c in candidates if numeric_kind(table.column(c))]

    with tempfile.TemporaryDirectory(prefix="leanrec-init-") as tmp:  # the engine reads files: the sample as one
        import pyarrow.parquet as pq

        sample = Path(tmp) / "sample.parquet"
        pq.write_table(table.select([label, *candidates]), sample)
        report = compute(sample, label=label, fields=candidates, numeric=numeric, progress=False, threads=threads)
    null = fnd.label_null(table, labels=[label], fields=candidates, threads=threads)
    found = fnd.find(report, null)
    dropped = fnd.drops(found)
    kept = [c for c in candidates if c not in dropped]
    if not kept:
        raise DataError("every column was proposed for dropping (see `leanrec stats` on the file for why); "
                        "write the card by hand", path=str(path))

    out.parent.mkdir(parents=True, exist_ok=True)
    src = path.resolve()
    try:
        rel = src.relative_to(out.parent.resolve()).as_posix()
    except ValueError:
        rel = str(src)
    by_field: dict[str, list[fnd.Finding]] = {}
    for x in found:
        by_field.setdefault(x.field, []).append(x)
    card_name = name or re.sub(r"[^A-Za-z0-9_.-]+", "-", out.stem).strip("-") or "dataset"
    rows_note = f"the first {table.num_rows:,} rows" if table.num_rows >= sample_rows else f"all {table.num_rows:,} rows"
    lines = [
        f"# Written by `leanrec data init` from {rows_note} of {src} (label {label!r}"
        + (f", time {time!r}: {when}" if time else "") + ").",
        "# Kinds were inferred from that sample: text and integer columns are categorical, columns of",
        "# non-integer numbers numeric (bucketed; see docs/data.md). Set kind = \"numeric\" on integer counts.",
        "# Findings (leanrec stats) on the sample are comments below; columns they say to drop are left out",
        "# of `fields` (put a line back to keep one). Edit freely: `leanrec data info` on this file checks it.",
        f"name = {_toml_str(card_name)}",
        f"description = {_toml_str(f'Own log {path.name} (card written by leanrec data init).')}",
    ]
    if time:
        lines.append(f"time = {_toml_str(time)}  # {when}")
    lines.append("fields = [")
    for c in candidates:
        notes = by_field.get(c, [])
        if c in dropped:
            why = "; ".join(x.summary() for x in notes if x.action == "drop")
            lines.append(f"  # dropped {_toml_str(c)}: {_comment(why)}")
            continue
        entry = f"{{ name = {_toml_str(c)}, kind = \"numeric\" }}" if c in numeric else _toml_str(c)
        lines.append(f"  {entry},")
        lines += [f"  #   {_comment(x.summary())}" for x in notes]
    lines.append("]")
    lines += ["", "[source]", 'format = "csv"' if fmt == "csv" else 'format = "parquet"', 'base = "card"',
              f"files = {{ all = {_toml_str(rel)} }}"]
    if delim == "\t":
        lines.append('delimiter = "\\t"')
    lines += ["", "[[labels]]", f"name = {_toml_str(label)}", "", "[split]",
              f'method = "{"time" if time else "random"}"', "ratios = [0.8, 0.1, 0.1]", ""]
    text = "\n".join(lines)
    DatasetCard.from_dict(tomllib.loads(text), path=out)  # our own text must be a valid card
    atomic_write_text(out, text)
    return out


def data_file(name: str | Path) -> Path | None:
    """`name` as a path when it is an existing file that `init_card` reads (by suffix), else None: lets a
    command that takes a dataset name or card also take a raw log (``leanrec run -d FILE.csv --label COL``)."""
    p = Path(name).expanduser()
    return p if p.suffix.lower() in _FORMATS and p.is_file() else None


def summary(card: Path) -> list[str]:
    """Short lines for the command line: the card's fields and its dropped columns with reasons."""
    from leanrec.data.cards import load_card

    c = load_card(card)
    lines = [f"fields ({len(c.fields)}): " + ", ".join(f.name + (" (numeric)" if f.kind == "numeric" else "")
                                                        for f in c.fields)]
    for line in card.read_text(encoding="utf8").splitlines():
        if line.strip().startswith("# dropped "):
            lines.append(line.strip()[2:])
    return lines


__all__ = ["init_card", "data_file", "numeric_kind", "time_kind", "summary", "SAMPLE_ROWS"]
