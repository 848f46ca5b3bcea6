"""REACTION's Adaptive Feature Extraction (eq. 8) against a brute-force scikit-learn oracle."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from leanrec.testing import tiny_dataset
from leanrec_reaction.afe import AFEStatistics, greedy_select, keep_count, plot_afe


def _joint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) * (int(b.max()) + 1) + b.astype(np.int64)


def _cmi(x, y, z) -> float:
    """I(X; Y | Z) by the chain rule: I(X; (Y, Z)) - I(X; Z), each from sklearn (nats)."""
    return mutual_info_score(x, _joint(y, z)) - mutual_info_score(x, z)


def oracle_statistics(X: np.ndarray, Y: np.ndarray) -> AFEStatistics:
    F, L = X.shape[1], Y.shape[1]
    Y = Y.astype(np.int64)
    return AFEStatistics(
        mi=[[mutual_info_score(X[:, m], Y[:, i]) for i in range(L)] for m in range(F)],
        label_cmi=[[[_cmi(X[:, m], Y[:, j], Y[:, i]) for m in range(F)] for j in range(L)] for i in range(L)],
        pair_cmi=[[[_cmi(X[:, m], Y[:, i], X[:, j]) for j in range(F)] for m in range(F)] for i in range(L)])


def brute_force_J(X: np.ndarray, Y: np.ndarray, m: int, S: list[int]) -> tuple[float, float, float]:
    """PI, BI, CI of eq. 8 for candidate m given selected S, straight from the definition."""
    L = Y.shape[1]
    Y = Y.astype(np.int64)
    pi = sum(mutual_info_score(X[:, m], Y[:, i]) for i in range(L)) / L
    bi = sum(_cmi(X[:, m], Y[:, j], Y[:, i]) for i in range(L) for j in range(L) if j != i) / L
    ci = (sum(_cmi(X[:, m], Y[:, i], X[:, j]) for i in range(L) for j in S) / (L * len(S))) if S else 0.0
    return pi, bi, ci


@pytest.fixture(scope="module", params=[1, 2], ids=["one-label", "two-labels"])
def small(request):
    ds = tiny_dataset(n=1500, n_labels=request.param, seed=3)
    return ds, oracle_statistics(ds.train.X, ds.train.y)


def test_each_step_J_matches_brute_force(small):
    ds, st = small
    X, Y = ds.train.X, ds.train.y
    res = greedy_select(st, k=len(ds.fields))
    for step, m in enumerate(res.order):
        pi, bi, ci = brute_force_J(X, Y, m, res.order[:step])
        assert res.PI[step] == pytest.approx(pi, abs=1e-9)
        assert res.BI[step] == pytest.approx(bi, abs=1e-9)
        assert res.CI[step] == pytest.approx(ci, abs=1e-9)
        assert res.J[step] == pytest.approx(pi + bi + ci, abs=1e-9)
        # greedy: the chosen field maximises J over every remaining candidate
        others = [c for c in range(len(ds.fields)) if c not in res.order[:step + 1]]
        for c in others[:3]:
            assert sum(brute_force_J(X, Y, c, res.order[:step])) <= res.J[step] + 1e-12


def test_bi_is_zero_with_one_label_and_positive_with_two(small):
    ds, st = small
    res = greedy_select(st, k=3)
    if len(ds.labels) == 1:
        assert all(b == 0.0 for b in res.BI)
    else:
        # conversion depends on field 0 given the click: I(X_0; conv | click) > 0 carries BI
        bi = {m: b for m, b in zip(res.order, res.BI)}
        assert bi[0] > 0.01 and bi[0] == max(bi.values())


def test_informative_fields_first_and_interaction_partner_follows():
    for n_labels in (1, 2):
        ds = tiny_dataset(n=4000, n_labels=n_labels, seed=0)
        names = [f.name for f in ds.fields]
        res = greedy_select(oracle_statistics(ds.train.X, ds.train.y), k=5, field_names=names)
        order = [names[m] for m in res.order]
        gt = ds.ground_truth
        assert set(order[:3]) == set(gt["informative"])
        # A pure interaction (XOR) gives each field alone no information, so the first of the pair is
        # indistinguishable from noise under eq. 8; once it is in S, CI picks its partner next.
        first = min(order.index(f) for f in gt["interaction"])
        assert order[first + 1] in gt["interaction"]
        partner_step = first + 1
        assert res.CI[partner_step] > 2 * max(res.CI[s] for s in range(3, len(order)) if s != partner_step)


def test_stopping_rules_and_plot(small, tmp_path):
    ds, st = small
    F = len(ds.fields)
    assert keep_count(F, 0.5) == math.floor(0.5 * F + 0.5) and keep_count(F, 0.01) == 1
    res = greedy_select(st, k=4)
    assert res.selected == res.order[:4] and res.stop_reason == "k" and len(res.order) == F
    cut = greedy_select(st, k=F, min_gain=np.median(res.J) + 1e-12)
    assert cut.stop_reason == "min_gain" and 1 <= len(cut.selected) < F
    assert all(j >= cut.min_gain for j in cut.J[:len(cut.selected)])
    assert cut.J[len(cut.selected)] < cut.min_gain
    d = res.to_dict()
    assert [s["selected"] for s in d["steps"]].count(True) == 4
    png = plot_afe(d, tmp_path / "afe.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_statistics_engine_matches_oracle(small):
    stats = pytest.importorskip("leanrec.stats")  # the Rust engine; skipped until it is built
    from leanrec_reaction.afe import afe_statistics

    ds, oracle = small
    got = afe_statistics(ds.train.X, ds.train.y)
    np.testing.assert_allclose(got.mi, oracle.mi, atol=1e-9)
    np.testing.assert_allclose(got.label_cmi, oracle.label_cmi, atol=1e-9)
    np.testing.assert_allclose(got.pair_cmi, oracle.pair_cmi, atol=1e-9)
    assert stats is not None


def test_afe_on_synthetic_dataset_with_the_engine():
    pytest.importorskip("leanrec.stats")
    from leanrec.data import load_dataset
    from leanrec_reaction.afe import afe_select

    # Low cardinalities: the plug-in estimator's upward bias grows with a field's cardinality (see
    # docs/reaction.md), so with Criteo-like cardinalities noise fields can outrank weak informative ones.
    ds = load_dataset("synthetic", seed=0, overrides={"synthetic": {
        "n_rows": 12000, "n_labels": 2, "max_cardinality": 12, "n_fields": 12}})
    names = [f.name for f in ds.fields]
    res = afe_select(ds.train.X, ds.train.y, keep_ratio=0.75, field_names=names)
    order = [names[m] for m in res.order]
    gt = ds.ground_truth
    n_inf = len(gt["informative"])
    assert set(order[:n_inf]) == set(gt["informative"])
    signal = set(gt["informative"]) | set(gt["redundant"])
    assert set(order[:len(signal)]) == signal
    first = min(order.index(f) for f in gt["interaction"])
    assert order[first + 1] in gt["interaction"]                 # CI finds the partner of a pure interaction
    assert all(f in res.to_dict()["selected"] for f in signal)
    assert max(s["BI"] for s in res.to_dict()["steps"]) > 0       # two labels exercise BI


def test_estimator_option_reaches_the_engine():
    """AFE's first step is the field with the largest PI; with estimator='miller-madow' PI is the bias-corrected
    MI, which is lower than the plug-in value by about (|X|-1)/(2N) for a pure-noise field."""
    pytest.importorskip("leanrec._native")
    from leanrec import stats
    from leanrec_reaction.methods import AFEKeys, run_afe

    ds = tiny_dataset(4000, n_informative=2, n_noise=2, vocab=50, seed=5, interaction=False)
    X, y = ds.train.X, ds.train.y.astype(np.int32)
    for est in ("plugin", "miller-madow"):
        res = run_afe(ds, AFEKeys(keep_ratio=1.0, min_gain=-1e9, estimator=est))
        mi = stats.field_label_mi(X, y, estimator=est)[:, 0]
        assert res.order[0] == int(np.argmax(mi))
        assert res.PI[0] == pytest.approx(mi.max(), rel=1e-12)
    plug = stats.field_label_mi(X, y)[:, 0]
    mm = stats.field_label_mi(X, y, estimator="miller-madow")[:, 0]
    assert np.all(mm < plug)  # every field has 50 values: the correction lowers every MI


def test_lookahead_matches_brute_force_synergy_and_ranks_pure_interactions_above_noise():
    """LI = max over unselected partners j of [I(X_m; l | X_j) - I(X_m; l)]_+, from sklearn; with it a pure
    XOR pair (each field alone carries nothing) comes before every noise field, which eq. 8 cannot do."""
    ds = tiny_dataset(n=4000, n_labels=1, seed=0)
    X, Y = ds.train.X, ds.train.y.astype(np.int64)
    names = [f.name for f in ds.fields]
    st = oracle_statistics(ds.train.X, ds.train.y)
    res = greedy_select(st, k=len(names), field_names=names, lookahead=True)
    F = len(names)
    for step, m in enumerate(res.order):
        pi, bi, ci = brute_force_J(X, Y, m, res.order[:step])
        rest = [j for j in range(F) if j != m and j not in res.order[:step]]
        li = max([max(_cmi(X[:, m], Y[:, 0], X[:, j]) - pi, 0.0) for j in rest], default=0.0)
        assert res.LI[step] == pytest.approx(li, abs=1e-9)
        assert res.J[step] == pytest.approx(pi + bi + ci + li, abs=1e-9)
    order = [names[m] for m in res.order]
    gt = ds.ground_truth
    signal = set(gt["informative"]) | set(gt["interaction"])
    assert set(order[:len(signal)]) == signal
    off = greedy_select(st, k=3)                                 # off by default: the paper's J
    assert off.LI == [0.0] * F and off.to_dict()["lookahead"] is False
    assert res.to_dict()["lookahead"] is True


def test_lookahead_on_synthetic_dataset_puts_informative_and_interaction_fields_before_noise():
    pytest.importorskip("leanrec.stats")
    from leanrec.data import load_dataset
    from leanrec_reaction.afe import afe_select

    ds = load_dataset("synthetic", seed=0, overrides={"synthetic": {
        "n_rows": 12000, "n_labels": 2, "max_cardinality": 12, "n_fields": 12}})
    names = [f.name for f in ds.fields]
    gt = ds.ground_truth
    signal = set(gt["informative"]) | set(gt["interaction"]) | set(gt["redundant"])
    res = afe_select(ds.train.X, ds.train.y, keep_ratio=len(signal) / len(names), field_names=names,
                     lookahead=True)
    order = [names[m] for m in res.order]
    assert set(order[:len(signal)]) == signal
    assert set(res.to_dict()["selected"]) == signal


def test_shuffle_estimator_is_plugin_minus_the_label_permutation_null():
    """Oracle: sklearn plug-in MI on the labels and on the same fixed-seed permutations of them."""
    pytest.importorskip("leanrec.stats")
    from leanrec_reaction.afe import SHUFFLES, afe_statistics

    ds = tiny_dataset(n=1500, n_labels=2, seed=3)
    X, Y = ds.train.X, ds.train.y.astype(np.int64)
    rng = np.random.default_rng(0)
    perms = [rng.permutation(len(Y)) for _ in range(SHUFFLES)]
    got = afe_statistics(X, Y, "shuffle")
    for m in range(X.shape[1]):
        for i in range(Y.shape[1]):
            null = np.mean([mutual_info_score(X[:, m], Y[p, i]) for p in perms])
            assert got.mi[m, i] == pytest.approx(mutual_info_score(X[:, m], Y[:, i]) - null, abs=1e-9)
            j = 1 - i
            null = np.mean([_cmi(X[:, m], Y[p, i], X[:, j]) for p in perms])
            assert got.pair_cmi[i, m, j] == pytest.approx(_cmi(X[:, m], Y[:, i], X[:, j]) - null, abs=1e-9)
    with pytest.raises(ValueError, match="estimator"):
        afe_statistics(X, Y, "nope")


@pytest.mark.parametrize("estimator,lookahead,perfect", [("plugin", False, False), ("shuffle", True, True)])
def test_high_cardinality_noise_outranks_signal_under_plugin_but_not_shuffle_with_lookahead(estimator, lookahead,
                                                                                          perfect):
    """The default synthetic setting (cardinalities up to thousands): plug-in bias puts noise above signal;
    the permutation-null estimator with look-ahead ranks every planted field (informative, redundant and the
    pure interaction pair) above every noise field (benchmarks/afe_ranking.py prints the full table)."""
    pytest.importorskip("leanrec.stats")
    from leanrec.data import load_dataset
    from leanrec_reaction.afe import afe_select

    ds = load_dataset("synthetic", seed=0, progress=False)
    names, gt = [f.name for f in ds.fields], ds.ground_truth
    signal = set(gt["informative"]) | set(gt["redundant"]) | set(gt["interaction"])
    res = afe_select(ds.train.X, ds.train.y, 1.0, field_names=names, estimator=estimator, lookahead=lookahead)
    order = [names[m] for m in res.order]
    assert (set(order[:len(signal)]) == signal) is perfect
