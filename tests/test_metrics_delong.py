"""DeLong AUC intervals against a brute-force O(n^2) DeLong, a bootstrap and scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from leanrec.metrics import auc_interval, delong_paired_test, delong_variance


def _brute_delong(y, a, b=None):
    """DeLong et al. (1988) straight from the definition: psi over every positive/negative pair."""
    y = np.asarray(y).astype(bool)
    scores = [a] if b is None else [a, b]
    v10, v01, aucs = [], [], []
    for s in scores:
        pos, neg = np.asarray(s)[y], np.asarray(s)[~y]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        aucs.append(psi.mean())
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    m, n = y.sum(), (~y).sum()
    cov = np.cov(np.vstack(v10), ddof=1).reshape(len(scores), len(scores)) / m + \
        np.cov(np.vstack(v01), ddof=1).reshape(len(scores), len(scores)) / n
    return np.array(aucs), cov


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(4, 300), ties=st.booleans())
def test_fast_delong_equals_brute_force(seed, n, ties):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    y[2:4] = [0, 1]
    s = rng.normal(size=n) + y * rng.uniform(0, 2)
    if ties:
        s = np.round(s, 0)
    auc, var = delong_variance(y, s)
    aucs, cov = _brute_delong(y, s)
    assert auc == pytest.approx(aucs[0], abs=1e-12) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert var == pytest.approx(cov[0, 0], rel=1e-9, abs=1e-15)


def test_paired_test_equals_brute_force():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    a = rng.normal(size=400) + y
    b = a + rng.normal(scale=0.8, size=400)
    diff, p = delong_paired_test(y, a, b)
    aucs, cov = _brute_delong(y, a, b)
    from scipy.stats import norm

    se = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert diff == pytest.approx(aucs[0] - aucs[1], abs=1e-12)
    assert p == pytest.approx(2 * norm.sf(abs(aucs[0] - aucs[1]) / se), rel=1e-9)
    assert delong_paired_test(y, a, a) == (0.0, 1.0)


def test_delong_se_matches_a_bootstrap():
    rng = np.random.default_rng(7)
    n = 3000
    y = (rng.random(n) < 0.2).astype(int)
    s = rng.normal(size=n) + 0.9 * y
    ci = auc_interval(y, s)
    boots = []
    for _ in range(600):
        idx = rng.integers(0, n, n)
        if 0 < y[idx].sum() < n:
            boots.append(roc_auc_score(y[idx], s[idx]))
    assert ci["se"] == pytest.approx(np.std(boots, ddof=1), rel=0.12)
    assert ci["lo"] < ci["auc"] < ci["hi"] and ci["n_pos"] == y.sum()
    assert ci["hi"] - ci["lo"] == pytest.approx(2 * 1.959964 * ci["se"], rel=1e-5)
