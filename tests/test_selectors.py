"""Every selector of the leanrec-selectors plugin, scored against planted ground truth (tiny_dataset, and the
synthetic dataset when the data layer provides it); end-to-end variants and the retrain on kept fields."""
from __future__ import annotations

import pytest
import torch

import leanrec.plugins
from leanrec.measure import count_parameters
from leanrec.selection import order_fields, ranking_quality
from leanrec.testing import tiny_dataset
from test_selection import ctx, make_registry

STATISTICAL = ["mi", "chi2", "variance"]
SHALLOW = ["lasso", "pca"]
LEARNED = ["adafs", "optfs", "lpfs", "mvfs"]
# Search settings small enough for a CPU test (the paper defaults are for real datasets): small batches,
# a constant LR, and LPFS' L1 strong enough to act within ~100 steps.
FAST = {"backbone": "tinydnn", "embedding_dim": 4, "batch_size": 128, "epochs": 6, "lr": 1e-2, "lr_decay": 1.0, "patience": 6, "k": 3}
# LPFS: proximal L1 shrinks every gate by lr * l1 per step; under protocol 2 every stage runs >= 100 steps
# (here ~115), so l1 = 2 (2.3 in all) leaves the informative gates open and closes the noise ones (l1 = 5, tuned
# for the old epoch budget that stopped near 40 steps, now closes every gate; l1 = 1 leaves them all open).
EXTRA = {"lpfs": {"l1": 2.0}, "pca": {"batch_size": 128, "epochs": 4, "lr": 1e-2}}


@pytest.fixture(autouse=True)
def reg(monkeypatch):
    torch.set_num_threads(1)
    r = make_registry()
    monkeypatch.setattr(leanrec.plugins, "registry", lambda: r)
    return r


@pytest.fixture(scope="module")
def data():
    return tiny_dataset(3000, n_informative=3, n_noise=4, vocab=8, seed=1)


def scores_of(reg, name, data, overrides, seed=0):
    method = reg.method(name).from_overrides(overrides)
    c = ctx()
    c.seed = seed
    torch.manual_seed(seed)
    return method.rank(data, c)


def ranking_of(reg, name, data, overrides, seed=0):
    return order_fields(scores_of(reg, name, data, overrides, seed), [f.name for f in data.fields])


def test_all_selectors_registered(reg):
    for name in STATISTICAL + SHALLOW + LEARNED + ["autofield", "adafs-e2e", "mvfs-e2e"]:
        cls = reg.method(name)
        assert cls.family == "selector" and cls.paper and cls.__doc__


@pytest.mark.parametrize("name", STATISTICAL + SHALLOW)
def test_filters_put_informative_above_noise(reg, data, name):
    over = {"backbone": "tinydnn", **EXTRA.get(name, {})}
    scores = scores_of(reg, name, data, over)
    rk = order_fields(scores, [f.name for f in data.fields])
    gt = data.ground_truth
    # strict on the scores themselves: ties would otherwise fall back to column order (informative first)
    assert min(scores[f] for f in gt["informative"]) > max(scores[f] for f in gt["noise"]), scores
    assert ranking_quality(rk, gt, k=3, relevant=("informative",)) == {"precision": 1.0, "recall": 1.0}


@pytest.mark.parametrize("name", LEARNED)
def test_learned_selectors_beat_chance(reg, data, name):
    gt = data.ground_truth
    aucs = [score_auc(scores_of(reg, name, data, {**FAST, **EXTRA.get(name, {})}, seed), gt["informative"],
                      gt["noise"]) for seed in (0, 1)]
    assert sum(aucs) / len(aucs) >= 0.8, aucs   # chance = 0.5


def score_auc(scores, positives, negatives):
    """P(score of a positive field > score of a negative one), ties counting 1/2: unlike ranking_auc on
    order_fields' ranking, a selector whose scores never move (all tied) gets chance, 0.5, instead of the
    column order's 1.0 (tiny_dataset puts the informative fields first)."""
    return sum((scores[p] > scores[n]) + 0.5 * (scores[p] == scores[n]) for p in positives for n in negatives) / (
        len(positives) * len(negatives))


# AutoField at test scale: the ERASE schedule (Adam on the logits, update every 10 steps, tau -5e-5/step,
# batch 4096) spans ~20k steps; ~100 steps of batch 128 leave the gates moved by noise (ranking AUC 0.33-1.0
# over seeds). Batch 32 (~300 steps), a gate update every 2 steps on 300 validation rows (drawn with replacement
# from the 300-row split: a low-variance gradient), arch_lr 0.03 and tau reaching its floor in ~200 steps. Measured
# (tiny_dataset seed 1, 8 seeds): mean ranking AUC 0.97, min 0.92; seed 2 of the data: 0.94, min 0.75.
AUTOFIELD_FAST = {**FAST, "batch_size": 32, "epochs": 4, "patience": 4, "update_frequency": 2,
                  "arch_batch_size": 300, "arch_lr": 0.03, "tau_decay": 5e-3}


def autofield_scores(reg, data, seed, overrides=AUTOFIELD_FAST):
    method = reg.method("autofield").from_overrides(overrides)
    c = ctx()
    c.seed = seed
    torch.manual_seed(seed)
    return method.rank(data, c)


def test_autofield_beats_chance(reg, data):
    """Mean over 3 seeds of the tie-aware ranking AUC (3 informative x 4 noise fields) >= 0.85. Chance is 0.5
    and a random ranking's 3-seed mean has sd 0.136 (Mann-Whitney, 12 pairs), so 0.85 is 2.6 sd above chance;
    the working implementation measures about 0.97. Frozen, sign-flipped or never-updated gates fail it."""
    gt = data.ground_truth
    scores = [autofield_scores(reg, data, seed) for seed in (0, 1, 2)]
    aucs = [score_auc(s, gt["informative"], gt["noise"]) for s in scores]
    assert sum(aucs) / len(aucs) >= 0.85, (aucs, scores)
    for s in scores:   # the gates moved away from their init (keep probability 0.5)
        assert max(abs(v - 0.5) for v in s.values()) > 0.1, s


def test_autofield_logits_only_move_on_validation_batches(reg, data):
    """First-order DARTS: the model optimiser does not hold the logits and training batches leave them alone;
    with update_frequency past the last step they keep their init."""
    over = {**AUTOFIELD_FAST, "epochs": 1, "update_frequency": 10**6}
    assert set(autofield_scores(reg, data, 0, over).values()) == {0.5}


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


@pytest.mark.parametrize("name,over", [(n, {}) for n in STATISTICAL] + [
    ("mi", {"correction": "shuffle"}), ("lasso", {"backbone": "tinydnn", "max_rows": 20000})])
def test_statistical_selectors_on_synthetic(reg, synthetic, name, over):
    """Planted informative fields above every pure-noise field (Zipf values, cardinalities 3..10k)."""
    rk = ranking_of(reg, name, synthetic, over)
    gt = synthetic.ground_truth
    assert max(rk.index(f) for f in gt["informative"]) < min(rk.index(f) for f in gt["noise"]), rk
    # Redundant near-copies carry the same marginal signal, so the top (informative + redundant) are exactly those.
    k = len(gt["informative"]) + len(gt["redundant"])
    assert ranking_quality(rk, gt, k=k, relevant=("informative", "redundant")) == {"precision": 1.0, "recall": 1.0}


def test_autofield_on_synthetic(reg, synthetic):
    """On the synthetic dataset (20k rows, Zipf values, cardinalities 3..10k) every planted informative field
    above every pure-noise field, or nearly: mean tie-aware AUC (5 informative x 10 noise) over 2 seeds >= 0.9,
    3.5 sd above a random ranking (sd 0.115 for the 2-seed mean). Measured 1.0 on seeds 0-3 (batch 256,
    2 epochs, ~125 gate updates on 2000 validation rows)."""
    over = {**AUTOFIELD_FAST, "batch_size": 256, "epochs": 2, "patience": 2, "arch_batch_size": 2000}
    gt = synthetic.ground_truth
    aucs = [score_auc(autofield_scores(reg, synthetic, seed, over), gt["informative"], gt["noise"]) for seed in (0, 1)]
    assert sum(aucs) / len(aucs) >= 0.9, aucs
