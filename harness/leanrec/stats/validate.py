"""Validating and typing one Arrow record batch (the general path): labels 0/1, numbers parse; bad rows
raise DataError naming file, line and column, or are dropped and counted."""
from __future__ import annotations

from typing import Any, TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from leanrec.errors import DataError
from leanrec.stats.arrow_reader import ReadState
from leanrec.stats.sources import BadRows
from leanrec.stats.spec import Spec

if TYPE_CHECKING:
    from leanrec.stats.table import TableAccumulator


def nan_to_null(a: pa.Array) -> pa.Array:
    """A float column with NaN turned into null."""
    return pc.if_else(pc.is_nan(a), pa.scalar(None, pa.float64()), a) if a.null_count < len(a) else a


def to_float(col: pa.Array) -> tuple[pa.Array, np.ndarray | None]:
    """Cast to float64 (NaN becomes null); on failure also return a mask of the unparseable (non-null) rows."""
    try:
        return nan_to_null(pc.cast(col, pa.float64())), None
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
        return nan_to_null(pc.cast(fixed, pa.float64())), mask


def prepare(batch: pa.RecordBatch, spec: Spec, state: ReadState, on_bad_rows: BadRows,
            acc: "TableAccumulator") -> tuple[dict[str, pa.Array], dict[str, pa.Array], np.ndarray] | None:
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
        fl, unparse = to_float(col)
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
        fl, unparse = to_float(col)
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
            raise DataError(what, path=state.path, column=column, **state.where(state.rows_seen + row))
        keep = pa.array(~bad)
        acc.bad_rows += int(bad.sum())
        columns = {k: pc.filter(v, keep) for k, v in columns.items()}
        floats = {k: pc.filter(v, keep) for k, v in floats.items()}
        labels = np.ascontiguousarray(labels[~bad])
        if not len(labels):
            return None
    return columns, floats, labels
