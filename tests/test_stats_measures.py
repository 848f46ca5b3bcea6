"""leanrec.stats measures vs scikit-learn / numpy / exact references, plus hypothesis properties."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import leanrec.stats as S
from leanrec import _native

sk = pytest.importorskip("sklearn.metrics")


def close(a: float, b: float) -> bool:
    return abs(a - b) <= max(1e-12, 1e-9 * abs(b))


def exact_mi(x, y) -> float:
    """Exact-count reference: terms c*log1p((c*n - nx*ny)/(nx*ny)) with rational arguments, math.fsum."""
    n = len(x)
    joint, nx, ny = {}, {}, {}
    for a, b in zip(x.tolist(), y.tolist()):
        joint[(a, b)] = joint.get((a, b), 0) + 1
        nx[a] = nx.get(a, 0) + 1
        ny[b] = ny.get(b, 0) + 1
    terms = [c * math.log1p(float(Fraction(c * n - nx[a] * ny[b], nx[a] * ny[b]))) for (a, b), c in joint.items()]
    return math.fsum(terms) / n


@pytest.mark.parametrize("seed", range(5))
def test_mi_matches_sklearn_random(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, rng.integers(2, 200), 20_000)
    y = (rng.random(20_000) < 0.2 + 0.5 * (x % 3 == 0)).astype(np.int64)
    assert close(S.mutual_info(x, y), sk.mutual_info_score(x, y))
    assert close(S.mutual_info(x, y), exact_mi(x, y))
    # field_label_mi agrees with the 1-D function
    got = S.field_label_mi(np.stack([x, x // 2], 1).astype(np.int32), y.astype(np.float32))
    assert got.shape == (2, 1)
    assert close(got[0, 0], exact_mi(x, y)) and close(got[1, 0], exact_mi(x // 2, y))


def test_near_zero_mi_exact_reference():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 50, 200_000)
    y = rng.integers(0, 2, 200_000)  # independent: MI ~ 1e-4 and below
    ref = exact_mi(x, y)
    assert abs(S.mutual_info(x, y) - ref) <= 1e-15 + 1e-12 * ref
    assert abs(S.field_label_mi(x[:, None].astype(np.int32), y)[0, 0] - ref) <= 1e-15 + 1e-12 * ref


def test_cmi_chain_rule_and_pairwise():
    rng = np.random.default_rng(2)
    n = 30_000
    codes = rng.integers(0, [7, 11, 4], (n, 3)).astype(np.int32)
    labels = np.stack([(rng.random(n) < 0.1 + 0.1 * codes[:, 0] / 7), (rng.random(n) < 0.3 + 0.05 * codes[:, 2])], 1).astype(np.float32)
    cmi = S.pairwise_label_cmi(codes, labels)
    for i in range(2):
        li = labels[:, i].astype(int)
        for m in range(3):
            assert cmi[i, m, m] == 0
            for j in range(3):
                if m == j:
                    continue
                joint = codes[:, m] * 100 + codes[:, j]
                chain = sk.mutual_info_score(joint, li) - sk.mutual_info_score(codes[:, j], li)
                assert abs(cmi[i, m, j] - chain) < 1e-10
                assert abs(S.conditional_mutual_info(codes[:, m], li, codes[:, j]) - chain) < 1e-10
    sub = S.pairwise_label_cmi(codes, labels, pairs=[(0, 2)])
    assert np.isnan(sub[0, 0, 1]) and sub[0, 0, 2] == cmi[0, 0, 2] and sub[1, 2, 0] == cmi[1, 2, 0]
    pmi = S.pairwise_mi(codes)
    assert close(pmi[0, 1], sk.mutual_info_score(codes[:, 0], codes[:, 1]))
    assert close(pmi[1, 1], S.entropy(codes[:, 1]))
    # I(X_m; l_j | l_i) via chain rule
    lcmi = S.label_conditional_mi(codes, labels)
    l0, l1 = labels[:, 0].astype(int), labels[:, 1].astype(int)
    chain = sk.mutual_info_score(codes[:, 0] * 2 + l0, l1) - sk.mutual_info_score(l0, l1)
    assert abs(lcmi[0, 1, 0] - chain) < 1e-10 and lcmi[0, 0, 0] == 0


def test_entropy_chi2_value_counts():
    from scipy.stats import chi2_contingency
    from scipy.stats import entropy as sp_entropy

    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 9, 5000), rng.integers(0, 4, 5000)
    assert close(S.entropy(x), sp_entropy(np.bincount(x)))
    table = np.zeros((9, 4))
    np.add.at(table, (x, y), 1)
    assert close(S.chi2(x, y), chi2_contingency(table, correction=False)[0])
    vals, counts = S.value_counts(pa.array(["b", "a", "b", None, "c", "b"]))
    assert dict(zip(vals.to_pylist(), counts.tolist())) == {"b": 3, "a": 1, "c": 1}
    assert vals[0].as_py() == "b"  # by count descending (ties: by key hash, deterministic)
    big = rng.integers(-5, 10**12, 3000)
    v, c = S.value_counts(big)
    uv, uc = np.unique(big, return_counts=True)
    assert len(v) == len(uv) and dict(zip(v.tolist(), c.tolist())) == dict(zip(uv.tolist(), uc.tolist()))
    d = pa.array(["x", "y", "x"]).dictionary_encode()
    assert S.value_counts(d)[0].to_pylist() == ["x", "y"]


def test_clear_errors():
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        S.field_label_mi(np.zeros((3, 1), np.int32), np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="differ in length"):
        S.mutual_info(np.zeros(3, int), np.zeros(4, int))
    with pytest.raises(ValueError, match="nulls"):
        S.entropy(pa.array([1, None]))
    with pytest.raises(TypeError, match="integers"):
        S.field_label_mi(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(ValueError, match="corrupt|magic"):
        _native.FieldAccumulator.from_bytes(b"nope")


def test_hll_within_three_standard_errors():
    rng = np.random.default_rng(4)
    for p, n in [(10, 1000), (12, 50_000), (14, 200_000)]:
        keys = rng.integers(0, 2**62, n)
        acc = _native.FieldAccumulator(0, hll_precision=p, budget_bytes=1 << 30)
        acc.update(pa.array(keys))
        s = acc.stats()
        exact = len(np.unique(keys))
        assert s["distinct"] == exact
        assert abs(s["hll"] - exact) <= 3 * 1.04 / math.sqrt(2**p) * exact


def test_numeric_accumulator_vs_numpy():
    rng = np.random.default_rng(5)
    v = rng.normal(1e3, 2.0, 100_001)
    acc = _native.NumericAccumulator()
    for chunk in np.array_split(v, 7):
        acc.update(pa.array(chunk))
    s = acc.stats()
    assert s["count"] == v.size and math.isclose(s["variance"], v.var(), rel_tol=1e-10)
    assert s["min"] == v.min() and s["max"] == v.max() and math.isclose(s["mean"], v.mean(), rel_tol=1e-13)


def test_budget_fallback_is_flagged_and_bounded():
    keys = pa.array(np.arange(200_000, dtype=np.int64) * 1_000_003)
    acc = _native.FieldAccumulator(1, budget_bytes=1 << 20)
    acc.update(keys, np.zeros((200_000, 1), np.uint8) + (np.arange(200_000) % 2 == 0)[:, None].astype(np.uint8))
    s = acc.stats()
    assert acc.approx and s["approx"] and s["distinct"] is None
    assert acc.memory_bytes <= 1 << 20
    assert abs(s["hll"] - 200_000) < 3 * 1.04 / 128 * 200_000


codes_1d = st.lists(st.integers(0, 6), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_mi_properties(data):
    x = np.array(data.draw(codes_1d))
    y = np.array(data.draw(st.lists(st.integers(0, 4), min_size=len(x), max_size=len(x))))
    mi = S.mutual_info(x, y)
    assert mi >= 0
    assert mi == pytest.approx(S.mutual_info(y, x), abs=1e-12)
    assert mi <= min(S.entropy(x), S.entropy(y)) + 1e-12


@settings(max_examples=40, deadline=None)
@given(keys=st.lists(st.integers(-3, 40), min_size=2, max_size=400), cut=st.floats(0, 1),
       strings=st.booleans(), budget=st.sampled_from([1 << 12, 1 << 24]))
def test_merge_equals_one_pass(keys, cut, strings, budget):
    n = len(keys)
    labels = (np.array(keys) % 3 == 0).astype(np.uint8)[:, None]
    arr = pa.array([f"v{k}" for k in keys]) if strings else pa.array(keys)
    mk = lambda: _native.FieldAccumulator(1, budget_bytes=budget, keep_values=strings)  # noqa: E731
    one = mk()
    one.update(arr, labels)
    k = int(cut * n)
    a, b = mk(), mk()
    a.update(arr.slice(0, k), labels[:k])
    b.update(arr.slice(k), labels[k:])
    a.merge(_native.FieldAccumulator.from_bytes(b.to_bytes()))
    assert a.stats() == one.stats()
    assert a.top_k(5) == one.top_k(5)


def test_permutation_null_is_the_mean_measure_over_fixed_seed_label_permutations():
    """Oracle: numpy permutations with the same seed and scikit-learn's plug-in MI; a noise field's corrected MI
    is near 0 while its plug-in MI carries the (k-1)/(2N) bias."""
    from sklearn.metrics import mutual_info_score

    from leanrec import stats

    rng = np.random.default_rng(7)
    n = 3000
    noise = rng.integers(0, 400, n)
    signal = rng.integers(0, 3, n)
    y = ((signal == 0) ^ (rng.random(n) < 0.2)).astype(np.int64)
    codes = np.stack([noise, signal], axis=1).astype(np.int64)
    null = stats.permutation_null(stats.field_label_mi, codes, y[:, None], shuffles=3, seed=11)
    perm_rng = np.random.default_rng(11)
    perms = [perm_rng.permutation(n) for _ in range(3)]
    for f in range(2):
        want = np.mean([mutual_info_score(codes[:, f], y[p]) for p in perms])
        assert null[f, 0] == pytest.approx(want, rel=1e-9, abs=1e-12)
    raw = stats.field_label_mi(codes, y[:, None])[:, 0]
    assert raw[0] > 0.04                                  # ~ 399 / (2 * 3000) of pure bias
    assert abs(raw[0] - null[0, 0]) < 0.02 and raw[1] - null[1, 0] > 0.1
    with pytest.raises(ValueError, match="shuffles"):
        stats.permutation_null(stats.field_label_mi, codes, y, shuffles=0)
