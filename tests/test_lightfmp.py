"""Light-FMP plugin (issue 9): hard-concrete gates, Lagrangian constraint, pruning with weight transfer, fit."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from leanrec.context import Budget, RunContext
from leanrec.errors import ConfigError
from leanrec.methods import BackboneMethod, MethodConfig, field_specs, get_backbone
from leanrec.nn import MLP, CTRModel, FactorizationMachine, FieldSpec, field_columns
from leanrec.testing import tiny_dataset

import leanrec_lightfmp.method as lm
from leanrec_lightfmp import HardConcreteGate, Lagrangian, LightFMP, keep_count, prune, rank_fields, stratified_subset
from leanrec_lightfmp.method import BACKBONE_VARIANTS, GatedModel, masked_weights

PAPER_BACKBONES = ["dnn", "deepfm", "wide-deep", "ipnn", "xdeepfm"]
# Backbones where a zero field still changes the output (softmax attention over fields, token mixing over a
# fixed field count), so dropping a field is weight transfer but not the masked function: checked for shape and
# parameter shrinkage only.
NOT_MASK_EQUIVALENT = {"autoint-plus", "wukong"}


class ToyNet(CTRModel):
    """Linear + FM + MLP over flattened embeddings: exercises the linear table, the (B, F, d) path and the MLP."""

    uses_linear = True

    def __init__(self, fields, embedding_dim=4, hidden=(8,)):
        super().__init__(fields, embedding_dim)
        self.fm = FactorizationMachine()
        self.mlp = MLP(self.num_fields * embedding_dim, list(hidden))

    def interact(self, feats):
        return feats.linear.sum(1) + self.fm(feats.emb) + self.mlp(feats.emb.flatten(1)).squeeze(-1)

    def _transfer_fields(self, keep, old_dims):
        self.mlp.select_inputs(field_columns(old_dims, keep))


@dataclass
class ToyConfig(MethodConfig):
    embedding_dim: int = 4


class ToyBackbone(BackboneMethod):
    name = "toy-net"
    model_class = ToyNet
    Config = ToyConfig


def _fields(n=6, vocab=7):
    return [FieldSpec(f"f{i}", vocab) for i in range(n)]


# ---- hard-concrete gates --------------------------------------------------------------------------------
def test_sample_in_unit_interval_with_mass_at_both_ends():
    torch.manual_seed(0)
    gate = HardConcreteGate(5)
    with torch.no_grad():
        gate.log_alpha.copy_(torch.tensor([-2.0, -0.7, 0.0, 0.7, 2.0]))
        z = gate.sample((50_000,))
    assert z.shape == (50_000, 5) and z.min() >= 0 and z.max() <= 1
    p0, p1 = (z == 0).float().mean(0), (z == 1).float().mean(0)
    # Analytic point masses: P(z=0) = P(s_bar <= 0), P(z=1) = P(s_bar >= 1) (Louizos et al., 2018).
    la, b = gate.log_alpha.detach(), gate.beta
    want0 = torch.sigmoid(b * math.log(-gate.gamma / gate.zeta) - la)
    want1 = 1 - torch.sigmoid(b * math.log((1 - gate.gamma) / (gate.zeta - 1)) - la)
    assert torch.allclose(p0, want0, atol=0.01) and torch.allclose(p1, want1, atol=0.01)
    assert (p0 > 0.01).all() and (p1 > 0.01).all()              # exact 0s and exact 1s both occur
    assert ((z > 0) & (z < 1)).float().mean() > 0.2             # and a continuous part in between


def test_init_follows_paper_and_eval_gate_is_deterministic():
    torch.manual_seed(1)
    gate = HardConcreteGate(4000)
    alpha = gate.log_alpha.detach().exp()
    assert abs(alpha.mean() - 0.5) < 0.02 and abs(alpha.std() - 0.25) < 0.02 and (alpha > 0).all()
    gate.eval()
    assert torch.equal(gate(), gate()) and torch.equal(gate(), gate.deterministic())
    gate.train()
    assert not torch.equal(gate(), gate())


def test_expected_l0_matches_monte_carlo():
    torch.manual_seed(2)
    gate = HardConcreteGate(6)
    with torch.no_grad():
        gate.log_alpha.copy_(torch.tensor([-4.0, -1.5, -0.5, 0.3, 1.0, 3.0]))
        mc = (gate.sample((200_000,)) > 0).float().mean(0)
    assert torch.allclose(gate.expected_l0(), mc, atol=0.005)
    # and it is differentiable (the "expected_l0" constraint needs gradients)
    gate.expected_l0().sum().backward()
    assert gate.log_alpha.grad is not None and (gate.log_alpha.grad > 0).all()


@pytest.mark.parametrize("target", [0.3, 0.7])
def test_lagrangian_drives_mean_gate_to_target(target):
    """Toy problem: the task rewards open gates; only the Lagrangian (lambda, phi ascended) holds them at t."""
    torch.manual_seed(3)
    gate, lag = HardConcreteGate(10), Lagrangian()
    reward = torch.linspace(0.5, 1.5, 10)
    opt = torch.optim.Adam([{"params": [gate.log_alpha], "lr": 0.05},
                            {"params": list(lag.parameters()), "lr": 0.05, "maximize": True}])
    for _ in range(1500):
        z = gate.sample()
        loss = -(reward * z).mean() + lag(z.mean(), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mean_z = gate.sample((20_000,)).mean()
    assert abs(float(mean_z) - target) < 0.05
    assert float(lag.lambda_.detach()) > 0                                 # ascent made the multiplier push gates shut
    # Without the constraint the same task opens nearly every gate, so the check above can fail.
    gate2 = HardConcreteGate(10)
    opt2 = torch.optim.Adam([gate2.log_alpha], lr=0.05)
    for _ in range(300):
        loss = -(reward * gate2.sample()).mean()
        opt2.zero_grad()
        loss.backward()
        opt2.step()
    with torch.no_grad():
        assert gate2.sample((20_000,)).mean() > 0.9


def test_gated_model_optimizer_ascends_multipliers():
    torch.manual_seed(4)
    data = tiny_dataset(400, seed=4)
    model = ToyNet(field_specs(data))
    gated = GatedModel(model, HardConcreteGate(model.num_fields), target=0.2)
    opt = gated.optimizer(lm.LightFMPConfig())
    assert [g.get("maximize", False) for g in opt.param_groups][-1] is True
    X, y = torch.as_tensor(data.train.X[:64]), torch.as_tensor(data.train.y[:64])
    for _ in range(5):
        opt.zero_grad()
        gated.loss(X, y).backward()
        opt.step()
    # mean z (~0.4 at init) exceeds the target 0.2, so lambda must have grown and phi is never negative
    assert float(gated.lagrangian.lambda_.detach()) > 0 and float(gated.lagrangian.phi.detach()) > 0


def test_expected_l0_constraint_mode():
    model = ToyNet(_fields())
    gated = GatedModel(model, HardConcreteGate(model.num_fields), target=0.5, constraint="expected_l0")
    z = gated.gate.sample()
    assert torch.allclose(gated.constraint_value(z), gated.gate.expected_l0().mean())
    assert torch.allclose(GatedModel(model, gated.gate, 0.5).constraint_value(z), z.mean())


# ---- subset, keep count, ranking --------------------------------------------------------------------------
def test_stratified_subset_preserves_label_share():
    rng = np.random.default_rng(0)
    y = (rng.random(10_000) < 0.13).astype(np.float32)
    idx = stratified_subset(y, 2000, np.random.default_rng(1))
    assert len(idx) == 2000 == len(np.unique(idx))
    assert abs(y[idx].mean() - y.mean()) < 1e-3
    assert len(stratified_subset(y, 20_000, rng)) == 10_000


@pytest.mark.parametrize("m,tau,k", [(39, 0.5, 20), (10, 0.5, 5), (5, 0.5, 3), (8, 0.75, 2), (8, 0.0, 8),
                                     (3, 0.9, 1)])
def test_keep_count(m, tau, k):
    assert keep_count(m, tau) == k


def test_rank_breaks_clamped_ties_by_log_alpha():
    gate = HardConcreteGate(4)
    with torch.no_grad():
        gate.log_alpha.copy_(torch.tensor([3.0, 5.0, -6.0, -4.0]))   # gates 1, 1, 0, 0 after clamping
    assert rank_fields(gate) == [1, 0, 3, 2]


# ---- pruning == masking -------------------------------------------------------------------------------------
def _other_backbones() -> list[str]:
    try:
        from leanrec.plugins import load_registry

        reg = load_registry()
    except Exception:
        return []
    return sorted(n for n, e in reg.methods.items()
                  if isinstance(e.obj, type) and issubclass(e.obj, BackboneMethod) and n not in PAPER_BACKBONES)


def _backbones():
    """ToyNet always; every paper backbone (skipped until the zoo registers it); every other registered backbone."""
    yield "toy", lambda fields: ToyNet(fields)
    for name in PAPER_BACKBONES + _other_backbones():
        yield name, name


@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize("name,factory", list(_backbones()), ids=[n for n, _ in _backbones()])
def test_pruned_model_reproduces_masked_model(name, factory, fold):
    torch.manual_seed(5)
    fields = _fields()
    if isinstance(factory, str):
        try:
            bb = get_backbone(factory, {"embedding_dim": 4})
        except Exception as err:  # the baseline zoo is written concurrently
            pytest.skip(f"backbone {factory!r} not available: {err}")
        model = bb.build_model(fields)
        if name not in PAPER_BACKBONES and type(model)._transfer_fields is CTRModel._transfer_fields:
            pytest.skip(f"{name} does not support dropping fields")
    else:
        model = factory(fields)
    model.eval()
    gate = HardConcreteGate(len(fields))
    with torch.no_grad():  # open, clamped-open, fractional and shut gates
        gate.log_alpha.copy_(torch.tensor([4.0, -0.3, 0.8, -5.0, 0.1, -1.0]))
    keep = sorted(rank_fields(gate)[:3])
    assert keep == [0, 2, 4]
    pruned = prune(model, gate, keep, fold_gates=fold).eval()
    X = torch.randint(0, 7, (64, len(fields)), dtype=torch.int32)
    with torch.no_grad():
        want = model(X, field_weights=masked_weights(gate, keep, fold))
        got = pruned(X)
    assert got.shape == (64,) and torch.isfinite(got).all()
    if name not in NOT_MASK_EQUIVALENT:
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), (got - want).abs().max()
        # a masked model with a different keep set differs, so the comparison is not vacuous
        with torch.no_grad():
            other = model(X, field_weights=masked_weights(gate, [0, 1, 2], fold))
        assert not torch.allclose(got, other, atol=1e-6)
    # serving parameters shrink: the dropped fields' embedding rows are physically gone
    def emb(m):
        return sum(p.numel() for mod in m.modules() if isinstance(mod, torch.nn.Embedding) for p in mod.parameters())

    def total(m):
        return sum(p.numel() for p in m.parameters())

    per_field = emb(model) // len(fields)
    assert emb(pruned) == per_field * len(keep)
    assert total(pruned) < total(model)
    assert total(model) - total(pruned) >= per_field * (len(fields) - len(keep))
    assert pruned.input_index.tolist() == keep


def test_prune_without_weight_transfer_uses_fresh_model():
    torch.manual_seed(6)
    fields = _fields()
    model, gate = ToyNet(fields), HardConcreteGate(len(fields))
    fresh = ToyNet([fields[i] for i in (1, 3)])
    pruned = prune(model, gate, [3, 1], weight_transfer=False, fresh=fresh)
    assert pruned is fresh and pruned.input_index.tolist() == [1, 3]
    assert not torch.equal(pruned.embedding.field_rows(0), model.embedding.field_rows(1))
    with pytest.raises(ValueError):
        prune(model, gate, [1], weight_transfer=False)


# ---- config and registration --------------------------------------------------------------------------------
def test_config_validation_and_variants():
    assert LightFMP.from_overrides({}).config.prune_ratio == 0.5
    assert LightFMP.from_overrides({}).config.pretrain_rows == 2000
    for bad in ({"prune_ratio": 1.0}, {"prune_ratio": -0.1}, {"constraint": "l1"}, {"pretrain_rows": 0},
                {"zeta": 0.9}, {"pretrain_select": "first"}, {"no_such_key": 1}):
        with pytest.raises(ConfigError):
            LightFMP.from_overrides(bad)
    for bb, cls in BACKBONE_VARIANTS.items():
        assert cls.name == f"lightfmp-{bb}" and cls.from_overrides({}).config.backbone == bb
        assert cls.__doc__ and "Light-FMP" in cls.__doc__
    cfg = LightFMP.from_overrides({"backbone_config": '{"hidden": [8]}', "weight_transfer": "false"}).config
    assert cfg.backbone_config == {"hidden": [8]} and cfg.weight_transfer is False


def test_registered_through_entry_point():
    from leanrec.plugins import load_registry

    reg = load_registry()
    assert reg.method("lightfmp") is LightFMP
    for bb in ("deepfm", "wide-deep", "ipnn", "xdeepfm"):
        assert reg.method(f"lightfmp-{bb}") is BACKBONE_VARIANTS[bb]


# ---- end to end -------------------------------------------------------------------------------------------
@pytest.fixture
def toy_backbone(monkeypatch):
    monkeypatch.setattr(LightFMP, "backbone_method",
                        lambda self: ToyBackbone.from_overrides({"embedding_dim": 4}))


def _fit(overrides, seed=1, n=2000):
    data = tiny_dataset(n, n_informative=3, n_noise=3, interaction=False, seed=seed)
    ctx = RunContext(device=torch.device("cpu"), seed=seed, budget=Budget(), progress=False)
    torch.manual_seed(seed)
    method = LightFMP.from_overrides({"epochs": 2, "batch_size": 256, "pretrain_batch_size": 100,
                                      "pretrain_epochs": 30, "pretrain_rows": 600, "pretrain_valid_rows": 100,
                                      **overrides})
    return data, ctx, method.fit(data, ctx)


def test_fit_end_to_end(toy_backbone):
    # The gate mechanism itself: every pretraining epoch runs ("last"), at a higher backbone LR so 180 steps
    # suffice on this small-vocabulary toy (the default "best" mode is exercised below).
    data, ctx, res = _fit({"prune_ratio": 0.5, "pretrain_select": "last", "pretrain_lr": 1e-2})
    names = [f.name for f in data.fields]
    assert len(res.selected_fields) == keep_count(len(names), 0.5) == 3
    # the planted informative fields survive (the noise fields carry no signal)
    assert set(data.ground_truth["informative"]) <= set(res.selected_fields), res.extra["ranking"]
    X = torch.as_tensor(data.test.X)
    assert res.model(X).shape == (len(X),)
    assert [f.name for f in res.model.fields] == res.selected_fields
    assert set(ctx.stage_times) >= {"pretrain", "prune", "continue"}
    ex = res.extra
    assert ex["TT"] == pytest.approx(ex["PT"] + ex["prune_time"] + ex["CT"])
    assert ex["pretrain_rows"] == 600 and ex["continue_rows"] == len(data.train.X) - 600
    assert ctx.train_results["pretrain"].epochs_run == 30          # "last": every pretraining epoch runs
    assert set(ctx.train_results) == {"pretrain", "continue"}
    assert ex["lambda"] != 0.0 and ex["phi"] > 0


def test_fit_weight_transfer_ablation_and_guard(toy_backbone):
    _, ctx, res = _fit({"prune_ratio": 0.25, "weight_transfer": False, "pretrain_epochs": 3, "epochs": 1,
                        "pretrain_select": "best", "pretrain_patience": 1}, n=800)
    assert len(res.selected_fields) == keep_count(6, 0.25) == 5
    assert ctx.train_results["pretrain"].steps == 100   # 3 epochs of 6 steps, raised to the protocol floor
    with pytest.raises(ConfigError):
        _fit({"pretrain_rows": 5000}, n=800)
