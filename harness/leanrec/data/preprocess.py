"""Preprocessing: splits, labels, numeric bucketing, vocabularies (train split only) and integer encoding.

Code convention for every field (documented in docs/data.md)::

    0 = missing (empty / null raw value)
    1 = out-of-vocabulary (not seen in train, or seen fewer than `min_count` times)
    2 ... vocab_size - 1 = vocabulary values, most frequent first (ties broken by value)

All steps are vectorised with pyarrow.compute / numpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields as dc_fields, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from leanrec.data.cards import SPLIT_METHODS, FieldSpec, LabelSpec
from leanrec.data.readers import RawTable, to_float
from leanrec.errors import ConfigError, DataError, check_keys

MISSING, OOV, FIRST = 0, 1, 2
NUMERIC_BUCKETING = ("criteo_log", "quantile")


@dataclass(frozen=True)
class PrepConfig:
    """Preprocessing and split options (card [preprocess] and [split], then `overrides`).

    min_count: values seen fewer times in train become OOV. numeric: default bucketing of numeric fields,
    "criteo_log" (x > 2 -> floor(ln(x)^2), else x itself; the two ranges get distinct codes) or "quantile"
    (n_buckets equal-frequency buckets from train). cross_fields: add every pairwise cross "a*b" (i-Razor's
    FG). dense: also keep numeric fields as float32 in Split.dense. max_rows: keep only the first rows of each
    file. split: "random" (seeded), "time" (by the card's time column) or "fixed" (the card's files).
    ratios: train/valid/test fractions (for "fixed" without a valid file, valid is carved from train).
    """

    min_count: int = 1
    numeric: str = "criteo_log"
    n_buckets: int = 10
    cross_fields: bool = False
    dense: bool = False
    max_rows: int | None = None
    split: str = "random"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)

    @classmethod
    def from_options(cls, options: dict[str, Any], *, where: str = "preprocessing options",
                     base: "PrepConfig | None" = None) -> "PrepConfig":
        """`base` updated with `options`, validated: unknown keys and bad values raise ConfigError."""
        allowed = [f.name for f in dc_fields(cls)]
        check_keys(options.keys(), allowed, where)
        cfg = replace(base or cls(), **{k: (tuple(v) if k == "ratios" else v) for k, v in options.items()})
        _check(isinstance(cfg.min_count, int) and cfg.min_count >= 1, where, "min_count must be an integer >= 1")
        _check(cfg.numeric in NUMERIC_BUCKETING, where, f"numeric must be one of {', '.join(NUMERIC_BUCKETING)}")
        _check(isinstance(cfg.n_buckets, int) and cfg.n_buckets >= 2, where, "n_buckets must be an integer >= 2")
        _check(isinstance(cfg.cross_fields, bool) and isinstance(cfg.dense, bool), where,
               "cross_fields and dense must be true or false")
        _check(cfg.max_rows is None or (isinstance(cfg.max_rows, int) and cfg.max_rows >= 1), where,
               "max_rows must be a positive integer")
        _check(cfg.split in SPLIT_METHODS, where, f"split must be one of {', '.join(SPLIT_METHODS)}")
        r = cfg.ratios
        _check(len(r) == 3 and all(isinstance(x, (int, float)) and x >= 0 for x in r) and r[0] > 0
               and math.isclose(sum(r), 1.0, abs_tol=1e-6), where,
               f"ratios must be three non-negative fractions summing to 1 (train > 0), got {list(r)}")
        return cfg


def _check(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: {message}")


# ---- the one frequency-table function (switch point to the Rust statistics engine) -------------------------
def value_counts(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """Distinct non-null values and their counts (any order).

    This is the only place that counts values: it uses the statistics engine (``leanrec.stats.value_counts``,
    Rust) when the native extension is importable, else pyarrow.compute.value_counts.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    native = _native_value_counts()
    if native is not None:
        vals, counts = native(values)
        return (vals if isinstance(vals, pa.Array) else pa.array(vals, type=values.type)), np.asarray(counts)
    vc = pc.value_counts(values)
    vals, counts = vc.field("values"), vc.field("counts").to_numpy()
    valid = pc.is_valid(vals).to_numpy(zero_copy_only=False)
    if not valid.all():
        keep = np.flatnonzero(valid)
        return vals.take(pa.array(keep)), counts[keep]
    return vals, counts


def _native_value_counts():
    """leanrec.stats.value_counts, or None when the native extension is not built (set
    LEANREC_DATA_NO_NATIVE=1 to force the pyarrow path)."""
    import os

    if os.environ.get("LEANREC_DATA_NO_NATIVE"):
        return None
    try:
        from leanrec.stats import value_counts as native
    except ImportError:
        return None
    return native


class ValueCounter:
    """Train-split frequency table accumulated over batches (merged with a pyarrow group-by as it grows)."""

    MERGE_EVERY = 16

    def __init__(self) -> None:
        self._parts: list[tuple[pa.Array, np.ndarray]] = []

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        self._parts.append(value_counts(values))
        if len(self._parts) >= self.MERGE_EVERY:
            self._merge()

    def _merge(self) -> None:
        if len(self._parts) <= 1:
            return
        t = pa.table({"v": pa.concat_arrays([v for v, _ in self._parts]),
                      "c": np.concatenate([c for _, c in self._parts]).astype(np.int64)})
        g = t.group_by("v").aggregate([("c", "sum")])
        self._parts = [(g["v"].combine_chunks(), g["c_sum"].to_numpy())]

    @property
    def nbytes(self) -> int:
        """Memory held by the counts so far (values and counts, not yet merged parts included)."""
        return sum(v.nbytes + c.nbytes for v, c in self._parts)

    def result(self) -> tuple[pa.Array, np.ndarray]:
        """Distinct values and their total counts (any order)."""
        if not self._parts:
            return pa.array([], pa.string()), np.zeros(0, dtype=np.int64)
        self._merge()
        return self._parts[0]


@dataclass
class Vocab:
    """A field's vocabulary: values (code = FIRST + position), their train counts, and distinct train values."""

    values: pa.Array
    counts: np.ndarray
    cardinality: int

    @property
    def size(self) -> int:
        """Number of codes, including the missing and OOV codes."""
        return FIRST + len(self.values)


def build_vocab(train_values: pa.Array | pa.ChunkedArray, min_count: int = 1) -> Vocab:
    """Vocabulary from training values: values seen >= min_count times, most frequent first, ties by value."""
    return vocab_from_counts(*value_counts(train_values), min_count)


def vocab_from_counts(vals: pa.Array, counts: np.ndarray, min_count: int = 1) -> Vocab:
    """Vocabulary from a frequency table (values, counts): kept when count >= min_count, most frequent first."""
    keep = np.flatnonzero(counts >= min_count)
    t = pa.table({"v": vals.take(pa.array(keep, type=pa.int64())), "c": counts[keep]})
    order = pc.sort_indices(t, sort_keys=[("c", "descending"), ("v", "ascending")])
    t = t.take(order)
    return Vocab(t["v"].combine_chunks(), t["c"].to_numpy(), cardinality=len(vals))


def encode(values: pa.Array | pa.ChunkedArray, vocab: Vocab) -> np.ndarray:
    """int32 codes: MISSING for null, OOV for values not in the vocabulary, else FIRST + vocab position."""
    idx = pc.index_in(values, value_set=vocab.values)
    codes = pc.fill_null(pc.add(pc.cast(idx, pa.int32()), FIRST), OOV)
    codes = pc.if_else(pc.is_null(values), MISSING, codes)
    return np.ascontiguousarray(codes.to_numpy(zero_copy_only=False), dtype=np.int32)


# ---- numeric fields ----------------------------------------------------------------------------------------
def numeric_tokens(x: np.ndarray, method: str, train_idx: np.ndarray, n_buckets: int) -> pa.Array:
    """Bucket float values (NaN = missing) into integer tokens (nulls for missing), ready for a vocabulary;
    quantile edges come from the `train_idx` rows."""
    edges = quantile_edges(x[train_idx], n_buckets) if method == "quantile" else None
    return bucket_tokens(x, method, edges)


def quantile_edges(train: np.ndarray, n_buckets: int) -> np.ndarray:
    """Inner edges of `n_buckets` equal-frequency buckets of the non-missing training values."""
    train = train[~np.isnan(train)]
    if len(train) == 0:
        return np.array([])
    return np.unique(np.quantile(train, np.linspace(0, 1, n_buckets + 1)[1:-1]))


def bucket_tokens(x: np.ndarray, method: str, edges: np.ndarray | None = None) -> pa.Array:
    """Integer tokens of float values (nulls for NaN): "criteo_log" per value, "quantile" against `edges`."""
    missing = np.isnan(x)
    if method == "criteo_log":
        with np.errstate(invalid="ignore", divide="ignore"):
            big = x > 2
            tok = np.where(big, np.floor(np.log(np.where(big, x, 3.0)) ** 2), np.floor(x))
        # keep floor(ln^2) buckets apart from small raw values: encode them as negative-offset tokens
        tok = np.where(big, -(tok + 1) - 2**40, tok)
    elif method == "quantile":
        tok = np.searchsorted(edges if edges is not None else np.array([]), x, side="right").astype(np.float64)
    else:
        raise ConfigError(f"unknown numeric bucketing {method!r}; use one of {', '.join(NUMERIC_BUCKETING)}")
    tok = np.where(missing, 0, tok).astype(np.int64)
    return pa.array(tok, mask=missing)


# ---- labels and splits -------------------------------------------------------------------------------------
def label_matrix(raw: RawTable, labels: tuple[LabelSpec, ...] | list[LabelSpec]) -> np.ndarray:
    """(N, L) float32 0/1 labels; missing or non-binary values raise DataError naming file, line and column."""
    out = np.empty((raw.table.num_rows, len(labels)), dtype=np.float32)
    for j, lab in enumerate(labels):
        if lab.source not in raw.table.column_names:
            raise DataError(f"missing label column {lab.source!r} (columns: {', '.join(raw.table.column_names)})",
                            path=str(raw.segments[0].path) if raw.segments else None, column=lab.source)
        v = to_float(raw, lab.source)
        nan = np.flatnonzero(np.isnan(v))
        if len(nan):
            raise raw.error(int(nan[0]), lab.source, "missing label")
        if lab.threshold is not None:
            out[:, j] = v >= lab.threshold
        else:
            bad = np.flatnonzero((v != 0) & (v != 1))
            if len(bad):
                raise raw.error(int(bad[0]), lab.source,
                                f"label must be 0 or 1 (or set `threshold` in the card), found {v[bad[0]]:g}")
            out[:, j] = v
    return out


TRAIN, VALID, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "valid", "test")


def unit_hash(rows: np.ndarray, seed: int) -> np.ndarray:
    """A seeded, uniform float in [0, 1) per (global) row index: splitmix64 of row + seed (vectorised)."""
    z = rows.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def split_codes(rows: np.ndarray, part: str, cfg: PrepConfig, seed: int, *, has_valid: bool = False
                ) -> np.ndarray:
    """int8 split (TRAIN/VALID/TEST) of global row indices `rows`, each decided alone (no shuffle in memory).

    random: a seeded hash of the row index against the cumulative `ratios` (split sizes are binomial around
    the ratios, not exact). fixed: the card's file set (`part`); without a valid file, train rows go to valid
    with probability ratios[1] / (ratios[0] + ratios[1]) by the same hash. The time split needs every
    timestamp first: see :func:`time_split`.
    """
    r_train, r_valid, _ = cfg.ratios
    if cfg.split == "fixed":
        if part == "all":
            raise ConfigError("split = \"fixed\" needs a card with files = { train = ..., test = ... }")
        if part != "train" or has_valid:
            return np.full(len(rows), SPLIT_NAMES.index(part), dtype=np.int8)
        return (unit_hash(rows, seed) < r_valid / (r_train + r_valid)).astype(np.int8)
    if cfg.split == "time":
        raise ConfigError("split = \"time\" is assigned by time_split (it needs every timestamp)")
    u = unit_hash(rows, seed)
    return ((u >= r_train).astype(np.int8) + (u >= r_train + r_valid).astype(np.int8))


def time_split(time: np.ndarray, cfg: PrepConfig) -> tuple[np.ndarray, np.ndarray]:
    """(int8 split per row, position of the row inside its split): rows in stable time order cut by `ratios`.

    Holds the time column and its order in memory (16 bytes per row).
    """
    n = len(time)
    order = np.argsort(time, kind="stable")
    n_train, n_valid = int(n * cfg.ratios[0]), int(n * cfg.ratios[1])
    codes = np.empty(n, dtype=np.int8)
    dest = np.empty(n, dtype=np.int64)
    for code, (a, b) in enumerate(((0, n_train), (n_train, n_train + n_valid), (n_train + n_valid, n))):
        codes[order[a:b]] = code
        dest[order[a:b]] = np.arange(b - a)
    return codes, dest


def split_indices(n: int, cfg: PrepConfig, seed: int, *, parts: dict[str, np.ndarray] | None = None,
                  time: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Row indices of train/valid/test, exactly as load_dataset assigns them (deterministic for a seed).

    Rows are in file order within each split (time order for the time split). `parts` maps the card's file
    sets to row indices (fixed split); `time` is the time column (time split).
    """
    if cfg.split == "time":
        if time is None:
            raise ConfigError("split = \"time\" needs a card naming a `time` column")
        codes, dest = time_split(np.asarray(time), cfg)
        out = {}
        for k, name in enumerate(SPLIT_NAMES):
            idx = np.flatnonzero(codes == k)
            out[name] = idx[np.argsort(dest[idx])]
        return out
    codes = np.empty(n, dtype=np.int8)
    if cfg.split == "fixed":
        if not parts or "train" not in parts or "test" not in parts:
            raise ConfigError("split = \"fixed\" needs a card with files = { train = ..., test = ... }")
        for part, idx in parts.items():
            codes[idx] = split_codes(idx, part, cfg, seed, has_valid="valid" in parts)
    else:
        codes = split_codes(np.arange(n), "all", cfg, seed)
    return {name: np.flatnonzero(codes == k) for k, name in enumerate(SPLIT_NAMES)}


def check_classes(sizes: np.ndarray, positives: np.ndarray, label_names: list[str], where: str) -> None:
    """Every split must contain both classes of every label (AUC is undefined otherwise).

    `sizes`: rows per split (3,); `positives`: positive count per split and label (3, L).
    """
    for k, name in enumerate(SPLIT_NAMES):
        if sizes[k] == 0:
            raise DataError(f"the {name} split is empty (too few rows for ratios?)", path=where)
        for j, lab in enumerate(label_names):
            if positives[k, j] in (0, sizes[k]):
                raise DataError(f"the {name} split ({int(sizes[k])} rows) has only one class "
                                f"({int(positives[k, j] > 0)}) for label {lab!r}", path=where, column=lab)


# ---- fields ------------------------------------------------------------------------------------------------
class FieldEncoder:
    """One field, encoded in two passes over batches: observe() counts train values, finish() builds the
    vocabulary, encode() turns any batch into codes. Quantile-bucketed numerics keep their train values
    (8 bytes per train row) until finish(), which needs them all for the bucket edges."""

    def __init__(self, spec: FieldSpec, cfg: PrepConfig):
        self.spec, self.cfg = spec, cfg
        self.method = (spec.bucketing or cfg.numeric) if spec.kind == "numeric" else None
        self.counter = ValueCounter()
        self.edges: np.ndarray | None = None
        self._train_x: list[np.ndarray] = []
        self.vocab: Vocab | None = None

    def _column(self, raw: RawTable) -> str:
        if self.spec.source not in raw.table.column_names:
            path, _ = raw.locate(0)
            raise DataError(f"missing column {self.spec.source!r} for field {self.spec.name!r} "
                            f"(columns: {', '.join(raw.table.column_names)})", path=path, column=self.spec.source)
        return self.spec.source

    def _tokens(self, raw: RawTable) -> tuple[pa.Array | pa.ChunkedArray, np.ndarray | None]:
        col = self._column(raw)
        if self.method is None:
            return raw.table[col], None
        x = to_float(raw, col)
        return bucket_tokens(x, self.method, self.edges), x

    def observe(self, raw: RawTable, train: np.ndarray) -> None:
        """Count the values of the batch rows where `train` (bool mask) is set."""
        if self.method == "quantile":
            self._train_x.append(to_float(raw, self._column(raw))[train])
            return
        values, _ = self._tokens(raw)
        self.counter.add(values.filter(pa.array(train)))

    def finish(self) -> Vocab:
        if self.method == "quantile":
            x = np.concatenate(self._train_x) if self._train_x else np.zeros(0)
            self._train_x = []
            self.edges = quantile_edges(x, self.cfg.n_buckets)
            self.counter.add(bucket_tokens(x, "quantile", self.edges))
        self.vocab = vocab_from_counts(*self.counter.result(), self.cfg.min_count)
        self.counter = ValueCounter()
        return self.vocab

    def encode(self, raw: RawTable) -> tuple[np.ndarray, np.ndarray | None]:
        """(int32 codes, float32 raw values with missing = 0 for numeric fields else None)."""
        assert self.vocab is not None, "finish() first"
        values, x = self._tokens(raw)
        dense = np.nan_to_num(x, nan=0.0).astype(np.float32) if x is not None else None
        return encode(values, self.vocab), dense


def cross_tokens(a: np.ndarray, b: np.ndarray, size_b: int) -> pa.Array:
    """Token of the cross of two code columns (null when either side is missing)."""
    a, b = a.astype(np.int64), b.astype(np.int64)
    return pa.array(a * size_b + b, mask=(a == MISSING) | (b == MISSING))


class GroupIndexer:
    """int64 group id per raw value in order of first appearance over all batches (-1 when missing), so the
    same value gets the same id in every split."""

    def __init__(self) -> None:
        self.known: pa.Array | None = None

    def ids(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        new = pc.unique(values).drop_null()
        if self.known is None:
            self.known = new
        else:
            new = new.filter(pc.invert(pc.is_in(new, value_set=self.known)))
            self.known = pa.concat_arrays([self.known, new])
        idx = pc.index_in(values, value_set=self.known)
        return pc.fill_null(pc.cast(idx, pa.int64()), -1).to_numpy(zero_copy_only=False)
