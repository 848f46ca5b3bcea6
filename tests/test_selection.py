"""The feature-selection protocol in leanrec.selection: config, top-k retrain with shrinking serving model,
ranking quality, and the table over k (CSV/Markdown/PNG) from run records."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import leanrec
import leanrec.plugins
from leanrec.context import RunContext
from leanrec.errors import ConfigError
from leanrec.measure import count_parameters
from leanrec.methods import BackboneMethod, MethodConfig
from leanrec.nn import MLP, CTRModel, field_columns
from leanrec.plugins import load_registry
from leanrec.records import SCHEMA_VERSION, record_path, write_record
from leanrec.selection import (SelectorMethod, keep_count, order_fields, ranking_auc, ranking_quality,
                               selection_rows, selection_table_command, write_selection_table)
from leanrec.testing import tiny_dataset


class TinyDNN(CTRModel):
    """Minimal DNN backbone for tests (the zoo's dnn may not exist yet)."""

    def __init__(self, fields, embedding_dim=4, hidden=(8,), init_std=1e-2):
        super().__init__(fields, embedding_dim, init_std)
        self.mlp = MLP(self.embedding.output_dim, list(hidden), 1)

    def interact(self, feats):
        return self.mlp(feats.emb.flatten(1)).squeeze(-1)

    def _transfer_fields(self, keep, old_dims):
        self.mlp.select_inputs(field_columns(old_dims, keep))


class TinyDNNMethod(BackboneMethod):
    """Test backbone."""

    name = "tinydnn"
    model_class = TinyDNN

    @dataclass
    class Config(MethodConfig):
        embedding_dim: int = 4
        hidden: tuple[int, ...] = (8,)
        batch_size: int = 256
        epochs: int = 3
        lr: float = 1e-2


class _TestPlugin:
    __name__ = "selection-test-backbones"

    @staticmethod
    @leanrec.hookimpl
    def leanrec_register_methods(register):
        register(TinyDNNMethod)


def make_registry():
    import leanrec_selectors.plugin as sel_plugin

    return load_registry([_TestPlugin, sel_plugin], entry_points=False)


@pytest.fixture
def reg(monkeypatch):
    r = make_registry()
    monkeypatch.setattr(leanrec.plugins, "registry", lambda: r)
    return r


@pytest.fixture(scope="module")
def data():
    return tiny_dataset(2000, n_informative=3, n_noise=4, vocab=8, seed=1)


def ctx():
    torch.manual_seed(0)
    return RunContext(device=torch.device("cpu"), seed=0, progress=False)


class OracleSelector(SelectorMethod):
    """Test selector: scores from a fixed table."""

    name = "oracle"
    table: dict = {}

    def rank(self, data, ctx):
        return dict(self.table)


def test_keep_count_and_order():
    assert keep_count(10, 0.25) == 3 and keep_count(10, 1.0) == 10 and keep_count(3, 0.01) == 1
    assert keep_count(25, 0.5) == 13 and keep_count(39, 0.3) == 12  # half up, the same for every method
    assert keep_count(10, 0.5, k=3) == 3 and keep_count(4, 0.5, k=9) == 4
    assert order_fields({"a": 1.0, "b": 3.0, "c": 1.0, "d": math.nan}, ["a", "b", "c", "d"]) == ["b", "a", "c", "d"]
    with pytest.raises(ValueError, match="no score"):
        order_fields({"a": 1.0}, ["a", "b"])


def test_config_validation():
    with pytest.raises(ConfigError):
        OracleSelector.from_overrides({"keep_ratio": 0})
    with pytest.raises(ConfigError):
        OracleSelector.from_overrides({"keep_ratio": 1.5})
    with pytest.raises(ConfigError):
        OracleSelector.from_overrides({"k": -1})
    with pytest.raises(ConfigError, match="Unknown"):
        OracleSelector.from_overrides({"keep": 2})
    cfg = OracleSelector.from_overrides({"backbone_config": '{"hidden": [4]}', "k": "2"}).config
    assert cfg.backbone_config == {"hidden": [4]} and cfg.k == 2 and cfg.backbone == "dnn"


def test_fit_retrains_only_kept_fields(reg, data):
    names = [f.name for f in data.fields]
    OracleSelector.table = {n: float(i % 5) for i, n in enumerate(names)}
    sel = OracleSelector.from_overrides({"backbone": "tinydnn", "k": 3, "embedding_dim": 4})
    c = ctx()
    res = sel.fit(data, c)
    expected = order_fields(OracleSelector.table, names)[:3]
    assert set(res.selected_fields) == set(expected) and len(res.selected_fields) == 3
    assert res.extra["ranking"][:3] == expected and res.extra["k"] == 3
    assert res.field_scores == OracleSelector.table
    assert {"select", "retrain"} <= set(c.stage_times) and "retrain" in c.train_results
    model = res.model
    assert [f.name for f in model.fields] == res.selected_fields
    # The serving model takes the full X, ignores the dropped columns, and is smaller than an all-field model.
    X = torch.as_tensor(data.test.X[:64], dtype=torch.long)
    out = model(X)
    assert out.shape == (64,)
    dropped = [i for i, n in enumerate(names) if n not in res.selected_fields]
    X2 = X.clone()
    X2[:, dropped] = (X2[:, dropped] + 1) % 8
    torch.testing.assert_close(model(X2), out)
    full = TinyDNNMethod().build_model([type(model.fields[0])(f.name, f.vocab_size) for f in data.fields])
    small, big = count_parameters(model), count_parameters(full)
    assert small["embedding"] == 3 * 8 * 4 and big["embedding"] == len(names) * 8 * 4
    assert small["backbone"] < big["backbone"]


def test_ranking_quality_and_auc():
    gt = {"informative": ["a", "b"], "interaction": ["c"], "noise": ["x", "y"], "redundant": []}
    q = ranking_quality(["a", "x", "c", "b", "y"], gt, k=3)
    assert q == {"precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3)}
    assert ranking_quality(["a", "b", "c", "x", "y"], gt, k=3) == {"precision": 1.0, "recall": 1.0}
    assert ranking_auc(["a", "b", "x", "y"], ["a", "b"], ["x", "y"]) == 1.0
    assert ranking_auc(["x", "a", "y", "b"], ["a", "b"], ["x", "y"]) == 0.25
    with pytest.raises(ValueError):
        ranking_quality(["a"], {"noise": ["a"]}, 1)


def _record(dataset, method, family, overrides, seed, auc, fields, params, status="ok", extra=None):
    from leanrec.records import variant_name

    rec = {"schema_version": SCHEMA_VERSION, "dataset": dataset, "method": method, "family": family,
           "variant": variant_name(method, overrides), "overrides": overrides, "seed": seed, "status": status,
           "config": {"keep_ratio": overrides.get("keep_ratio", 0.5), "k": 0}}
    if status == "ok":
        rec.update(metrics={"auc": auc, "params": {"total": params}}, selection={"fields": fields},
                   extra=extra or ({"keep_ratio": len(fields) / 4, "k": len(fields)} if fields else {}))
    return rec


def test_selection_table_and_plot(tmp_path: Path):
    recs = []
    for seed in (0, 1):
        for ratio, fields in ((0.25, ["a"]), (0.5, ["a", "b"])):
            recs.append(_record("toy", "mi", "selector", {"keep_ratio": ratio}, seed, 0.7 + ratio / 10 + seed / 100,
                                fields, 100 * len(fields)))
        recs.append(_record("toy", "dnn", "backbone", {}, seed, 0.8 + seed / 100, None, 400))
    recs.append(_record("toy", "lasso", "selector", {"keep_ratio": 0.5}, 0, None, None, None, status="failed"))
    for r in recs:
        write_record(record_path(tmp_path, r["dataset"], r["variant"], r["seed"]), r)
    rows = selection_rows(recs)
    mi = {r.keep_ratio: r for r in rows if r.series == "mi"}
    assert set(mi) == {0.25, 0.5}
    assert mi[0.5].auc_mean == pytest.approx(0.755) and mi[0.5].n_fields == 2 and mi[0.5].seeds == [0, 1]
    ref = [r for r in rows if r.series == "dnn (all fields)"][0]
    assert ref.keep_ratio == 1.0 and ref.auc_mean == pytest.approx(0.805)
    failed = [r for r in rows if r.series == "lasso"][0]
    assert failed.failed == 1 and not failed.auc
    out = tmp_path / "out"
    summary = selection_table_command(str(tmp_path), str(out))
    assert "selection.md" in summary
    md = (out / "selection.md").read_text()
    assert "| `mi` | 0.7300 ± 0.0071 (n=2) | 0.7550 ± 0.0071 (n=2) | - |" in md
    assert "failed (1)" in md
    assert (out / "selection.csv").read_text().count("\n") == 1 + len(rows)
    png = (out / "selection_auc_vs_k_toy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))   # atomic writes leave no temp files
    # Nothing to plot -> no PNG.
    empty = tmp_path / "empty"
    assert [p.name for p in write_selection_table(empty, empty)] == ["selection.csv", "selection.md"]
