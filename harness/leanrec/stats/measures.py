"""Information measures on in-memory arrays (nats), backed by leanrec._native.

Every information measure takes ``estimator``: ``"plugin"`` (default, maximum likelihood; equals
scikit-learn) or ``"miller-madow"`` (H + (m-1)/(2N) per joint entropy, m = non-empty cells; MI/CMI as the
matching entropy combinations, may be negative). ``independence_bias`` gives the expected plug-in MI of
independent variables, the offset that makes high-cardinality noise fields look informative.

1-D inputs may be numpy arrays, pyarrow arrays / chunked arrays, polars Series or anything with
``__arrow_c_array__``; integers are used as they are, strings/binary are hashed (xxh3, fixed seed).
Code matrices are 2-D int32/int64 numpy arrays (N rows x F fields); labels are (N, L) or (N,) 0/1.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from leanrec import _native

Estimator = Literal["plugin", "miller-madow"]


def as_arrow(x: Any) -> Any:
    """Return an object exposing ``__arrow_c_array__`` for a 1-D input (zero-copy where possible)."""
    if isinstance(x, pa.ChunkedArray):
        return x.combine_chunks()
    if hasattr(x, "__arrow_c_array__"):
        return x
    if hasattr(x, "to_arrow") and not isinstance(x, np.ndarray):  # polars Series
        return as_arrow(x.to_arrow())
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D array, got shape {arr.shape}")
    return pa.array(arr)


def labels_u8(labels: Any, n: int) -> np.ndarray:
    """Validate 0/1 labels of shape (N,) or (N, L) and return them as C-contiguous uint8 (N, L)."""
    lab = np.asarray(labels)
    if lab.ndim == 1:
        lab = lab[:, None]
    if lab.ndim != 2 or lab.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},) or ({n}, L); got {np.shape(labels)}")
    if lab.shape[1] > 8:
        raise ValueError(f"at most 8 labels are supported, got {lab.shape[1]}")
    bad = ~((lab == 0) | (lab == 1))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"labels must be 0 or 1; found {lab[r, c]!r} at row {r}, label {c}")
    return np.ascontiguousarray(lab, dtype=np.uint8)


def _codes(codes: Any, fortran: bool = False) -> np.ndarray:
    c = np.asarray(codes)
    if c.ndim != 2:
        raise ValueError(f"codes must be 2-D (rows, fields), got shape {c.shape}")
    if c.dtype not in (np.int32, np.int64):
        if not np.issubdtype(c.dtype, np.integer):
            raise TypeError(f"codes must be integers, got dtype {c.dtype}")
        c = c.astype(np.int64)
    if fortran and not c.flags.f_contiguous:
        c = np.asfortranarray(c)  # pair tables read two columns each: contiguous columns stream faster
    elif not (c.flags.c_contiguous or c.flags.f_contiguous):
        c = np.ascontiguousarray(c)
    return c


def entropy(x: Any, *, estimator: Estimator = "plugin") -> float:
    """Entropy H(X) in nats."""
    return _native.entropy(as_arrow(x), estimator)


def mutual_info(x: Any, y: Any, *, estimator: Estimator = "plugin") -> float:
    """Mutual information I(X; Y) in nats (plug-in equals sklearn's mutual_info_score)."""
    return _native.mutual_info(as_arrow(x), as_arrow(y), estimator)


def conditional_mutual_info(x: Any, y: Any, z: Any, *, estimator: Estimator = "plugin") -> float:
    """Conditional mutual information I(X; Y | Z) = H(X,Z) + H(Y,Z) - H(X,Y,Z) - H(Z) in nats."""
    return _native.conditional_mutual_info(as_arrow(x), as_arrow(y), as_arrow(z), estimator)


def independence_bias(kx: int, ky: int, n: int, kz: int = 1) -> float:
    """Expected plug-in I(X; Y | Z) when X and Y are independent given Z: kz (kx-1)(ky-1) / (2n) nats.

    The G-test view: 2n·I is asymptotically chi-square with kz (kx-1)(ky-1) degrees of freedom. Subtract
    it from a plug-in MI (or compare against it) to discount fields that look informative only because
    they have many categories.
    """
    return _native.independence_bias(kx, ky, n, kz)


def permutation_null(measure: Any, codes: Any, labels: Any, *, shuffles: int = 2, seed: int = 0,
                     **kwargs: Any) -> np.ndarray:
    """Mean of ``measure(codes, permuted_labels, **kwargs)`` over `shuffles` fixed-seed row permutations of
    the labels: the measure's value when the labels are independent of every field but keep their own joint
    distribution. Subtracting it from ``measure(codes, labels)`` removes the plug-in bias at the fields'
    actual cardinalities, including the sparse regime where Miller-Madow's first-order term is far too small.
    `measure` is any label measure of this module (field_label_mi, label_conditional_mi, pairwise_label_cmi).
    """
    if shuffles < 1:
        raise ValueError(f"shuffles must be >= 1, got {shuffles}")
    lab = np.asarray(labels)
    rng = np.random.default_rng(seed)
    null = [np.asarray(measure(codes, np.ascontiguousarray(lab[rng.permutation(len(lab))]), **kwargs))
            for _ in range(shuffles)]
    return np.mean(null, axis=0)


def chi2(x: Any, y: Any) -> float:
    """Pearson chi-square statistic of the X x Y contingency table (no continuity correction)."""
    return _native.chi2(as_arrow(x), as_arrow(y))


def value_counts(array: Any, *, threads: int | None = None) -> tuple[Any, np.ndarray]:
    """Frequency table of one column, sorted by count descending (ties: by key).

    Returns ``(values, counts)``: values as a numpy array for integer/float/bool columns, a pyarrow
    array of the original type for string/binary columns. Nulls are not included (their count is
    ``array.null_count``).
    """
    arr = as_arrow(array)
    values, counts, _nulls = _native.value_counts(arr, threads)
    if isinstance(values, list):
        typ = pa.array(arr).type if not isinstance(arr, pa.Array) else arr.type
        if pa.types.is_dictionary(typ):
            typ = typ.value_type
        if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
            return pa.array([v.decode("utf-8") for v in values], type=pa.string()), counts
        return pa.array(values, type=pa.binary()), counts
    typ = arr.type if isinstance(arr, pa.Array) else None
    if typ is not None and pa.types.is_signed_integer(typ):
        values = values.view(np.int64)
    elif typ is not None and pa.types.is_floating(typ):
        values = values.view(np.float64)
    elif typ is not None and pa.types.is_boolean(typ):
        values = values.astype(bool)
    return values, counts


def _field_stats(codes: Any, labels: Any, threads: int | None, estimator: Estimator) -> list[dict]:
    c = _codes(codes)
    lab = labels_u8(labels, c.shape[0]) if labels is not None else None
    return _native.matrix_field_stats(c, lab, threads, estimator=estimator)


def field_label_mi(codes: Any, labels: Any, *, threads: int | None = None,
                   estimator: Estimator = "plugin") -> np.ndarray:
    """I(X_f; l) for every field f and label l, shape (F, L), nats. One parallel pass over `codes`."""
    stats = _field_stats(codes, labels, threads, estimator)
    return np.array([s["mi"] for s in stats], dtype=np.float64).reshape(len(stats), -1)


def label_conditional_mi(codes: Any, labels: Any, *, threads: int | None = None,
                         estimator: Estimator = "plugin") -> np.ndarray:
    """[i, j, m] = I(X_m; l_j | l_i), shape (L, L, F) (diagonal i == j is 0). Same pass as field_label_mi."""
    stats = _field_stats(codes, labels, threads, estimator)
    n_lab = labels_u8(labels, np.asarray(codes).shape[0]).shape[1]
    out = np.zeros((n_lab, n_lab, len(stats)))
    for m, s in enumerate(stats):
        out[:, :, m] = np.asarray(s["label_cmi"]).reshape(n_lab, n_lab)
    return out


def _unordered(pairs: Iterable[tuple[int, int]] | None, n_fields: int) -> list[tuple[int, int]]:
    if pairs is None:
        return [(a, b) for a in range(n_fields) for b in range(a + 1, n_fields)]
    seen: dict[tuple[int, int], None] = {}
    for a, b in pairs:
        if not (0 <= a < n_fields and 0 <= b < n_fields):
            raise ValueError(f"pair ({a}, {b}) out of range for {n_fields} fields")
        if a != b:
            seen[(min(a, b), max(a, b))] = None
    return list(seen)


def _pair_stats(codes: np.ndarray, lab: np.ndarray | None, pairs: Sequence[tuple[int, int]],
                threads: int | None, budget_bytes: int, estimator: Estimator) -> list[dict]:
    return _native.matrix_pair_stats(codes, lab, list(pairs), threads, budget_bytes, estimator)


def pairwise_label_cmi(codes: Any, labels: Any, pairs: Iterable[tuple[int, int]] | None = None, *,
                       threads: int | None = None, budget_bytes: int = 256 << 20,
                       estimator: Estimator = "plugin") -> np.ndarray:
    """[i, m, j] = I(X_m; l_i | X_j), shape (L, F, F), nats; diagonal is 0.

    `pairs`: optional (m, j) list; one joint table per unordered pair yields both (m, j) and (j, m).
    Entries not requested are NaN. Tables above `budget_bytes` fall back to hashed bins (approximate).
    """
    c = _codes(codes, fortran=True)
    lab = labels_u8(labels, c.shape[0])
    n_f = c.shape[1]
    todo = _unordered(pairs, n_f)
    out = np.full((lab.shape[1], n_f, n_f), np.nan if pairs is not None else 0.0)
    for f in range(n_f):
        out[:, f, f] = 0.0
    for (a, b), s in zip(todo, _pair_stats(c, lab, todo, threads, budget_bytes, estimator)):
        out[:, a, b] = s["cmi_a_given_b"]
        out[:, b, a] = s["cmi_b_given_a"]
    return out


def pairwise_mi(codes: Any, pairs: Iterable[tuple[int, int]] | None = None, *,
                threads: int | None = None, budget_bytes: int = 256 << 20,
                estimator: Estimator = "plugin") -> np.ndarray:
    """I(X_i; X_j), shape (F, F), nats; the diagonal is H(X_i). Entries not requested are NaN."""
    c = _codes(codes, fortran=True)
    n_f = c.shape[1]
    todo = _unordered(pairs, n_f)
    out = np.full((n_f, n_f), np.nan if pairs is not None else 0.0)
    for f, s in enumerate(_native.matrix_field_stats(c, None, threads, estimator=estimator)):
        out[f, f] = s["entropy"]
    for (a, b), s in zip(todo, _pair_stats(c, None, todo, threads, budget_bytes, estimator)):
        out[a, b] = out[b, a] = s["mi_ab"]
    return out
