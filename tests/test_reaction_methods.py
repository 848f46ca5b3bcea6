"""REACTION methods: registration, the K-tower cohort's objective (eq. 14), the single-tower serving model."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from leanrec.context import Budget, RunContext
from leanrec.errors import ConfigError
from leanrec.measure import count_parameters
from leanrec.plugins import load_registry
from leanrec.testing import tiny_dataset
from leanrec.trainer import bce_loss
from leanrec_reaction import methods as M
from leanrec_reaction.model import ReactionNet, TowerCohort

NAMES = ["reaction-baseline", "reaction-er", "reaction-kd", "reaction-dtf", "reaction-afe", "reaction"]


@pytest.fixture(scope="module")
def ds():
    return tiny_dataset(n=1200, n_labels=2, seed=1)


def ctx() -> RunContext:
    return RunContext(device=torch.device("cpu"), seed=0, budget=Budget(max_epochs=1), progress=False)


@pytest.fixture
def oracle_afe(monkeypatch):
    """AFE statistics from the Rust engine, or from the scikit-learn oracle where the engine is not built."""
    try:
        import leanrec.stats  # noqa: F401
    except ImportError:
        from test_reaction_afe import oracle_statistics

        monkeypatch.setattr(M, "afe_statistics", oracle_statistics)


def test_registered_through_entry_point():
    reg = load_registry()
    assert set(NAMES) <= set(reg.plugins["leanrec-reaction"].methods)
    for name in NAMES:
        cls = reg.method(name)
        assert "REACTION" in (cls.paper + (cls.__doc__ or ""))
    assert reg.method("reaction-baseline").is_baseline


def test_config_validation():
    assert M.Reaction.from_overrides({"towers": [[80, 80, 80], [240], [120, 120, 120]]}).config.towers[2] == (
        120, 120, 120)
    with pytest.raises(ConfigError):
        M.ReactionDTF.from_overrides({"towers": [[80, 80]]})          # one tower
    with pytest.raises(ConfigError):
        M.ReactionDTF.from_overrides({"towers": [[80], [100]]})      # 80 not divisible into 3 positions
    with pytest.raises(ConfigError):
        M.ReactionDTF.from_overrides({"serve": "2"})
    with pytest.raises(ConfigError):
        M.ReactionAFE.from_overrides({"keep_ratio": 0})
    with pytest.raises(ConfigError):
        M.ReactionBaseline.from_overrides({"alpha": 1.0})            # a DTF key on a single-tower variant


def test_feature_maps_follow_methods_md(ds):
    cohort = TowerCohort(M.field_specs(ds), 16, ((80, 80, 80), (240,)), 3)
    X = torch.from_numpy(ds.train.X[:5])
    maps, logits = cohort.run_towers(X)
    assert [tuple(m.shape) for m in maps] == [(5, 3, 80), (5, 3, 80)] and logits.shape == (5, 2)
    # tower 1's positions are its three hidden layers; tower 2's 240 units reshaped into 3 x 80
    emb = cohort.embed(X).emb.flatten(1)
    h1 = torch.relu(cohort.mlps[0].net[0](emb))
    assert torch.allclose(maps[0][:, 0], h1)
    assert torch.allclose(maps[1].reshape(5, 240), torch.relu(cohort.mlps[1].net[0](emb)))
    assert [tuple(W.weight.shape) for W in cohort.proj] == [(80, 80)]


@pytest.mark.parametrize("towers", [((80, 80, 80), (240,)), ((30, 30, 30), (90,), (60, 60, 60))])
def test_objective_is_sum_of_eq14_over_towers(ds, towers):
    method = M.ReactionDTF.from_overrides({"towers": [list(t) for t in towers], "alpha": 0.7, "beta": 0.3,
                                           "gamma": 0.2, "m1": 0.05, "m2": 0.1, "tau": 0.5})
    c = method.config
    torch.manual_seed(0)
    cohort = TowerCohort(M.field_specs(ds), 16, towers, 3)
    X, y = torch.from_numpy(ds.train.X[:64]), torch.from_numpy(ds.train.y[:64])
    got = method.fusion_loss_fn()(cohort, X, y)
    maps, logits = cohort.run_towers(X)
    terms = cohort.fusion_terms(maps, c.m1, c.m2, c.tau)
    K = len(towers)
    expected = 0.0
    for k in range(K):  # L_{S_k} = CE_k + mean over k's partners of (alpha srf + beta rff + gamma contra)
        pairs = [p for p in terms if k in p]
        fusion = sum(c.alpha * terms[p]["srf"] + c.beta * terms[p]["rff"] + c.gamma * terms[p]["contra"]
                     for p in pairs) / len(pairs)
        expected = expected + F.binary_cross_entropy_with_logits(logits[:, k], y[:, 0]) + fusion
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    got.backward()
    assert all(W.weight.grad is not None and W.weight.grad.abs().sum() > 0 for W in cohort.proj)


def _single_tower_params(n_fields: int, vocab: int, d: int, hidden: tuple[int, ...]) -> int:
    dims = [n_fields * d, *hidden, 1]
    return n_fields * vocab * d + sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))


@pytest.mark.parametrize("serve", ["best", "0", "1"])
def test_dtf_serves_one_tower_only(ds, serve):
    res = M.ReactionDTF.from_overrides({"serve": serve}).fit(ds, ctx())
    model, extra = res.model, res.extra
    assert isinstance(model, ReactionNet) and not any(isinstance(m, TowerCohort) for m in model.modules())
    k = extra["served_tower"]
    aucs = extra["tower_valid_auc"]
    assert len(aucs) == 2 and (k == aucs.index(max(aucs)) if serve == "best" else k == int(serve))
    hidden = ((80, 80, 80), (240,))[k]
    counts = count_parameters(model)
    assert counts["total"] == _single_tower_params(len(ds.fields), 8, 16, hidden)
    assert counts["embedding"] == len(ds.fields) * 8 * 16
    out = model(torch.from_numpy(ds.test.X))
    assert out.shape == (len(ds.test.X),) and torch.isfinite(out).all()


def test_served_tower_equals_its_cohort_tower(ds):
    cohort = TowerCohort(M.field_specs(ds), 16, ((80, 80, 80), (240,)), 3).eval()
    X = torch.from_numpy(ds.valid.X)
    with torch.no_grad():
        both = cohort.tower_logits(X)
        for k in range(2):
            assert torch.allclose(cohort.tower(k)(X), both[:, k], atol=1e-6)


def test_reaction_selects_then_serves_one_tower_on_selected_fields(ds, oracle_afe):
    res = M.Reaction.from_overrides({"keep_ratio": 0.5}).fit(ds, ctx())
    F_sel = 4  # round(0.5 * 8)
    assert len(res.selected_fields) == F_sel and len(res.extra["afe"]["steps"]) == len(ds.fields)
    assert set(res.selected_fields) == set(res.extra["afe"]["selected"])
    hidden = res.extra["towers"][res.extra["served_tower"]]
    assert count_parameters(res.model)["total"] == _single_tower_params(F_sel, 8, 16, tuple(hidden))
    assert res.model(torch.from_numpy(ds.test.X)).shape == (len(ds.test.X),)   # takes the full dataset X
    assert set(res.field_scores) == {f.name for f in ds.fields}


@pytest.mark.parametrize("name", ["reaction-baseline", "reaction-er", "reaction-kd", "reaction-afe"])
def test_single_tower_variants_fit(ds, name, oracle_afe):
    res = load_registry().method(name).from_overrides({}).fit(ds, c := ctx())
    n_fields = len(res.selected_fields) if res.selected_fields else len(ds.fields)
    assert count_parameters(res.model)["total"] == _single_tower_params(n_fields, 8, 16, (80, 80, 80))
    assert "train" in c.stage_times
    if name == "reaction-kd":
        assert "teacher" in c.stage_times and 0 <= res.extra["teacher_valid_auc"] <= 1


def test_er_loss_changes_with_weight(ds):
    torch.manual_seed(0)
    net = ReactionNet(M.field_specs(ds))
    X, y = torch.from_numpy(ds.train.X[:32]), torch.from_numpy(ds.train.y[:32])
    base = bce_loss(net, X, y)   # the baseline's loss (the trainer's default)
    er = M.ReactionER.from_overrides({"er_weight": 0.5}).loss_fn(None, ds, [], [])(net, X, y)
    from leanrec_reaction.losses import binary_entropy_from_logits

    assert er.item() == pytest.approx(base.item() - 0.5 * binary_entropy_from_logits(net(X)).mean().item(),
                                      rel=1e-6)


def test_dtf_hands_every_tower_and_the_ensemble_to_the_harness(ds):
    res = M.ReactionDTF.from_overrides({}).fit(ds, ctx())
    assert set(res.companions) == {"tower0", "tower1", "ensemble"}
    X = torch.from_numpy(ds.test.X)
    with torch.no_grad():
        towers = torch.stack([res.companions[f"tower{k}"].eval()(X) for k in range(2)], dim=1)
        assert torch.allclose(res.companions["ensemble"].eval()(X), towers.mean(dim=1), atol=1e-5)
        assert torch.allclose(res.model(X), towers[:, res.extra["served_tower"]], atol=1e-6)


def test_the_runner_scores_companions_on_test(tmp_path):
    """The served tower's companion score is the record's own test AUC (the same model on the same rows)."""
    from pathlib import Path

    import leanrec
    from leanrec.runner import parse_method, run_grid

    card = Path(leanrec.__file__).parent / "datasets" / "synthetic.toml"
    data = {"synthetic": {"n_rows": 3000}}
    (rec,) = run_grid([str(card)], [parse_method("reaction-dtf")], [0], tmp_path, budget=Budget(max_steps=100),
                      data_overrides=data, progress=False)
    assert rec["status"] == "ok", rec.get("error")
    comp = rec["metrics"]["companions"]
    assert set(comp) == {"tower0", "tower1", "ensemble"}
    assert comp[f"tower{rec['extra']['served_tower']}"]["auc"] == pytest.approx(rec["metrics"]["auc"], abs=1e-12)
    assert all(0.5 < c["auc"] <= 1 and c["logloss"] > 0 for c in comp.values())
    other = comp[f"tower{1 - rec['extra']['served_tower']}"]["auc"]
    assert other != rec["metrics"]["auc"]   # a different model: scored separately, not a copy of the served one


def test_a_selector_on_the_reaction_baseline_retrains_afes_tower(ds, oracle_afe):
    """REACTION's Table 4 compares selectors on one baseline: a selector with backbone=reaction-baseline that
    keeps AFE's fields trains exactly reaction-afe's tower (same architecture, init, batches, weights)."""
    from leanrec.context import seed_everything
    from leanrec.selection import SelectorMethod

    seed_everything(0)
    afe = M.ReactionAFE.from_overrides({"keep_ratio": 0.5}).fit(ds, ctx())
    kept = afe.selected_fields

    class Fixed(SelectorMethod):   # ranks AFE's fields first; draws nothing from the RNG
        name = "fixed"

        def rank(self, data, ctx):
            return {f.name: float(f.name in kept) for f in data.fields}

    seed_everything(0)
    sel = Fixed.from_overrides({"backbone": "reaction-baseline", "embedding_dim": 16, "k": len(kept)}).fit(ds, ctx())
    assert sel.selected_fields == kept
    assert isinstance(sel.model, ReactionNet) and sel.model.hidden == (80, 80, 80)
    a, b = afe.model.state_dict(), sel.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_baseline_as_a_backbone_trains_the_single_tower_path_exactly(ds, oracle_afe):
    """reaction-baseline became a BackboneMethod (built and trained by the shared backbone path); AFE keeping
    every field still goes through the single-tower path it used before: the same weights, bit for bit."""
    from leanrec.context import seed_everything

    seed_everything(0)
    backbone = M.ReactionBaseline().fit(ds, ctx()).model
    seed_everything(0)
    tower = M.ReactionAFE.from_overrides({"keep_ratio": 1.0}).fit(ds, ctx()).model
    a, b = backbone.state_dict(), tower.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
