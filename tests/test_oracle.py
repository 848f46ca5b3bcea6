"""The synthetic logs' ceiling: the generator's true click probability (`synthetic.true_logit`), seen through
an encoding (`synthetic.encoded_logit`), served by the `oracle` method and listed unranked on leaderboards."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.metrics import roc_auc_score

from leanrec.context import Budget
from leanrec.data import synthetic
from leanrec.errors import ConfigError
from leanrec.leaderboard import build_rows, ceiling_note, to_csv, to_markdown
from leanrec.plugins import registry
from leanrec.runner import parse_method, run_grid
from leanrec.testing import tiny_dataset

from conftest import CARDS

SMALL = synthetic.SyntheticConfig(n_rows=1, n_fields=8, n_informative=3, n_redundant=1, max_cardinality=40, seed=2)


@lru_cache(maxsize=1)
def _rows(n: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """(raw value ids, clicks) of n rows drawn by the generator itself."""
    t = synthetic.generate(SMALL, n_rows=n)[0]
    plan = synthetic.make_plan(SMALL)
    return np.stack([t[c].to_numpy() for c in plan.names], axis=1), t["click"].to_numpy()


def test_true_logit_is_calibrated_against_the_drawn_labels():
    X, y = _rows()
    p = 1 / (1 + np.exp(-synthetic.true_logit(SMALL, X)))
    assert p.mean() == pytest.approx(y.mean(), abs=4 * math.sqrt(y.mean() * (1 - y.mean()) / len(y)))
    for part in np.array_split(np.argsort(p, kind="stable"), 10):   # deciles of the predicted probability
        se = math.sqrt(np.mean(p[part] * (1 - p[part])) / len(part))
        assert abs(y[part].mean() - p[part].mean()) < 4.5 * se
    # a proper score: the true probability beats a tempered version of itself on logloss
    def logloss(q):
        return -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))
    z = synthetic.true_logit(SMALL, X)
    for t in (0.7, 1.4):
        assert logloss(p) < logloss(1 / (1 + np.exp(-t * z)))


def _encode(X: np.ndarray, vocab: dict[str, np.ndarray]) -> np.ndarray:
    """Codes the way leanrec's caches hold them (2 + vocabulary position, 1 = out of vocabulary), by a dict."""
    names = synthetic.make_plan(SMALL).names
    out = np.ones_like(X)
    for j, f in enumerate(names):
        code = {int(v): 2 + k for k, v in enumerate(vocab[f])}
        out[:, j] = [code.get(int(v), 1) for v in X[:, j]]
    return out


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_encoded_logit_is_the_true_logit_or_the_mean_of_what_a_code_merges(data):
    X, _ = _rows()
    plan = synthetic.make_plan(SMALL)
    vocab = {}
    for f, k in zip(plan.names, plan.cards):   # a random subset of each field's values, in a random order
        keep = data.draw(st.lists(st.integers(0, int(k) - 1), unique=True, min_size=1, max_size=int(k)))
        vocab[f] = np.array(keep, dtype=np.int64)
    enc = synthetic.encoded_logit(SMALL, vocab)
    codes = _encode(X[:20_000], vocab)
    got = enc(codes, {f: j for j, f in enumerate(plan.names)})
    read = sorted({plan.names.index(f) for f in [*enc.effects, *enc.signs]})
    whole = (codes[:, read] >= 2).all(axis=1)
    np.testing.assert_allclose(got[whole], synthetic.true_logit(SMALL, X[:20_000][whole]), atol=1e-9)
    # the OOV code of an informative field carries the mean effect of the values it merges (Monte Carlo over
    # the generator's own draws, against the closed-form probabilities encoded_logit uses)
    for i, eff in plan.effects.items():
        f = plan.names[i]
        merged = ~np.isin(X[:, i], vocab[f])
        if merged.sum() >= 2000:
            sample = eff[X[merged, i]]
            assert enc.effects[f][1] == pytest.approx(sample.mean(), abs=5 * sample.std() / math.sqrt(len(sample)) + 1e-3)
            assert enc.merged_share[f] == pytest.approx(merged.mean(), abs=5 * math.sqrt(merged.mean() / len(X)) + 1e-3)


def test_encoded_logit_refuses_a_vocabulary_that_is_not_the_fields_values():
    plan = synthetic.make_plan(SMALL)
    vocab = {f: np.arange(int(k)) for f, k in zip(plan.names, plan.cards)}
    with pytest.raises(ConfigError, match="no vocabulary for field"):
        synthetic.encoded_logit(SMALL, {f: v for f, v in list(vocab.items())[1:]})
    f = plan.names[plan.roles["informative"][0]]
    with pytest.raises(ConfigError, match=f"field '{f}'"):
        synthetic.encoded_logit(SMALL, {**vocab, f: np.array([0, 0])})


def test_oracle_run_scores_the_true_click_probability(tmp_path):
    opts = {"n_rows": 4000, "n_fields": 8, "n_informative": 3, "n_redundant": 1, "max_cardinality": 12, "seed": 2}
    recs = run_grid([str(CARDS / "synthetic.toml")], [parse_method("oracle")], [0, 1], tmp_path,
                    budget=Budget(max_epochs=1), data_overrides={"synthetic": opts}, progress=False,
                    reg=registry())
    assert [r["status"] for r in recs] == ["ok", "ok"]
    from leanrec.data import load_dataset

    cfg = synthetic.SyntheticConfig.from_options(opts)
    for rec in recs:
        assert rec["family"] == "reference" and rec["metrics"]["params"]["total"] == 0 and rec["training"] == {}
        ds = load_dataset(CARDS / "synthetic.toml", seed=rec["seed"], overrides={"synthetic": opts}, progress=False)
        codes = np.asarray(ds.test.X)
        assert (codes >= 2).all()   # every value of these small fields is seen in training: exact oracle
        raw = np.stack([np.asarray(ds.vocab(f)["value"].to_numpy(zero_copy_only=False), dtype=np.int64)[codes[:, j] - 2]
                        for j, f in enumerate(ds.field_names)], axis=1)
        truth = synthetic.true_logit(cfg, raw)
        assert rec["metrics"]["auc"] == pytest.approx(roc_auc_score(np.asarray(ds.test.y)[:, 0], truth), abs=1e-6)


def test_oracle_refuses_a_log_without_a_known_probability():
    from leanrec.context import RunContext
    import torch

    method = registry().method("oracle")()
    with pytest.raises(ConfigError, match="not synthetic"):
        method.fit(tiny_dataset(200), RunContext(device=torch.device("cpu"), seed=0, budget=Budget(), progress=False))


def _record(variant, seed, auc, *, family="backbone", baseline=False):
    params = 0 if family == "reference" else 10
    return {"dataset": "d", "variant": variant, "status": "ok", "seed": seed, "family": family, "protocol": 2,
            "is_baseline": baseline, "total_time": 1.0, "selection": {},
            "metrics": {"auc": auc, "logloss": 0.5, "params": {"total": params, "embedding": 0, "backbone": params},
                        "flops_per_sample": 0.0, "latency_s_per_sample": {"batch_1": 1e-5, "batch_4096": 1e-6}}}


def test_a_reference_row_is_listed_but_never_ranked_or_compared():
    recs = [_record("dnn", s, 0.70 + 0.01 * s, baseline=True) for s in range(3)]
    recs += [_record("other", s, 0.705 + 0.01 * s + 0.001 * (s == 1)) for s in range(3)]
    plain = {r.variant: r for r in build_rows(recs)["d"]}
    recs += [_record("oracle", s, 0.80 + 0.01 * s + 0.002 * s, family="reference") for s in range(3)]
    rows = build_rows(recs)["d"]
    by = {r.variant: r for r in rows}
    for v, r in plain.items():   # the ranked rows are exactly what they were without the ceiling
        assert (by[v].rank, by[v].tie_with_best, by[v].vs) == (r.rank, r.tie_with_best, r.vs)
        assert by[v].p_value == pytest.approx(r.p_value, nan_ok=True)
    ceiling = by["oracle"]
    assert ceiling.rank == 0 and not ceiling.tie_with_best and math.isnan(ceiling.p_value)
    assert [r.variant for r in rows][-1] == "oracle"
    top = by["other"]
    gap = np.mean([a - b for a, b in zip(ceiling.auc, top.auc)])
    assert f"is {gap:.4f} below it" in ceiling_note(rows)
    md = to_markdown({"d": rows})
    assert "| ceiling | `oracle`" in md and "#1 `other`" in md
    assert md.index("| ceiling |") < md.index("| 1 |")
    assert ",0,oracle,reference," in to_csv({"d": rows})
    from leanrec.plots import auc_vs_params_figure

    fig = auc_vs_params_figure(rows, "t")   # the ceiling (0 parameters) is a line, not a point on the log axis
    assert fig is not None and [ln.get_ydata()[0] for ln in fig.axes[0].get_lines() if ln.get_linestyle() == ":"] \
        == [pytest.approx(ceiling.mean("auc"))]


def test_a_teacher_network_adds_signal_without_changing_the_fields():
    teach = synthetic.SyntheticConfig(**{**SMALL.__dict__, "teacher_width": 16, "teacher_dim": 3})
    plain, _ = synthetic.generate(SMALL, n_rows=30_000)
    taught, gt = synthetic.generate(teach, n_rows=30_000)
    names = synthetic.make_plan(SMALL).names
    assert plain.select(names).equals(taught.select(names))   # same rows; only the labels' law changes
    assert gt == synthetic.ground_truth(SMALL)
    X = np.stack([taught[c].to_numpy() for c in names], axis=1)
    z_plain, z = synthetic.true_logit(SMALL, X), synthetic.true_logit(teach, X)
    extra = (z - z_plain) - np.mean(z - z_plain)   # the teacher's part, up to the recalibrated bias
    assert np.std(extra) == pytest.approx(teach.teacher_effect, rel=0.05)
    p = 1 / (1 + np.exp(-z))
    y = taught["click"].to_numpy()
    assert roc_auc_score(y, z) > roc_auc_score(y, z_plain)   # the labels follow the teacher's logit
    assert abs(y.mean() - p.mean()) < 4 * math.sqrt(p.mean() * (1 - p.mean()) / len(y))
    # the encoding of a complete vocabulary serves it exactly
    plan = synthetic.make_plan(teach)
    vocab = {f: np.random.default_rng(0).permutation(int(k)) for f, k in zip(plan.names, plan.cards)}
    enc = synthetic.encoded_logit(teach, vocab)
    got = enc(_encode(X[:5000], vocab), {f: j for j, f in enumerate(plan.names)})
    np.testing.assert_allclose(got, z[:5000], atol=1e-9)
    with pytest.raises(ConfigError, match="teacher_width"):
        synthetic.SyntheticConfig.from_options({"teacher_width": -1})


def test_the_html_report_lists_the_ceiling_first_and_says_the_gap(tmp_path):
    from leanrec.records import SCHEMA_VERSION, write_record
    from leanrec.report import build_report

    for s in range(2):
        for rec in (_record("dnn", s, 0.70 + 0.01 * s, baseline=True), _record("oracle", s, 0.75, family="reference")):
            write_record(tmp_path / "runs" / "d" / f"{rec['variant']}__seed{s}.json",
                         {**rec, "schema_version": SCHEMA_VERSION})
    page = build_report(tmp_path, tmp_path / "report.html", plots=False)
    table = page.split("<tbody>", 1)[1]
    assert table.index(">ceiling<") < table.index(">1<")
    assert "(1 methods;" in page and "dnn is 0.0450 below it" in page


def test_the_oracle_has_nothing_to_tune():
    from leanrec.space import search_space

    assert search_space(registry().method("oracle")) == {}
