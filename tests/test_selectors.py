"""Every selector of the leanrec-selectors plugin, scored against planted ground truth (tiny_dataset, and the
synthetic dataset when the data layer provides it); end-to-end variants and the retrain on kept fields."""
from __future__ import annotations

import pytest
import torch

import leanrec.plugins
from leanrec.measure import count_parameters
from leanrec.selection import order_fields, ranking_auc, ranking_quality
from leanrec.testing import tiny_dataset
from test_selection import ctx, make_registry

STATISTICAL = ["mi", "chi2", "variance"]
SHALLOW = ["lasso", "pca"]
LEARNED = ["adafs", "optfs", "lpfs", "mvfs"]
# Search settings small enough for a CPU test (the paper defaults are for real datasets): small batches,
# a constant LR, and LPFS' L1 strong enough to act within ~100 steps.
FAST = {"backbone": "tinydnn", "embedding_dim": 4, "batch_size": 128, "epochs": 6, "lr": 1e-2, "lr_decay": 1.0, "patience": 6, "k": 3}
EXTRA = {"lpfs": {"l1": 5.0}, "pca": {"batch_size": 128, "epochs": 4, "lr": 1e-2}}


@pytest.fixture(autouse=True)
def reg(monkeypatch):
    torch.set_num_threads(1)
    r = make_registry()
    monkeypatch.setattr(leanrec.plugins, "registry", lambda: r)
    return r


@pytest.fixture(scope="module")
def data():
    return tiny_dataset(3000, n_informative=3, n_noise=4, vocab=8, seed=1)


def ranking_of(reg, name, data, overrides, seed=0):
    method = reg.method(name).from_overrides(overrides)
    c = ctx()
    c.seed = seed
    torch.manual_seed(seed)
    return order_fields(method.rank(data, c), [f.name for f in data.fields])


def test_all_selectors_registered(reg):
    for name in STATISTICAL + SHALLOW + LEARNED + ["autofield", "adafs-e2e", "mvfs-e2e"]:
        cls = reg.method(name)
        assert cls.family == "selector" and cls.paper and cls.__doc__


@pytest.mark.parametrize("name", STATISTICAL + SHALLOW)
def test_filters_put_informative_above_noise(reg, data, name):
    over = {"backbone": "tinydnn", **EXTRA.get(name, {})}
    rk = ranking_of(reg, name, data, over)
    gt = data.ground_truth
    worst_informative = max(rk.index(f) for f in gt["informative"])
    best_noise = min(rk.index(f) for f in gt["noise"])
    assert worst_informative < best_noise, rk
    assert ranking_quality(rk, gt, k=3, relevant=("informative",)) == {"precision": 1.0, "recall": 1.0}


@pytest.mark.parametrize("name", LEARNED)
def test_learned_selectors_beat_chance(reg, data, name):
    gt = data.ground_truth
    aucs = [ranking_auc(ranking_of(reg, name, data, {**FAST, **EXTRA.get(name, {})}, seed), gt["informative"],
                        gt["noise"]) for seed in (0, 1)]
    assert sum(aucs) / len(aucs) >= 0.8, aucs   # chance = 0.5


@pytest.mark.xfail(reason="AutoField's Gumbel gates rank near chance on a 3k-row dataset in ~100 steps; "
                          "see docs/selection.md", strict=False)
def test_autofield_beats_chance(reg, data):
    gt = data.ground_truth
    over = {**FAST, "arch_lr": 0.1, "update_frequency": 1, "tau_decay": 0.005}
    aucs = [ranking_auc(ranking_of(reg, "autofield", data, over, seed), gt["informative"], gt["noise"])
            for seed in (0, 1)]
    assert sum(aucs) / len(aucs) >= 0.8, aucs


def test_learned_selector_retrains_on_kept_fields(reg, data):
    res = reg.method("mvfs").from_overrides(FAST).fit(data, c := ctx())
    assert len(res.selected_fields) == 3 and {"select", "retrain", } <= set(c.stage_times)
    assert "search" in c.train_results and "retrain" in c.train_results
    params = count_parameters(res.model)
    assert params["embedding"] == 3 * 8 * 4   # 3 kept fields x vocab 8 x dim 4 (the test backbone)
    assert res.model(torch.as_tensor(data.test.X[:16], dtype=torch.long)).shape == (16,)


@pytest.mark.parametrize("name", ["adafs-e2e", "mvfs-e2e"])
def test_end_to_end_variants_serve_the_gated_model(reg, data, name):
    res = reg.method(name).from_overrides({**FAST, "epochs": 2}).fit(data, c := ctx())
    assert "train" in c.stage_times and "retrain" not in c.stage_times
    assert res.extra["end_to_end"] and res.selected_fields == [f.name for f in data.fields]
    assert set(res.field_scores) == set(res.selected_fields)
    X = torch.as_tensor(data.test.X[:16], dtype=torch.long)
    out = res.model(X)
    assert out.shape == (16,) and torch.isfinite(out).all()
    assert count_parameters(res.model)["embedding"] == len(data.fields) * 8 * 4


def test_adafs_hard_keeps_k_fields_per_sample(reg, data):
    from leanrec_selectors.gated import GatedModel

    res = reg.method("adafs-e2e").from_overrides({**FAST, "epochs": 1, "hard_k": 2}).fit(data, ctx())
    assert isinstance(res.model, GatedModel)
    w = res.model.eval().weights(torch.as_tensor(data.test.X[:32], dtype=torch.long))
    assert ((w > 0).sum(1) == 2).all()


def test_config_errors(reg):
    from leanrec.errors import ConfigError

    for name, bad in (("mi", {"correction": "x"}), ("chi2", {"score": "x"}), ("variance", {"smoothing": -1}),
                      ("lasso", {"n_lambdas": 1}), ("pca", {"representation": "x"}), ("mi", {"keep_ratio": 2})):
        with pytest.raises(ConfigError):
            reg.method(name).from_overrides(bad)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    try:
        from leanrec.data import load_dataset
    except ImportError:
        pytest.skip("leanrec.data.load_dataset not available")
    # Module scope: built before the function-scoped registry patch, so the real dataset registry is used.
    return load_dataset("synthetic", seed=0, overrides={"synthetic": {"n_rows": 20000}}, progress=False)


@pytest.mark.parametrize("name", STATISTICAL + ["lasso"])
def test_statistical_selectors_on_synthetic(reg, synthetic, name):
    """Planted informative fields above every pure-noise field (Zipf values, cardinalities 3..10k)."""
    rk = ranking_of(reg, name, synthetic, {"backbone": "tinydnn", "max_rows": 20000} if name == "lasso" else {})
    gt = synthetic.ground_truth
    assert max(rk.index(f) for f in gt["informative"]) < min(rk.index(f) for f in gt["noise"]), rk
    # Redundant near-copies carry the same marginal signal, so the top (informative + redundant) are exactly those.
    k = len(gt["informative"]) + len(gt["redundant"])
    assert ranking_quality(rk, gt, k=k, relevant=("informative", "redundant")) == {"precision": 1.0, "recall": 1.0}
