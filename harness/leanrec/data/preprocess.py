"""Preprocessing: splits, labels, numeric bucketing, vocabularies (train split only) and integer encoding.

Code convention for every field (documented in docs/data.md)::

    0 = missing (empty / null raw value)
    1 = out-of-vocabulary (not seen in train, or seen fewer than `min_count` times)
    2 ... vocab_size - 1 = vocabulary values, most frequent first (ties broken by value)

All steps are vectorised with pyarrow.compute / numpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields as dc_fields, replace
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
    vals, counts = value_counts(train_values)
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
    """Bucket float values (NaN = missing) into integer tokens (nulls for missing), ready for a vocabulary."""
    missing = np.isnan(x)
    if method == "criteo_log":
        with np.errstate(invalid="ignore", divide="ignore"):
            big = x > 2
            tok = np.where(big, np.floor(np.log(np.where(big, x, 3.0)) ** 2), np.floor(x))
        # keep floor(ln^2) buckets apart from small raw values: encode them as negative-offset tokens
        tok = np.where(big, -(tok + 1) - 2**40, tok)
    elif method == "quantile":
        train = x[train_idx]
        train = train[~np.isnan(train)]
        if len(train) == 0:
            edges = np.array([])
        else:
            edges = np.unique(np.quantile(train, np.linspace(0, 1, n_buckets + 1)[1:-1]))
        tok = np.searchsorted(edges, x, side="right").astype(np.float64)
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


def split_indices(n: int, cfg: PrepConfig, seed: int, *, parts: dict[str, np.ndarray] | None = None,
                  time: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Row indices of train/valid/test (deterministic for a seed).

    random: a seeded permutation cut by `ratios`. time: rows sorted by `time` (stable), cut by `ratios`.
    fixed: the card's parts; a missing valid part is carved at random from train (fraction
    ratios[1] / (ratios[0] + ratios[1])).
    """
    r_train, r_valid, _ = cfg.ratios
    rng = np.random.default_rng(seed)
    if cfg.split == "fixed":
        if not parts or "train" not in parts or "test" not in parts:
            raise ConfigError("split = \"fixed\" needs a card with files = { train = ..., test = ... }")
        train, test = parts["train"], parts["test"]
        if "valid" in parts:
            return {"train": train, "valid": parts["valid"], "test": test}
        perm = rng.permutation(train)
        n_valid = int(round(len(train) * r_valid / (r_train + r_valid)))
        return {"train": np.sort(perm[n_valid:]), "valid": np.sort(perm[:n_valid]), "test": test}
    if cfg.split == "time":
        if time is None:
            raise ConfigError("split = \"time\" needs a card naming a `time` column")
        order = np.argsort(time, kind="stable")
    else:
        order = rng.permutation(n)
    n_train, n_valid = int(n * r_train), int(n * r_valid)
    cut = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid], "test": order[n_train + n_valid:]}
    return {k: (v if cfg.split == "time" else np.sort(v)) for k, v in cut.items()}


def check_classes(y: np.ndarray, splits: dict[str, np.ndarray], label_names: list[str], where: str) -> None:
    """Every split must contain both classes of every label (AUC is undefined otherwise)."""
    for name, idx in splits.items():
        if len(idx) == 0:
            raise DataError(f"the {name} split is empty (too few rows for ratios?)", path=where)
        for j, lab in enumerate(label_names):
            s = y[idx, j].sum()
            if s == 0 or s == len(idx):
                raise DataError(f"the {name} split ({len(idx)} rows) has only one class "
                                f"({int(y[idx[0], j])}) for label {lab!r}", path=where, column=lab)


# ---- fields ------------------------------------------------------------------------------------------------
@dataclass
class EncodedFields:
    """Codes of all rows (N, F) int32, plus per-field vocabularies and optional dense numeric values."""

    names: list[str]
    kinds: list[str]
    codes: np.ndarray
    vocabs: list[Vocab]
    dense: np.ndarray | None = None
    dense_names: list[str] = field(default_factory=list)


def encode_fields(raw: RawTable, specs: list[FieldSpec], cfg: PrepConfig, train_idx: np.ndarray,
                  on_field=None) -> EncodedFields:
    """Encode every field (vocabulary from the `train_idx` rows only) and, optionally, all pairwise crosses."""
    n = raw.table.num_rows
    n_out = len(specs) + (len(specs) * (len(specs) - 1) // 2 if cfg.cross_fields else 0)
    codes = np.empty((n, n_out), dtype=np.int32, order="F")  # column-wise writes; made C-contiguous on save
    vocabs, names, kinds, dense_cols = [], [], [], []
    train_sel = pa.array(train_idx)
    for j, spec in enumerate(specs):
        if spec.source not in raw.table.column_names:
            raise DataError(f"missing column {spec.source!r} for field {spec.name!r} "
                            f"(columns: {', '.join(raw.table.column_names)})",
                            path=str(raw.segments[0].path) if raw.segments else None, column=spec.source)
        if spec.kind == "numeric":
            x = to_float(raw, spec.source)
            values = numeric_tokens(x, spec.bucketing or cfg.numeric, train_idx, cfg.n_buckets)
            if cfg.dense:
                dense_cols.append(np.nan_to_num(x, nan=0.0).astype(np.float32))
        else:
            values = raw.table[spec.source]
        vocab = build_vocab(values.take(train_sel), cfg.min_count)
        codes[:, j] = encode(values, vocab)
        vocabs.append(vocab)
        names.append(spec.name)
        kinds.append(spec.kind)
        if on_field:
            on_field(spec.name)
    if cfg.cross_fields:
        col = len(specs)
        for a in range(len(specs)):
            for b in range(a + 1, len(specs)):
                ca, cb = codes[:, a].astype(np.int64), codes[:, b].astype(np.int64)
                tok = pa.array(ca * vocabs[b].size + cb, mask=(ca == MISSING) | (cb == MISSING))
                vocab = build_vocab(tok.take(train_sel), cfg.min_count)
                codes[:, col] = encode(tok, vocab)
                vocabs.append(vocab)
                names.append(f"{specs[a].name}*{specs[b].name}")
                kinds.append("categorical")
                col += 1
    dense = np.ascontiguousarray(np.stack(dense_cols, axis=1)) if dense_cols else None
    return EncodedFields(names, kinds, codes, vocabs, dense,
                         [s.name for s in specs if s.kind == "numeric"] if dense is not None else [])


def group_ids(raw: RawTable, column: str) -> np.ndarray:
    """int64 id per row of the raw value of `column` (the same id across splits; -1 when missing)."""
    idx = pc.dictionary_encode(raw.table[column]).combine_chunks().indices
    return pc.fill_null(pc.cast(idx, pa.int64()), -1).to_numpy(zero_copy_only=False)
