"""results/selection_truth.py: kept fields scored against the synthetic generator's planted roles.

Oracles: a per-field brute-force count for precision / recall / role counts / wasted redundant slots, sklearn's
roc_auc_score (ties count 1/2) for the score AUC, numpy for the mean and std over seeds, and the ground truth
stored in the prepared cache (not the generator plan the script reads) for real runs."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.metrics import roc_auc_score

from leanrec.data import load_dataset, synthetic
from leanrec.errors import LeanrecError
from leanrec.protocol import Budget
from leanrec.records import SCHEMA_VERSION
from leanrec.runner import parse_method, run_grid

SCRIPT = Path(__file__).resolve().parents[1] / "results" / "selection_truth.py"
ROLES = ("informative", "interaction", "redundant", "noise")
SIGNAL = ("informative", "interaction")


def _load_script():
    spec = importlib.util.spec_from_file_location("selection_truth", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod   # its dataclasses look their module up while being defined
    spec.loader.exec_module(mod)
    return mod


st_mod = _load_script()


def brute_force(kept, truth):
    """Count field by field."""
    role_of = {}
    for role in ROLES:
        for f in truth[role]:
            role_of[f] = role
    n_signal = sum(1 for f in role_of if role_of[f] in SIGNAL)
    tp = 0
    counts = dict.fromkeys(ROLES, 0)
    for f in kept:
        counts[role_of[f]] += 1
        if role_of[f] in SIGNAL:
            tp += 1
    wasted = 0
    for r, src in truth["redundant_of"].items():
        if r in kept and src in kept:
            wasted += 1
    return {"precision": tp / len(kept) if kept else math.nan, "recall": tp / n_signal, "wasted": wasted,
            **{f"kept_{role}": c for role, c in counts.items()}}


@st.composite
def truths(draw):
    """A random planted truth: F fields, at least one informative field (redundant fields copy one)."""
    F = draw(st.integers(2, 25))
    names = [f"C{i + 1}" for i in range(F)]
    roles = ["informative"] + draw(st.lists(st.sampled_from(ROLES), min_size=F - 1, max_size=F - 1))
    roles = draw(st.permutations(roles))
    truth = {role: [n for n, r in zip(names, roles) if r == role] for role in ROLES}
    truth["redundant_of"] = {r: draw(st.sampled_from(truth["informative"])) for r in truth["redundant"]}
    return names, truth


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_metrics_match_brute_force(data):
    names, truth = data.draw(truths())
    kept = data.draw(st.lists(st.sampled_from(names), unique=True))
    scores = data.draw(st.fixed_dictionaries({n: st.integers(0, 3) for n in names}))  # small range: many ties
    m = st_mod.truth_metrics({"fields": kept, "field_scores": scores}, truth)
    bf = brute_force(kept, truth)
    assert (math.isnan(m["precision"]) and not kept) or m["precision"] == pytest.approx(bf["precision"])
    assert m["recall"] == pytest.approx(bf["recall"])
    assert m["wasted_redundant"] == bf["wasted"]
    for role in ROLES:
        assert m[f"kept_{role}"] == bf[f"kept_{role}"]
    assert m["kept"] == len(kept) and m["keep_ratio"] == pytest.approx(len(kept) / len(names))
    signal = truth["informative"] + truth["interaction"]
    if truth["noise"]:
        y = [1] * len(signal) + [0] * len(truth["noise"])
        assert m["score_auc"] == pytest.approx(roc_auc_score(y, [scores[f] for f in signal + truth["noise"]]))
    else:
        assert math.isnan(m["score_auc"])


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_keeping_exactly_the_signal_is_perfect(data):
    names, truth = data.draw(truths())
    signal = truth["informative"] + truth["interaction"]
    scores = {f: (1.0 if f in signal else 0.0) for f in names}
    m = st_mod.truth_metrics({"fields": data.draw(st.permutations(signal)), "field_scores": scores}, truth)
    assert m["precision"] == 1.0 and m["recall"] == 1.0
    assert m["kept_redundant"] == m["kept_noise"] == m["wasted_redundant"] == 0
    assert math.isnan(m["score_auc"]) if not truth["noise"] else m["score_auc"] == 1.0


def test_dims_and_unknown_fields():
    truth = {"informative": ["C1"], "interaction": ["C2"], "redundant": ["C3"], "noise": ["C4", "C5"],
             "redundant_of": {"C3": "C1"}}
    m = st_mod.truth_metrics({"fields": ["C1", "C3", "C4"], "field_dims": {"C1": 8, "C3": 2, "C4": 4}}, truth)
    assert m["dim_signal"] == 4.0 and m["dim_noise"] == 2.0   # C2 and C5 not kept: dim 0
    assert math.isnan(m["score_auc"])                          # no field scores
    with pytest.raises(LeanrecError, match="C9"):
        st_mod.truth_metrics({"fields": ["C1", "C9"]}, truth)
    with pytest.raises(LeanrecError, match="not synthetic"):
        st_mod.planted_truth("criteo", {})


OVERRIDES = {"synthetic": {"n_rows": 3000, "n_fields": 12}}
LABEL = "synthetic[n_fields=12,n_rows=3000]"


def _fake(tmp_path, variant, family, seed, fields, auc, status="ok", near_uniform=False):
    rec = {"schema_version": SCHEMA_VERSION, "dataset": LABEL, "variant": variant, "method": variant.split("[")[0],
           "family": family, "seed": seed, "status": status, "data_overrides": OVERRIDES,
           "selection": {"fields": fields, "field_dims": None, "field_scores": None}, "metrics": {"auc": auc},
           "extra": {"search": {"near_uniform": near_uniform}}}
    path = tmp_path / "runs" / "x" / f"{variant}__seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))


def test_aggregation_over_seeds(tmp_path):
    truth = synthetic.ground_truth(synthetic.SyntheticConfig(n_fields=12))
    signal = truth["informative"] + truth["interaction"]
    kept = [signal, signal[:2] + truth["noise"][:2], signal[:1] + truth["redundant"]]
    for seed, fields in enumerate(kept):
        _fake(tmp_path, "sel", "selector", seed, fields, 0.7 + seed / 100)
    _fake(tmp_path, "sel", "selector", 3, None, None, status="failed")
    _fake(tmp_path, "sel", "selector", 4, truth["noise"], 0.9, near_uniform=True)   # did not choose: left out
    _fake(tmp_path, "dnn", "backbone", 0, None, 0.75)
    st_mod.main([str(tmp_path), "--out", str(tmp_path / "out"), "--no-plots"])
    rows = {r["variant"]: r for r in csv.DictReader((tmp_path / "out" / "selection_truth.csv").open())}
    assert set(rows) == {"sel", "dnn (all fields)"}
    bf = [brute_force(f, truth) for f in kept]
    for key in ("precision", "recall"):
        vals = [b[key] for b in bf]
        assert float(rows["sel"][f"{key}_mean"]) == pytest.approx(np.mean(vals))
        assert float(rows["sel"][f"{key}_std"]) == pytest.approx(np.std(vals, ddof=1))
    assert float(rows["sel"]["test_auc_mean"]) == pytest.approx(0.71)
    assert rows["sel"]["n_seeds"] == "3" and rows["sel"]["failed_runs"] == "1" and rows["sel"]["near_uniform_runs"] == "1"
    assert float(rows["dnn (all fields)"]["recall_mean"]) == 1.0
    assert float(rows["dnn (all fields)"]["precision_mean"]) == pytest.approx(len(signal) / 12)
    md = (tmp_path / "out" / "selection_truth.md").read_text()
    assert "| `planted signal (oracle)` | — | — | 7.0 (0.58) | 1.00 | 1.00 |" in md
    assert "| `sel` | selector | 3 (1 failed) (1 near-uniform searches left out) |" in md


def test_real_runs_against_the_cached_truth(tmp_path):
    """Two cheap selectors really run (a few steps), scored against the ground truth the cache stores."""
    methods = ["mi:keep_ratio=0.25", "variance"]
    recs = run_grid(["synthetic"], [parse_method(m) for m in methods], [0], tmp_path,
                    budget=Budget(max_steps=3, min_steps=3), data_overrides=OVERRIDES, progress=False)
    assert [r["status"] for r in recs] == ["ok", "ok"]
    written = st_mod.main([str(tmp_path), "--dataset", LABEL, "--out", str(tmp_path / "out")])
    assert {p.name for p in written} >= {"selection_truth.md", "selection_truth.csv"}
    assert any(p.suffix == ".png" for p in written)
    truth = load_dataset("synthetic", seed=0, overrides=OVERRIDES, progress=False).ground_truth
    rows = {r["variant"]: r for r in csv.DictReader((tmp_path / "out" / "selection_truth.csv").open())}
    assert set(rows) == {"mi[keep_ratio=0.25]", "variance"}
    for rec in recs:
        bf = brute_force(rec["selection"]["fields"], truth)
        row = rows[rec["variant"]]
        assert float(row["precision_mean"]) == pytest.approx(bf["precision"])
        assert float(row["recall_mean"]) == pytest.approx(bf["recall"])
        assert float(row["kept_noise_mean"]) == bf["kept_noise"]
        assert float(row["test_auc_mean"]) == pytest.approx(rec["metrics"]["auc"])
