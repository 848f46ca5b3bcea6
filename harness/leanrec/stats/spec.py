"""What to count (the field spec) and how it is inferred from a file's first batch: which fields are
numeric (typed numbers, or text that parses as numbers), which keep string values, which pairs."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from leanrec.errors import ConfigError, DataError


def parse_size(size: str | int) -> int:
    """'2GB', '512MiB', '100k' or an int -> bytes (decimal and binary units both mean powers of 1024)."""
    if isinstance(size, int):
        return size
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kmgt]?)i?b?\s*", str(size).lower())
    if not m:
        raise ConfigError(f"cannot parse memory size {size!r}; use e.g. 2GB, 512MB, 1000000")
    return int(float(m.group(1)) * 1024 ** "_kmgt".index(m.group(2) or "_"))


@dataclass
class Spec:
    """What to count: fields (categorical stats for all), which are numeric, which keep string values."""

    fields: list[str]
    numeric: list[str]
    strings: list[str]
    labels: list[str]
    pairs: list[tuple[str, str]]
    budget: int
    hll_precision: int = 14

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "pairs": [list(p) for p in self.pairs]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Spec":
        return cls(**{**d, "pairs": [tuple(p) for p in d["pairs"]]})


def parses(col: pa.Array) -> bool:
    """Whether every non-null value of a text column parses as a number.

    A sample of 64 non-null values is tried first, so text columns (hashes, words) are rejected
    without casting the whole batch; only columns whose sample parses get the full check.
    """
    def ok(a: pa.Array) -> bool:
        try:
            pc.cast(a, pa.float64())
            return True
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
    sample = pc.drop_null(col.slice(0, 4096))[:64]
    return ok(sample) and ok(col)


def is_bytes(t: pa.DataType) -> bool:
    """Whether values of this type are raw bytes (strings/binary, also as dictionary values)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or \
        pa.types.is_large_binary(t) or getattr(pa.types, "is_string_view", lambda _: False)(t)


def infer_spec(batch: pa.RecordBatch, *, labels: Sequence[str], fields: Sequence[str] | None,
               numeric: Sequence[str] | None, pairs: bool | Sequence[tuple[str, str]], budget: int,
               hll_precision: int, path: str) -> Spec:
    """The field spec from a file's first batch; explicit `fields` / `numeric` / `pairs` are checked and kept."""
    names = batch.schema.names
    missing = [lab for lab in labels if lab not in names]
    if missing:
        raise DataError(f"label column(s) {missing} not found; columns are {names}", path=path)
    chosen = list(fields) if fields is not None else [n for n in names if n not in labels]
    unknown = [f for f in chosen if f not in names]
    if unknown:
        raise ConfigError(f"unknown field(s) {unknown}; columns are {names}")
    if numeric is None:  # numeric = typed numbers, or strings that all parse as numbers in the first batch
        numeric = []
        for f in chosen:
            col = batch.column(f)
            if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
                numeric.append(f)
            elif pa.types.is_string(col.type) and col.null_count < len(col) and parses(col):
                numeric.append(f)
    strings = [f for f in chosen if f not in numeric and is_bytes(batch.column(f).type)]
    if pairs is True:
        pair_list = [(a, b) for i, a in enumerate(chosen) for b in chosen[i + 1:]]
    elif pairs:
        pair_list = [tuple(p) for p in pairs]  # type: ignore[misc]
        bad = [p for p in pair_list if p[0] not in chosen or p[1] not in chosen]
        if bad:
            raise ConfigError(f"pairs name unknown fields: {bad}")
    else:
        pair_list = []
    return Spec(chosen, list(numeric), strings, list(labels), pair_list, budget, hll_precision)
