"""leanrec claims: the verdict rule on synthetic records (checked against scipy's paired t-test), the registry's
method specs, and that the committed results/CLAIMS.md is what the committed records give."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from leanrec import claims as C
from leanrec.claims_registry import CLAIMS, CURVES, HEATMAPS
from leanrec.errors import LeanrecError
from leanrec.records import write_record

ROOT = Path(__file__).resolve().parents[1]


def record(variant: str, seed: int, auc: float, *, dataset: str = "criteo", protocol: int = 2,
           params: int = 1000, time: float = 1.0, extra: dict | None = None, status: str = "ok") -> dict:
    """A minimal run record with what the leaderboard and the claims read."""
    return {
        "schema_version": 2, "dataset": dataset, "variant": variant, "method": variant.split("[")[0], "seed": seed,
        "status": status, "protocol": protocol, "family": "test", "is_baseline": False, "config": {},
        "total_time": time, "extra": extra or {}, "selection": None, "training": {},
        "metrics": {"auc": auc, "logloss": 1 - auc, "auc_se": 0.01, "auc_ci95": [auc - 0.02, auc + 0.02],
                    "params": {"total": params, "embedding": params // 2, "backbone": params - params // 2},
                    "flops_per_sample": 10.0, "latency_s_per_sample": {"batch_1": 1e-4, "batch_4096": 1e-6}},
    }


def pair(a: list[float], b: list[float], **kw) -> list[dict]:
    return [record("a", s, x, **kw) for s, x in enumerate(a)] + [record("b", s, y, **kw) for s, y in enumerate(b)]


def measure(records: list[dict], op: str = ">", margin: float = 0.0, metric: str = "auc",
            dataset: str = "criteo", b_metric: str | None = None) -> C.Measured:
    check = C.Check("a", op, "b", (dataset,), metric=metric, b_metric=b_metric, margin=margin)
    claim = C.Claim("X1", "P", "Table 1", "a beats b.", "-", (check,))
    ((_, _, _, (m,)),) = C.measure_all([claim], records, variant=lambda s: s)
    return m


BASE = [0.70, 0.72, 0.69, 0.71, 0.73]


def test_clear_gain_is_reproduced_and_statistics_match_scipy():
    gain = [0.010, 0.012, 0.009, 0.011, 0.013]
    m = measure(pair([x + g for x, g in zip(BASE, gain)], BASE))
    ref = sps.ttest_rel([x + g for x, g in zip(BASE, gain)], BASE)
    assert m.verdict == C.REPRODUCED and m.seeds == [0, 1, 2, 3, 4] and m.protocol == 2
    assert m.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert m.delta == pytest.approx(np.mean(gain), abs=1e-12)
    lo, hi = ref.confidence_interval(0.95)
    assert m.ci == pytest.approx((lo, hi), abs=1e-12)
    assert m.a.auc_ci95 == pytest.approx((np.mean(BASE) + 0.011 - 0.02, np.mean(BASE) + 0.011 + 0.02))


def test_opposite_direction_is_contradicted_noise_is_inconclusive():
    assert measure(pair([x - 0.01 - 0.001 * i for i, x in enumerate(BASE)], BASE)).verdict == C.CONTRADICTED
    noise = [0.004, -0.003, 0.002, -0.004, 0.001]
    m = measure(pair([x + n for x, n in zip(BASE, noise)], BASE))
    assert m.verdict == C.INCONCLUSIVE and m.reason == "within noise" and m.p > 0.05
    # "<" flips which sign reproduces
    assert measure(pair([x - 0.01 - 0.001 * i for i, x in enumerate(BASE)], BASE), op="<").verdict == C.REPRODUCED


def test_too_few_shared_seeds_is_inconclusive_even_when_significant():
    recs = [record("a", s, 0.8 + 0.001 * s) for s in range(2)] + [record("b", s, 0.7) for s in range(5)]
    m = measure(recs)
    assert m.verdict == C.INCONCLUSIVE and m.seeds == [0, 1] and "fewer than 3" in m.reason
    # failed runs do not count as seeds
    recs = pair([0.8, 0.81, 0.82], [0.7, 0.7, 0.71]) + [record("a", 3, 0.9, status="failed"), record("b", 3, 0.7)]
    assert measure(recs).seeds == [0, 1, 2]


def test_missing_side_is_not_run_yet():
    m = measure([record("a", s, 0.7) for s in range(5)])
    assert m.verdict == C.NOT_RUN and "`b`" in m.reason and m.seeds == []


def test_current_protocol_preferred_older_used_only_when_both_sides_have_it():
    p1 = pair([x - 0.05 for x in BASE], BASE, protocol=1)            # protocol 1 says a < b
    p2 = pair([x + 0.01 + 0.001 * i for i, x in enumerate(BASE)], BASE)  # protocol 2 says a > b
    m = measure(p1 + p2)
    assert m.protocol == 2 and m.verdict == C.REPRODUCED
    # b only has protocol-1 records: fall back to protocol 1 for both sides
    m = measure(p1 + [r for r in p2 if r["variant"] == "a"])
    assert m.protocol == 1 and m.verdict == C.CONTRADICTED
    # no protocol in common: nothing comparable
    m = measure([r for r in p1 if r["variant"] == "a"] + [r for r in p2 if r["variant"] == "b"])
    assert m.verdict == C.NOT_RUN and "different protocols" in m.reason


def test_non_inferiority_and_equivalence_margins():
    tiny = [0.0002, -0.0001, 0.0001, 0.0, 0.0001]
    same = pair([x + t for x, t in zip(BASE, tiny)], BASE)
    assert measure(same, ">=", 0.001).verdict == C.REPRODUCED
    assert measure(same, "==", 0.001).verdict == C.REPRODUCED
    worse = pair([x - 0.01 - 0.0002 * i for i, x in enumerate(BASE)], BASE)
    assert measure(worse, ">=", 0.001).verdict == C.CONTRADICTED
    assert measure(worse, "<=", 0.001).verdict == C.REPRODUCED      # A ≤ B + m holds when A is lower
    assert measure(worse, "==", 0.001).verdict == C.CONTRADICTED
    wide = pair([x + n for x, n in zip(BASE, [0.01, -0.012, 0.008, -0.009, 0.004])], BASE)
    for op in (">=", "=="):
        assert measure(wide, op, 0.001).verdict == C.INCONCLUSIVE


def test_other_metrics_and_two_metrics_of_one_variant():
    recs = [record("a", s, 0.7, params=500 + s) for s in range(4)] + [record("b", s, 0.7, params=900) for s in range(4)]
    m = measure(recs, "<", metric="params")
    assert m.verdict == C.REPRODUCED and m.delta == pytest.approx(np.mean([500 + s - 900 for s in range(4)]))
    # constant differences: t undefined, paired_p_value reports 0 -> significant
    recs = [record("a", s, 0.7, params=500) for s in range(4)] + [record("b", s, 0.7, params=900) for s in range(4)]
    assert measure(recs, "<", metric="params").verdict == C.REPRODUCED
    # a record without the metric contributes no seed
    recs = [record("a", s, 0.7, extra={"PT": 1.0}) for s in range(3)] + [record("a", 3, 0.7)]
    assert C.Records(recs).side("criteo", 2, "a", "PT").values == {0: 1.0, 1: 1.0, 2: 1.0}
    # pretraining time against continued-training time of the same runs
    recs = [record("a", s, 0.7, extra={"PT": 10.0 + s, "CT": 2.0}) for s in range(4)]
    recs += [record("b", s, 0.7) for s in range(4)]
    check = C.Check("a", "<", "a", ("criteo",), metric="PT", b_metric="CT")
    claim = C.Claim("X", "P", "Fig. 2a", "PT below CT.", "-", (check,))
    ((_, v, _, (m,)),) = C.measure_all([claim], recs, variant=lambda s: s)
    assert m.verdict == C.CONTRADICTED and v == C.CONTRADICTED and m.delta == pytest.approx(9.5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.5, 0.9), st.floats(-0.03, 0.03)), min_size=3, max_size=8))
def test_verdict_of_strict_claims_agrees_with_scipy(rows):
    a = [x + d for x, d in rows]
    b = [x for x, _ in rows]
    m = measure(pair(a, b))
    diff = np.subtract(a, b)
    if np.allclose(diff, diff[0], rtol=0, atol=1e-15):
        return  # t undefined; paired_p_value's convention is tested above
    ref = sps.ttest_rel(a, b)
    expected = C.INCONCLUSIVE if not ref.pvalue < 0.05 else (C.REPRODUCED if diff.mean() > 0 else C.CONTRADICTED)
    assert m.verdict == expected
    lo, hi = ref.confidence_interval(0.95)
    assert m.ci == pytest.approx((lo, hi), abs=1e-9)


def test_claim_verdict_combines_checks():
    claim = C.Claim("X", "P", "T", "t.", "-", (C.Check("a", ">", "b", ("criteo",)),))

    def ms(*verdicts):
        return [C.Measured(claim, claim.checks[0], "criteo", "a", "b", v) for v in verdicts]

    assert C.claim_verdict(claim, ms(C.REPRODUCED, C.REPRODUCED, C.NOT_RUN))[0] == C.REPRODUCED
    assert C.claim_verdict(claim, ms(C.REPRODUCED, C.INCONCLUSIVE))[0] == C.INCONCLUSIVE
    assert C.claim_verdict(claim, ms(C.REPRODUCED, C.CONTRADICTED))[0] == C.INCONCLUSIVE
    assert C.claim_verdict(claim, ms(C.CONTRADICTED, C.INCONCLUSIVE))[0] == C.CONTRADICTED
    assert C.claim_verdict(claim, ms(C.NOT_RUN, C.NOT_RUN))[0] == C.NOT_RUN
    none = C.Claim("Y", "P", "T", "t.", "-", untestable="no data")
    assert C.claim_verdict(none, []) == (C.NOT_TESTABLE, "no data")
    with pytest.raises(ValueError):
        C.Claim("Z", "P", "T", "t.", "-")          # neither checks nor a reason
    with pytest.raises(ValueError):
        C.Check("a", ">=", "b", ("criteo",))       # a margin claim without a margin


def test_a_side_against_the_papers_number_is_a_one_sample_test():
    """B may be the paper's own figure: Δ = A − c per seed, p from scipy's one-sample t-test, the interval
    its t interval, the verdict by the same rules; only A's records are needed (and asked for)."""
    share = [0.90, 0.93, 0.91, 0.92, 0.94]
    recs = [record("a", s, 0.7, extra={"dense_weights": {"near_zero_share": x}}) for s, x in enumerate(share)]
    claim = C.Claim("X2", "P", "Fig. 1", "most weights are near zero.", "-",
                    (C.Check("a", ">=", 0.92, ("criteo",), metric="near_zero_share", margin=0.05),
                     C.Check("a", ">", 0.95, ("criteo",), metric="near_zero_share"),
                     C.Check("a", "==", 0.92, ("avazu",), metric="near_zero_share", margin=0.01)))
    ((_, _, _, (ge, gt, missing)),) = C.measure_all([claim], recs, variant=lambda s: s)
    ref = sps.ttest_1samp(np.subtract(share, 0.92), 0.0)
    assert ge.p == pytest.approx(ref.pvalue, rel=1e-9) and ge.delta == pytest.approx(np.mean(share) - 0.92)
    assert ge.ci == pytest.approx(tuple(ref.confidence_interval(0.95)), abs=1e-12)
    assert ge.verdict == C.REPRODUCED and ge.b_variant == "0.92" and ge.seeds == [0, 1, 2, 3, 4]
    assert gt.verdict == C.CONTRADICTED                     # clearly below 0.95
    assert missing.verdict == C.NOT_RUN and missing.missing == ["a"] and "-m a " in missing.command + " "
    assert C.relation(ge.check, "a", ge.b_variant).startswith("`a` ≥ 0.92 − 0.05")
    with pytest.raises(ValueError):
        C.Check("a", ">", 0.9, ("criteo",), b_metric="auc")   # a number has no metric


def test_a_pair_metric_compares_each_run_with_its_reference_run_of_the_same_seed():
    """gate_rank_tau: per seed, Kendall's tau-b (scipy) of A's and ref's log α over the fields both have;
    seeds where either run is missing are left out; the value is then tested against the number B."""
    rng = np.random.default_rng(0)
    fields = [f"f{i}" for i in range(8)]
    recs, taus = [], []
    for seed in range(5):
        base = rng.normal(size=8)
        near = base + rng.normal(scale=0.3, size=8)
        recs += [record("ref", seed, 0.7, extra={"log_alpha": dict(zip(fields, base))}),
                 record("a", seed, 0.7, extra={"log_alpha": dict(zip(fields, near))})]
        taus.append(sps.kendalltau(base, near).statistic)
    recs.append(record("a", 5, 0.7, extra={"log_alpha": dict(zip(fields, rng.normal(size=8)))}))   # no ref run
    check = C.Check("a", ">", 0.0, ("criteo",), metric="gate_rank_tau", ref="ref")
    claim = C.Claim("X3", "P", "Fig. 3", "rankings agree.", "-", (check,))
    ((_, _, _, (m,)),) = C.measure_all([claim], recs, variant=lambda s: s)
    assert m.seeds == [0, 1, 2, 3, 4] and m.ref_variant == "ref"
    assert [m.a.values[s] for s in m.seeds] == pytest.approx(taus)
    assert m.p == pytest.approx(sps.ttest_1samp(taus, 0.0).pvalue) and m.verdict == C.REPRODUCED
    assert C.relation(check, "a", "0", "ref").startswith("gate_rank_tau(`a`, `ref`) > 0")
    assert check.specs == ("a", "ref")
    with pytest.raises(ValueError):
        C.Check("a", ">", "b", ("criteo",), metric="gate_rank_tau", ref="ref")   # B must be a number


def test_the_papers_delta_is_placed_against_the_measured_interval():
    """'in CI' when the paper's Δ lies inside the paired 95% interval, else above / below it; the summary counts
    the checks that rule the paper's Δ out."""
    gain = [0.010, 0.012, 0.009, 0.011, 0.013]   # mean 0.011, CI about [0.0090, 0.0130]
    recs = pair([x + g for x, g in zip(BASE, gain)], BASE)
    check = C.Check("a", ">", "b", ("criteo", "avazu"), paper={"criteo": 0.011, "avazu": 0.030})
    recs += [dict(r, dataset="avazu") for r in recs]
    claim = C.Claim("R99", "REACTION", "Table 1", "a beats b.", "-", (check,))
    results = C.measure_all([claim], recs, variant=lambda s: s)
    (crit, ava) = results[0][3]
    assert C.paper_delta_position(0.011, crit.ci) == "in CI" and C.paper_delta_position(0.030, ava.ci) == "above CI"
    assert C.paper_delta_position(-0.1, crit.ci) == "below CI"
    text = C.render(results, {})
    assert "+0.0110 (in CI)" in text and "+0.0300 (above CI)" in text
    assert "| 1 of 2 checks |" in text


def test_a_gain_over_its_control_is_compared_with_another_gain_over_its_own():
    """auc_gain with ref and b_ref: per seed (A − ref) − (B − b_ref), tested with scipy's paired t-test."""
    rng = np.random.default_rng(1)
    vals = {v: BASE + rng.normal(scale=0.002, size=5) + shift
            for v, shift in (("big", 0.03), ("big_ctl", 0.0), ("small", 0.01), ("small_ctl", 0.0))}
    recs = [record(v, s, float(x)) for v, xs in vals.items() for s, x in enumerate(xs)]
    check = C.Check("big", ">", "small", ("criteo",), metric="auc_gain", ref="big_ctl", b_ref="small_ctl")
    claim = C.Claim("X4", "P", "T", "gains grow.", "-", (check,))
    ((_, _, _, (m,)),) = C.measure_all([claim], recs, variant=lambda s: s)
    ga, gb = vals["big"] - vals["big_ctl"], vals["small"] - vals["small_ctl"]
    assert [m.a.values[s] for s in m.seeds] == pytest.approx(list(ga))
    assert m.p == pytest.approx(sps.ttest_rel(ga, gb).pvalue) and m.verdict == C.REPRODUCED
    assert check.specs == ("big", "big_ctl", "small", "small_ctl")
    assert C.relation(check, "big", "small", "big_ctl", "small_ctl") == (
        "auc_gain(`big`, `big_ctl`) > auc_gain(`small`, `small_ctl`) (test AUC gain over the reference run of the "
        "same seed)")
    with pytest.raises(ValueError):
        C.Check("big", ">", "small", ("criteo",), metric="auc_gain", ref="big_ctl")   # B needs its own b_ref


def test_constant_differences_follow_the_paired_tests_convention_and_place_no_paper_delta():
    """A check against a number whose A does not vary (a deterministic metric): p is 0 (Δ ≠ 0) or 1 (Δ = 0),
    as for paired sides, so the verdict follows the sign; its point interval places no paper Δ, and one seed
    does not either -- neither counts in the summary's 'ruled out'."""
    recs = [record("a", s, 0.7, extra={"dense_weights": {"near_zero_share": 0.9}}) for s in range(5)]
    claim = C.Claim("R98", "REACTION", "T", "x.", "-",
                    (C.Check("a", ">", 0.5, ("criteo",), metric="near_zero_share", paper={"criteo": 0.1}),
                     C.Check("a", ">", 0.9, ("criteo",), metric="near_zero_share"),
                     C.Check("a", ">", "b", ("avazu",), paper={"avazu": 0.5})))
    recs += [record("a", 0, 0.8, dataset="avazu"), record("b", 0, 0.7, dataset="avazu")]
    results = C.measure_all([claim], recs, variant=lambda s: s)
    differs, equal, one_seed = results[0][3]
    assert differs.p == 0.0 and differs.verdict == C.REPRODUCED and differs.ci == (0.4, 0.4)
    assert equal.p == 1.0 and equal.verdict == C.INCONCLUSIVE
    assert C.differences_p_value([0.4, 0.4, 0.4]) == 0.0 and math.isnan(C.differences_p_value([0.4]))
    assert not C.can_place_paper_delta(differs) and not C.can_place_paper_delta(one_seed)
    text = C.render(results, {})
    assert "| 0 of 0 checks |" in text and "(above CI)" not in text and "(below CI)" not in text


def test_a_search_that_did_not_choose_reports_no_fields():
    """A near-uniform search (extra.search.near_uniform) kept fields it did not choose: the `fields` metric is
    None for it, as the leaderboard shows no fields/dims for it."""
    chose = record("a", 0, 0.7, extra={"search": {"near_uniform": False}})
    chose["selection"] = {"fields": ["f1", "f2"]}
    did_not = dict(chose, extra={"search": {"near_uniform": True}})
    assert C.metric_value("fields", chose) == 2.0 and C.metric_value("fields", did_not) is None


def test_metrics_of_records_that_lack_them_are_none():
    bare = record("a", 0, 0.7)
    for metric in ("auc_retained", "near_zero_share", "top_power_share", "worst_tower_auc", "PT", "sparsity"):
        assert C.metric_value(metric, bare) is None, metric
    zero = record("a", 0, 0.0)
    zero["metrics"]["companions"] = {"unpruned": {"auc": 0.0}}
    assert C.metric_value("auc_retained", zero) is None                # 0 / 0
    assert C.pair_metric_value("gate_rank_tau", bare, bare) is None    # no log alpha
    assert C.pair_metric_value("auc_gain", bare, record("b", 0, 0.6)) == pytest.approx(0.1)


@pytest.mark.parametrize("moved, verdict", [(0.3, C.INCONCLUSIVE), (1.5, C.CONTRADICTED), (None, C.INCONCLUSIVE)])
def test_a_check_whose_runs_miss_its_precondition_tests_nothing(moved, verdict):
    """S16-like: weights that training barely moved describe the initialiser; the clear verdict the numbers
    would give stands only when A's runs meet the check's condition (mean over its seeds), not when it is
    missing."""
    dense = {"near_zero_share": 0.02} if moved is None else {"near_zero_share": 0.02, "relative_change": moved}
    recs = [record("a", s, 0.7, extra={"dense_weights": {**dense, "near_zero_share": 0.02 + 0.001 * s}})
            for s in range(5)]
    check = C.Check("a", ">=", 0.92, ("criteo",), metric="near_zero_share", margin=0.02,
                    requires=("relative_change", ">=", 1.0))
    ((_, _, _, (m,)),) = C.measure_all([C.Claim("X5", "P", "T", "x.", "-", (check,))], recs, variant=lambda s: s)
    assert m.verdict == verdict
    if verdict == C.INCONCLUSIVE:
        assert m.reason.startswith("would be contradicted, but cannot test the claim here") and "needs >= 1" in m.reason
    with pytest.raises(ValueError):
        C.Check("a", ">", "b", ("criteo",), requires=("no_such_metric", ">=", 1.0))


def test_registry_is_well_formed_and_every_spec_is_a_runnable_variant():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    assert {c.paper for c in CLAIMS} == {"REACTION", "Light-FMP", "SSR", "i-Razor"}
    specs = {s for c in CLAIMS for k in c.checks for s in k.specs}
    for c in CLAIMS:
        for k in c.checks:
            assert set(k.datasets) <= set(C.DATASETS), (c.id, k.datasets)
            assert set(k.paper) <= set(k.datasets), (c.id, k.paper)
    specs |= {s for curve in CURVES for s in curve.specs()}
    for curve in CURVES:
        assert curve.claim in ids and curve.dataset in C.DATASETS, (curve.claim, curve.dataset)
    assert len({C.curve_file(c) for c in CURVES}) == len(CURVES)   # one file each
    specs |= {h.spec for h in HEATMAPS}
    assert all(h.claim in ids and h.dataset in C.DATASETS for h in HEATMAPS)
    assert len({C.heatmap_file(h) for h in HEATMAPS}) == len(HEATMAPS)
    for s in sorted(specs):
        C.canonical_variant(s)   # raises on an unknown method or config key / bad value


def test_cli_writes_claims_and_plots(tmp_path):
    from typer.testing import CliRunner

    from leanrec.cli import app

    for r in pair([x + 0.01 + 0.001 * i for i, x in enumerate(BASE)], BASE):
        r["variant"] = r["method"] = {"a": "reaction-dtf", "b": "reaction-baseline"}[r["variant"]]
        write_record(tmp_path / "runs" / "criteo" / f"{r['variant']}__seed{r['seed']}.json", r)
    out = tmp_path / "CLAIMS.md"
    res = CliRunner().invoke(app, ["claims", "--results-dir", str(tmp_path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "| [REACTION](#reaction) |" in res.output and res.output.rstrip().endswith("claims")   # the summary
    text = out.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("| `criteo` | `reaction-dtf` > `reaction-baseline`"))
    assert "**reproduced**" in line and "| 5 |" in line and "| 2 |" in line
    assert (tmp_path / "claims" / "forest_reaction.png").read_bytes()[:4] == b"\x89PNG"
    assert "not testable here" in text and "not run yet" in text
    missing = text.split("## Runs that no record covers yet", 1)[1]
    criteo = next(ln for ln in missing.splitlines() if ln.startswith("* `criteo` ("))
    assert "R1" in criteo and "-m finalmlp" in criteo and "-m reaction-dtf " not in criteo
    with pytest.raises(LeanrecError):
        C.write_claims(tmp_path / "nothing", tmp_path / "x.md", plots=False)


def test_curve_points_are_each_variants_seed_mean_and_std_in_one_protocol(tmp_path):
    """A sweep curve's points against numpy: per x, the mean and std of the variant's test AUC over its seeds;
    an x from a metric is that metric's mean; a variant with records of an older protocol only is left out;
    a curve is linked from CLAIMS.md once it has two points, whether or not plots are drawn."""
    aucs = {"s:k=1": [0.70, 0.72, 0.71], "s:k=2": [0.74, 0.73, 0.75], "s:k=3": [0.69, 0.70, 0.68]}
    recs = [record(v, seed, auc, params=1000 * (i + 1)) for i, (v, vals) in enumerate(aucs.items())
            for seed, auc in enumerate(vals)]
    recs += [record("s:k=4", 0, 0.9, protocol=1), record("ref", 0, 0.6), record("ref", 1, 0.62)]
    curve = C.Curve("R10", "criteo", "k sweep", "k", (("s", ((1, "s:k=1"), (2, "s:k=2"), (3, "s:k=3"),
                                                             (4, "s:k=4"))),), reference=(("ref", "ref"),))
    proto, series, refs = C.curve_points(curve, C.Records(recs), variant=lambda s: s)
    assert proto == 2 and [p.x for p in series["s"]] == [1, 2, 3]   # k = 4: protocol 1 only, left out
    for p, vals in zip(series["s"], aucs.values()):
        assert p.mean == pytest.approx(np.mean(vals)) and p.std == pytest.approx(np.std(vals, ddof=1)) and p.seeds == 3
    assert refs["ref"].mean == pytest.approx(0.61)
    by_params = C.Curve("S15", "criteo", "by size", "params", curve.series, x_metric="backbone_params")
    _, series, _ = C.curve_points(by_params, C.Records(recs), variant=lambda s: s)
    assert [p.x for p in series["s"]] == [500, 1000, 1500]   # record(): backbone = params - params // 2

    for r in recs:
        write_record(tmp_path / "runs" / "criteo" / f"{r['variant']}__seed{r['seed']}.json", r)
    lone = C.Curve("R10", "criteo", "one point", "k", (("s", ((1, "s:k=1"),)),))
    for plots in (False, True):
        text = C.write_claims(tmp_path, tmp_path / "CLAIMS.md", plots=plots, curves=[curve, lone],
                              variant=lambda s: s)
        r10 = text.split("### R10", 1)[1].split("###", 1)[0]
        assert r10.count("](claims/curve_r10_criteo.png)") == 1 and "one point" not in r10
        # under the curve, the reference's numbers and the highest point's distance to it (0.74 - 0.61)
        assert "ref: 0.6100 ± 0.0141 (2 seeds); the highest point, `s:k=2` 0.7400, is 0.1300 above it." in r10
    assert (tmp_path / "claims" / "curve_r10_criteo.png").read_bytes()[:4] == b"\x89PNG"


def test_heatmaps_are_the_seed_mean_of_each_recorded_matrix(tmp_path):
    """A heatmap panel is numpy's mean over the seeds whose records have the matrices; records without them and
    older protocols are left out; it is linked under its claim once some record has them."""
    rng = np.random.default_rng(0)
    mats = [[rng.uniform(-1, 1, (3, 3)).round(4) for _ in range(2)] for _ in range(3)]
    recs = [record("v", seed, 0.7, extra={"m": [m.tolist() for m in pair_]}) for seed, pair_ in enumerate(mats)]
    recs += [record("v", 3, 0.7), record("v", 4, 0.7, protocol=1, extra={"m": [np.ones((3, 3)).tolist()] * 2})]
    heatmap = C.Heatmap("S19", "criteo", "v", "views", lambda r: [(f"L{i}", m) for i, m in enumerate(r["extra"]["m"])])
    proto, panels, seeds = C.heatmap_panels(heatmap, C.Records(recs), variant=lambda s: s)
    assert proto == 2 and seeds == 3 and [label for label, _ in panels] == ["L0", "L1"]
    for i, (_, mean) in enumerate(panels):
        np.testing.assert_allclose(mean, np.mean([m[i] for m in mats], axis=0))
    for r in recs:
        write_record(tmp_path / "runs" / "criteo" / f"{r['variant']}__seed{r['seed']}.json", r)
    absent = C.Heatmap("S19", "criteo", "w", "none recorded", heatmap.panels)
    text = C.write_claims(tmp_path, tmp_path / "CLAIMS.md", plots=True, curves=[], heatmaps=[heatmap, absent],
                          variant=lambda s: s)
    s19 = text.split("### S19", 1)[1].split("###", 1)[0]
    assert s19.count("](claims/heatmap_s19_criteo_v.png)") == 1 and "none recorded" not in s19
    assert (tmp_path / "claims" / "heatmap_s19_criteo_v.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not (ROOT / "results" / "runs").is_dir(), reason="no committed run records")
def test_committed_claims_file_is_up_to_date(tmp_path):
    out = tmp_path / "CLAIMS.md"
    C.write_claims(ROOT / "results", out, plots=False)
    committed = (ROOT / "results" / "CLAIMS.md").read_text()
    assert out.read_text() == committed, ("results/CLAIMS.md is stale: regenerate it with "
                                          "`leanrec claims --results-dir results --out results/CLAIMS.md`")
