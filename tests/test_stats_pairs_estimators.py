"""Pair tables with nulls, and the Miller-Madow estimator against a numpy brute-force oracle."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import leanrec.stats as S
from leanrec import _native


def plugin_h(*cols: np.ndarray) -> tuple[float, int]:
    """Plug-in joint entropy (nats) of integer columns and the number of non-empty cells, by np.unique."""
    _, counts = np.unique(np.stack(cols, axis=1), axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum()), len(counts)


def h_est(estimator: str, *cols: np.ndarray) -> float:
    h, m = plugin_h(*cols)
    return h + (m - 1) / (2 * len(cols[0])) if estimator == "miller-madow" else h


def oracle_mi(x, y, estimator="plugin") -> float:
    return h_est(estimator, x) + h_est(estimator, y) - h_est(estimator, x, y)


def oracle_cmi(x, y, z, estimator="plugin") -> float:
    """I(X;Y|Z) = H(X,Z) + H(Y,Z) - H(X,Y,Z) - H(Z)."""
    return h_est(estimator, x, z) + h_est(estimator, y, z) - h_est(estimator, x, y, z) - h_est(estimator, z)


def test_pair_null_is_not_minus_one():
    """A null and the integer -1 are different categories of a pair table (they used to share a key)."""
    rng = np.random.default_rng(5)
    n = 4000
    a = rng.integers(-1, 3, n)  # -1 is a real value
    null_a = rng.random(n) < 0.2
    b = rng.integers(0, 4, n)
    null_b = rng.random(n) < 0.1
    lab = ((a + b + rng.integers(0, 3, n)) % 3 == 0).astype(np.uint8)
    arr_a = pa.array(a, mask=null_a)
    arr_b = pa.array(b, mask=null_b)
    # oracle: nulls as their own category (a code no value uses)
    ca = np.where(null_a, 99, a)
    cb = np.where(null_b, 99, b)
    acc = _native.PairAccumulator(1)
    acc.update(arr_a, arr_b, lab[:, None])
    s = acc.stats()
    assert s["mi_ab"] == pytest.approx(oracle_mi(ca, cb), rel=1e-9, abs=1e-12)
    assert s["cmi_a_given_b"][0] == pytest.approx(oracle_cmi(ca, lab, cb), rel=1e-9, abs=1e-12)
    assert s["cmi_b_given_a"][0] == pytest.approx(oracle_cmi(cb, lab, ca), rel=1e-9, abs=1e-12)
    # merging two halves and a bytes round trip keep nulls apart from -1
    x, y = _native.PairAccumulator(1), _native.PairAccumulator(1)
    x.update(arr_a[:1500], arr_b[:1500], lab[:1500, None])
    y.update(arr_a[1500:], arr_b[1500:], lab[1500:, None])
    x.merge(_native.PairAccumulator.from_bytes(y.to_bytes()))
    assert x.stats() == s
    # the same through the streaming engine's batch path
    acc2 = _native.PairAccumulator(1)
    _native.update_batch([], [], [(acc2, arr_a, arr_b)], lab[:, None], 1, 1)
    assert acc2.stats() == s


def _data(seed: int, n: int = 3000):
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.integers(0, 5, n), rng.zipf(1.6, n) % 200, rng.integers(0, 40, n)], 1).astype(np.int64)
    labels = np.stack([(rng.random(n) < 0.2 + 0.1 * (codes[:, 0] == 1)),
                       (rng.random(n) < 0.4 + 0.05 * (codes[:, 2] % 3))], 1).astype(np.uint8)
    return codes, labels


@pytest.mark.parametrize("estimator", ["plugin", "miller-madow"])
@pytest.mark.parametrize("seed", [0, 1])
def test_estimators_match_numpy_oracle(estimator: str, seed: int):
    codes, labels = _data(seed)
    tol = dict(rel=1e-9, abs=1e-12)
    x, y, z = codes[:, 0], codes[:, 1], codes[:, 2]
    assert S.entropy(y, estimator=estimator) == pytest.approx(h_est(estimator, y), **tol)
    assert S.mutual_info(x, y, estimator=estimator) == pytest.approx(oracle_mi(x, y, estimator), **tol)
    assert S.conditional_mutual_info(x, y, z, estimator=estimator) == pytest.approx(oracle_cmi(x, y, z, estimator), **tol)
    fl = S.field_label_mi(codes, labels, estimator=estimator)
    lc = S.label_conditional_mi(codes, labels, estimator=estimator)
    pc = S.pairwise_label_cmi(codes, labels, estimator=estimator)
    pm = S.pairwise_mi(codes, estimator=estimator)
    for f in range(3):
        assert pm[f, f] == pytest.approx(h_est(estimator, codes[:, f]), **tol)
        for i in range(2):
            assert fl[f, i] == pytest.approx(oracle_mi(codes[:, f], labels[:, i], estimator), **tol)
            j = 1 - i
            assert lc[i, j, f] == pytest.approx(oracle_cmi(codes[:, f], labels[:, j], labels[:, i], estimator), **tol)
            for g in range(3):
                if g != f:
                    assert pc[i, f, g] == pytest.approx(oracle_cmi(codes[:, f], labels[:, i], codes[:, g], estimator), **tol)
                    assert pm[f, g] == pytest.approx(oracle_mi(codes[:, f], codes[:, g], estimator), **tol)


def test_miller_madow_discounts_high_cardinality_noise():
    """A noise field with many categories has a large plug-in MI but a much smaller corrected one,
    close to zero; its plug-in value is close to the independence bias."""
    rng = np.random.default_rng(3)
    n = 20_000
    noise = rng.integers(0, 2000, n)
    label = (rng.random(n) < 0.3).astype(np.int64)
    plug = S.mutual_info(noise, label)
    mm = S.mutual_info(noise, label, estimator="miller-madow")
    bias = S.independence_bias(len(np.unique(noise)), 2, n)
    assert plug > 0.03 and abs(mm) < plug / 5
    assert plug == pytest.approx(bias, rel=0.2)
    assert S.independence_bias(3, 4, 100, kz=5) == pytest.approx(5 * 2 * 3 / 200)
    with pytest.raises(ValueError, match="estimator"):
        S.mutual_info(noise, label, estimator="jackknife")  # type: ignore[arg-type]


def test_accumulator_stats_estimator():
    codes, labels = _data(4)
    acc = _native.FieldAccumulator(2)
    acc.update(pa.array(codes[:, 1]), labels)
    s = acc.stats(estimator="miller-madow")
    assert s["entropy"] == pytest.approx(h_est("miller-madow", codes[:, 1]), rel=1e-9)
    assert s["mi"][1] == pytest.approx(oracle_mi(codes[:, 1], labels[:, 1], "miller-madow"), rel=1e-9, abs=1e-12)
    assert acc.stats()["mi"][1] == pytest.approx(oracle_mi(codes[:, 1], labels[:, 1]), rel=1e-9, abs=1e-12)
