"""TableAccumulator: every accumulator of one table (per field, per numeric field, per pair), mergeable and
serialisable to one blob, and the report built from it."""
from __future__ import annotations

import json
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa

from leanrec import _native
from leanrec.errors import ConfigError, DataError
from leanrec.stats.report import StatsReport
from leanrec.stats.spec import Spec

MAGIC = b"LRTA1\n"  # TableAccumulator blob: magic, JSON header line, then length-prefixed accumulator blobs


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
        self.numeric_set = set(spec.numeric)
        self.bad_rows = 0

    def update(self, columns: dict[str, pa.Array], floats: dict[str, pa.Array], labels: np.ndarray) -> None:
        """Count one validated batch: raw columns for categorical stats, float64 columns for numeric."""
        _native.update_batch(
            [(self.cat[f], columns[f]) for f in self.spec.fields],
            [(self.num[f], floats[f]) for f in self.spec.numeric],
            [(self.pair[p], columns[p[0]], columns[p[1]]) for p in self.spec.pairs],
            labels, len(self.spec.labels), self.threads,
        )

    def count_arrow(self, batch: pa.RecordBatch) -> bool:
        """Count a batch as it is, when its labels are typed 0/1 columns and its numeric fields typed
        numbers (integer columns straight into dense tables, see docs/stats.md); returns False, counting
        nothing, when the batch needs `validate.prepare` first (a bad or missing label, a string column to
        parse, an integer a float64 cast rejects)."""
        spec, num = self.spec, self.numeric_set
        return _native.count_arrow_batch(
            [(self.cat[f], batch.column(f), f in num) for f in spec.fields],
            [(self.num[f], batch.column(f)) for f in spec.numeric],
            [(self.pair[p], batch.column(p[0]), batch.column(p[1]), p[0] in num, p[1] in num) for p in spec.pairs],
            [batch.column(lab) for lab in spec.labels], self.threads)

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
        return b"".join([MAGIC, head, b"\n", *(struct.pack("<Q", len(b)) + b for b in blobs)])

    @classmethod
    def from_bytes(cls, data: bytes, threads: int | None = None) -> "TableAccumulator":
        if not data.startswith(MAGIC):
            raise ValueError("not a leanrec TableAccumulator blob")
        end = data.index(b"\n", len(MAGIC))
        head = json.loads(data[len(MAGIC):end])
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

        def finish(f: str) -> tuple[dict[str, Any], list[tuple[int, int, bytes | None]]]:
            acc = self.cat[f]
            return acc.stats(estimator=estimator), acc.top_k(top_k)
        # fields are finished on threads (the native calls release the GIL), in spec order
        with ThreadPoolExecutor(max_workers=max(1, min(len(spec.fields), self.threads or os.cpu_count() or 1))) as pool:
            finished = dict(zip(spec.fields, pool.map(finish, spec.fields)))
        for f in spec.fields:
            s, top_f = finished[f]
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
            top[f] = [(self._value(f, key, raw), c) for key, c, raw in top_f]
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
