"""Harness core: trainer, measurement, config validation, runner (resume, failures), records, leaderboard."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats as sps
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

import leanrec
from leanrec.context import Budget, RunContext
from leanrec.errors import ConfigError, LeanrecError, UnknownNameError
from leanrec.leaderboard import pareto_front, write_leaderboard
from leanrec.measure import count_parameters, flops_per_sample, measure
from leanrec.methods import BackboneMethod, Method, MethodConfig, field_specs, make_config
from leanrec.metrics import group_auc, log_loss, roc_auc
from leanrec.nn import MLP, CTRModel, field_columns
from leanrec.plugins import load_registry
from leanrec.records import SCHEMA_VERSION, iter_records, write_record
from leanrec.runner import MethodSpec, parse_method, run_grid
from leanrec.testing import tiny_dataset
from leanrec.trainer import Tensors, TrainingDiverged, predict_logits

REPO = Path(__file__).resolve().parents[1]
CARDS = REPO / "harness" / "leanrec" / "datasets"  # the built-in cards (package data)
SYNTHETIC_CARD = CARDS / "synthetic.toml"


class TinyDNN(CTRModel):
    supports_mixed_dims = True

    def __init__(self, fields, embedding_dim=4, hidden=(16,)):
        super().__init__(fields, embedding_dim)
        self.mlp = MLP(self.embedding.output_dim, list(hidden))

    def interact(self, feats):
        return self.mlp(feats.emb.flatten(1)).squeeze(-1)

    def _transfer_fields(self, keep, old_dims):
        self.mlp.select_inputs(field_columns(old_dims, keep))


@dataclass
class TinyConfig(MethodConfig):
    embedding_dim: int = 4
    epochs: int = 3
    hidden: tuple[int, ...] = (16,)


class TinyMethod(BackboneMethod):
    name = "tiny-dnn"
    is_baseline = True
    model_class = TinyDNN
    Config = TinyConfig


class ExplodingMethod(Method):
    name = "exploding"

    def fit(self, data, ctx):
        raise RuntimeError("this method always fails")


class _TestPlugin:
    __name__ = "test-plugin"

    @staticmethod
    @leanrec.hookimpl
    def leanrec_register_methods(register):
        register(TinyMethod)
        register(ExplodingMethod)


def _registry():
    import leanrec.builtin_datasets as builtin

    return load_registry([_TestPlugin(), builtin], entry_points=False)


# ---- metrics against scikit-learn ------------------------------------------------------------------------
def test_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    s = np.round(rng.normal(size=2000), 1)  # ties on purpose
    g = rng.integers(0, 30, 2000)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    p = 1 / (1 + np.exp(-s))
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p), rel=1e-9)
    per, w = [], []
    for k in np.unique(g):
        m = g == k
        if 0 < y[m].sum() < m.sum():
            per.append(roc_auc_score(y[m], s[m]))
            w.append(m.sum())
    assert group_auc(y, s, g) == pytest.approx(np.average(per, weights=w), abs=1e-12)
    assert math.isnan(roc_auc(np.ones(5), np.arange(5)))


# ---- config validation -------------------------------------------------------------------------------------
def test_unknown_and_badly_typed_config_keys_fail_clearly():
    with pytest.raises(ConfigError, match="did you mean 'hidden'"):
        make_config(TinyConfig, {"hiden": [8]})
    with pytest.raises(ConfigError, match="lr"):
        make_config(TinyConfig, {"lr": "fast"})
    with pytest.raises(ConfigError, match="lr must be > 0"):
        make_config(TinyConfig, {"lr": -1})
    cfg = make_config(TinyConfig, {"hidden": "[8,8]", "lr": "0.01"})  # CLI strings parse as JSON
    assert cfg.hidden == (8, 8) and cfg.lr == 0.01


def test_parse_method_spec_keeps_brackets_whole():
    spec = parse_method("dnn:hidden=[64,64],lr=0.01")
    assert spec == MethodSpec("dnn", {"hidden": "[64,64]", "lr": "0.01"})
    assert parse_method("dnn").variant == "dnn"


# ---- trainer -----------------------------------------------------------------------------------------------
def test_trainer_learns_and_restores_best_epoch():
    ds = tiny_dataset(4000, seed=3)
    ctx = RunContext(torch.device("cpu"), progress=False)
    method = TinyMethod.from_overrides({"epochs": 6, "lr": 0.03, "patience": 6})
    result = method.fit(ds, ctx)
    tr = ctx.train_results["train"]
    valid = ctx.tensors(ds, "valid")
    auc_now = roc_auc(valid.y[:, 0].numpy(), predict_logits(result.model, valid.X))
    assert auc_now == pytest.approx(tr.best_valid_auc, abs=1e-12)  # the best epoch's weights are restored
    assert tr.best_valid_auc == max(h["valid_auc"] for h in tr.history)
    assert tr.best_valid_auc > 0.7
    assert "train" in ctx.stage_times and ctx.stage_times["train"] > 0


def test_trainer_stops_early_and_decays_lr():
    ds = tiny_dataset(2000, seed=4)
    ctx = RunContext(torch.device("cpu"), budget=Budget(min_steps=0, eval_every=2), progress=False)
    TinyMethod.from_overrides({"epochs": 50, "lr": 0.05, "patience": 2}).fit(ds, ctx)
    hist = ctx.train_results["train"].history
    assert len(hist) < 50 and ctx.train_results["train"].stopped == "early"
    assert hist[-1]["valid_auc"] <= max(h["valid_auc"] for h in hist[:-1])
    assert hist[-1]["lr"] < 0.05   # the validation before the stop found no gain and cut the LR


def test_nan_loss_is_detected():
    ds = tiny_dataset(500)
    model = TinyDNN(field_specs(ds))
    with torch.no_grad():
        model.mlp.net[0].weight.fill_(float("nan"))
    ctx = RunContext(torch.device("cpu"), progress=False)
    with pytest.raises(TrainingDiverged, match="nan"):
        ctx.train(model, ds, TinyConfig(epochs=1))


# ---- measurement -------------------------------------------------------------------------------------------
def test_parameter_count_and_flops_by_hand():
    ds = tiny_dataset(300, n_informative=2, n_noise=1, interaction=False, vocab=5)
    model = TinyDNN(field_specs(ds), embedding_dim=4, hidden=(16,))
    counts = count_parameters(model)
    assert counts["embedding"] == 3 * 5 * 4
    assert counts["backbone"] == (12 * 16 + 16) + (16 + 1)
    X = torch.from_numpy(ds.test.X)
    assert flops_per_sample(model, X) == 2 * 12 * 16 + 2 * 16 * 1
    dropped = model.drop_fields([0, 2])
    assert count_parameters(dropped)["embedding"] == 2 * 5 * 4
    w = torch.tensor([1.0, 0.0, 1.0])
    torch.testing.assert_close(dropped(X), model(X, field_weights=w))


def test_measure_reports_everything():
    ds = tiny_dataset(600)
    model = TinyDNN(field_specs(ds))
    test = Tensors.from_numpy(ds.test.X, ds.test.y, torch.device("cpu"))
    m = measure(model, test, ds.test.group, latency_repeats=3)
    assert set(m) >= {"auc", "logloss", "gauc", "params", "flops_per_sample", "latency_s_per_sample"}
    assert m["latency_s_per_sample"]["batch_1"] > 0 and m["latency_s_per_sample"]["batch_4096"] > 0


# ---- runner + leaderboard ----------------------------------------------------------------------------------
def _grid(tmp_path, methods, seeds=(0, 1), **kw):
    reports = []
    recs = run_grid([str(SYNTHETIC_CARD)], [parse_method(m) for m in methods], list(seeds), tmp_path,
                    budget=Budget(max_epochs=2), data_overrides={"synthetic": {"n_rows": 3000}},
                    progress=False, reg=_registry(), report=lambda r, event: reports.append((r, event == "reused")), **kw)
    return recs, reports


def test_runner_records_resume_and_failures(tmp_path):
    recs, reports = _grid(tmp_path, ["tiny-dnn", "tiny-dnn:hidden=[8]", "exploding"])
    assert len(recs) == 6
    assert {r["status"] for r in recs if r["method"] == "tiny-dnn"} == {"ok"}
    failed = [r for r in recs if r["method"] == "exploding"]
    assert len(failed) == 2 and all("this method always fails" in r["error"]["traceback"] for r in failed)
    files = sorted((tmp_path / "runs").rglob("*.json"))
    assert len(files) == 6
    rec = json.loads(files[0].read_text())
    assert rec["schema_version"] == SCHEMA_VERSION
    assert {"config", "environment", "date", "seed", "plugin"} <= set(rec)

    mtimes = {f: f.stat().st_mtime_ns for f in files}
    _, reports2 = _grid(tmp_path, ["tiny-dnn", "tiny-dnn:hidden=[8]"])
    assert all(skipped for _, skipped in reports2) and len(reports2) == 4
    assert all(f.stat().st_mtime_ns == mtimes[f] for f in files)

    # an "interrupted" grid: one record missing -> only that one reruns
    victim = next(f for f in files if "hidden" in f.name)
    victim.unlink()
    _, reports3 = _grid(tmp_path, ["tiny-dnn", "tiny-dnn:hidden=[8]"])
    assert sum(not skipped for _, skipped in reports3) == 1 and victim.exists()


def test_runner_rejects_bad_names_and_keys_before_running(tmp_path):
    with pytest.raises(UnknownNameError, match="tiny-dnn"):
        _grid(tmp_path, ["tiny-dn"])
    with pytest.raises(ConfigError, match="hiden"):
        _grid(tmp_path, ["tiny-dnn:hiden=[8]"])
    assert not (tmp_path / "runs").exists()


def test_records_of_another_schema_are_refused(tmp_path):
    write_record(tmp_path / "runs" / "x" / "old__seed0.json", {"schema_version": 0})
    with pytest.raises(LeanrecError, match="schema version 0"):
        list(iter_records(tmp_path))


def test_leaderboard_statistics_match_independent_computation(tmp_path):
    _grid(tmp_path, ["tiny-dnn", "tiny-dnn:hidden=[8]"], seeds=(0, 1, 2))
    tables, md = write_leaderboard(tmp_path)
    rows = {r.variant: r for r in tables["synthetic[n_rows=3000]"]}
    recs = list(iter_records(tmp_path))
    auc = {v: [r["metrics"]["auc"] for r in sorted(recs, key=lambda r: r["seed"]) if r["variant"] == v]
           for v in rows}
    for v, row in rows.items():
        assert row.mean("auc") == pytest.approx(np.mean(auc[v]))
        assert row.std("auc") == pytest.approx(np.std(auc[v], ddof=1))
    best = max(rows.values(), key=lambda r: r.mean("auc"))
    other = next(r for r in rows.values() if r is not best)
    assert other.p_value == pytest.approx(sps.ttest_rel(auc[best.variant], auc[other.variant]).pvalue)
    assert [r.rank for r in sorted(rows.values(), key=lambda r: -r.mean("auc"))] == [1, 2]
    for name in ("leaderboard.csv", "leaderboard.md", "auc_vs_params_synthetic_n_rows_3000.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "tiny-dnn" in md and "±" in md


def test_pareto_front():
    pts = [(10, 0.7), (20, 0.8), (15, 0.6), (30, 0.79), (5, 0.5)]
    assert pareto_front(pts) == [4, 0, 1]


def test_leaderboard_filters_variants_and_datasets():
    recs = [{"variant": v, "dataset": d} for v in ("dnn", "lightfmp", "lightfmp[prune_ratio=0.25]", "fm")
            for d in ("frappe", "criteo")]
    from leanrec.leaderboard import select_records

    got = {(r["variant"], r["dataset"]) for r in select_records(recs, ["dnn", "lightfmp*"], ["fr*"])}
    assert got == {("dnn", "frappe"), ("lightfmp", "frappe"), ("lightfmp[prune_ratio=0.25]", "frappe")}
    assert len(list(select_records(recs))) == 8
    exact = {r["variant"] for r in select_records(recs, ["lightfmp[prune_ratio=0.25]"])}
    assert exact == {"lightfmp[prune_ratio=0.25]"}


def _fake_record(variant, seed, auc, baseline=False):
    return {"dataset": "d", "variant": variant, "status": "ok", "seed": seed, "family": "x", "protocol": 2,
            "is_baseline": baseline, "total_time": 2.0 if variant.startswith("dnn") else 4.0, "selection": {},
            "metrics": {"auc": auc, "logloss": 0.5, "params": {"total": 10, "embedding": 6, "backbone": 4},
                        "flops_per_sample": 1.0, "latency_s_per_sample": {"batch_1": 1e-5, "batch_4096": 1e-6}}}


def test_leaderboard_delta_uses_a_dnn_variant_when_plain_dnn_is_absent():
    from leanrec.leaderboard import build_rows

    recs = [_fake_record("dnn[hidden=[8]]", s, 0.70 + 0.01 * s, True) for s in range(3)]
    jitter = [0.001, -0.002, 0.0005]
    recs += [_fake_record("other", s, 0.72 + 0.01 * s + jitter[s]) for s in range(3)]
    rows = {r.variant: r for r in build_rows(recs)["d"]}
    assert rows["other"].delta_auc == pytest.approx(0.02 + np.mean(jitter))
    assert rows["other"].time_ratio == pytest.approx(2.0)
    assert rows["other"].vs == "dnn[hidden=[8]]"
    x = [0.70 + 0.01 * s for s in range(3)]
    assert rows["other"].p_value == pytest.approx(sps.ttest_rel(x, [a + 0.02 + j for a, j in zip(x, jitter)]).pvalue)


def test_leaderboard_compares_a_method_with_its_own_backbone():
    from leanrec.leaderboard import build_rows, to_csv, to_markdown

    recs = [_fake_record("dnn", s, 0.70 + 0.01 * s, True) for s in range(3)]
    recs += [_fake_record("ipnn", s, 0.75 + 0.01 * s, True) for s in range(3)]
    gain = [0.010, 0.012, 0.011]
    for s in range(3):
        rec = _fake_record("lightfmp-ipnn", s, 0.75 + 0.01 * s + gain[s])
        rec["config"], rec["total_time"] = {"backbone": "ipnn"}, 3.0
        recs.append(rec)
    tables = build_rows(recs)
    rows = {r.variant: r for r in tables["d"]}
    own = rows["lightfmp-ipnn"]
    assert own.bb_delta_auc == pytest.approx(np.mean(gain))
    assert own.bb_time_ratio == pytest.approx(3.0 / 4.0)  # ipnn's fake total_time is 4 s
    x = [0.75 + 0.01 * s for s in range(3)]
    assert own.bb_p_value == pytest.approx(sps.ttest_rel(x, [a + g for a, g in zip(x, gain)]).pvalue)
    assert math.isnan(rows["ipnn"].bb_delta_auc) and math.isnan(rows["dnn"].bb_time_ratio)
    md = to_markdown(tables)
    assert "time × own backbone" in md and "`ipnn`)" in md
    assert "fields / dims" not in md  # no row records kept fields
    for s in range(3):
        recs[6 + s]["selection"] = {"fields": ["a", "b"], "field_dims": {"a": 4, "b": 6 + 2 * s}}
    md = to_markdown(build_rows(recs))
    assert "| 2.0 / 12.0 |" in md and "fields / dims" in md  # dims 10, 12, 14: mean 12
    assert "delta_auc_vs_backbone" in to_csv(tables).splitlines()[0]


def test_fits_run_with_denormals_flushed(tmp_path):
    """prepare_fit makes CPU arithmetic treat denormals as zero (where the CPU can), and the record says so."""
    from leanrec.context import prepare_fit

    torch.set_flush_denormal(False)               # (earlier fits in this process left it on)
    try:
        tiny = torch.tensor([1e-39])              # a float32 denormal
        assert float(tiny * 1.0) > 0.0           # computed as a denormal: the slow path
        prepare_fit(0)
        if not torch.set_flush_denormal(True):
            pytest.skip("this CPU cannot flush denormals")
        assert float(tiny * 1.0) == 0.0
        assert torch.rand(()) == torch.rand((), generator=torch.Generator().manual_seed(0))   # seeded too
    finally:
        torch.set_flush_denormal(False)
    recs, _ = _grid(tmp_path, ["tiny-dnn"])
    assert all(r["environment"]["flush_denormal"] is True for r in recs)


@pytest.mark.parametrize("caller_flushes", [False, True])
def test_runs_give_the_caller_its_denormal_handling_back(tmp_path, caller_flushes):
    """Fits flush denormals, but a run leaves the process as it found it (a denormal times one stays one)."""
    from leanrec.context import denormals_flushed

    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    torch.set_flush_denormal(caller_flushes)
    try:
        recs, _ = _grid(tmp_path, ["tiny-dnn"])
        assert all(r["environment"]["flush_denormal"] is True for r in recs)      # the fits flushed
        assert denormals_flushed() is caller_flushes
        assert (float(torch.tensor([1e-39]) * 1.0) == 0.0) is caller_flushes    # the probe's own oracle
    finally:
        torch.set_flush_denormal(False)


def test_records_name_the_cpu_kernels_they_ran_on(tmp_path):
    """Records say which instruction set torch's CPU kernels used (results reproduce bit for bit only on the same)."""
    recs, _ = _grid(tmp_path, ["tiny-dnn"])
    assert {r["environment"]["cpu_capability"] for r in recs} == {torch.backends.cpu.get_cpu_capability()}
    assert all("cpu" in r["environment"] for r in recs)
