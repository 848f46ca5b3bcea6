"""i-Razor (plugin leanrec-irazor): region masks, CPT pruning, the regulariser, search + retrain end to end."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

import leanrec.methods

pytest.importorskip("leanrec_irazor")

from leanrec.context import RunContext
from leanrec.errors import ConfigError
from leanrec.methods import BackboneMethod, MethodConfig, field_specs, make_config
from leanrec.nn import MLP, CTRModel, FactorizationMachine, FieldSpec
from leanrec.testing import tiny_dataset
from leanrec_irazor import (IRazor, IRazorArgmax, IRazorFDE, IRazorSearch, IRazorTransfer, ProjectedFieldEmbedding,
                            cardinality_shares, cpt_prune, region_masks, region_widths, resolve_candidates)
from leanrec_irazor.method import build_retrain_model, derive_dims


# ---- small backbones standing in for the zoo (a mixed-dim MLP and a uniform-dim FM with linear terms) -----
class _TinyDNN(CTRModel):
    supports_mixed_dims = True

    def __init__(self, fields, embedding_dim=4, hidden=(16,), init_std=1e-2):
        super().__init__(fields, embedding_dim, init_std)
        self.mlp = MLP(self.embedding.output_dim, list(hidden))

    def interact(self, feats):
        return self.mlp(feats.emb.flatten(1)).squeeze(-1)


class _TinyFM(CTRModel):
    uses_linear = True

    def __init__(self, fields, embedding_dim=4, init_std=1e-2):
        super().__init__(fields, embedding_dim, init_std)
        self.fm = FactorizationMachine()
        self.bias = torch.nn.Parameter(torch.zeros(()))

    def interact(self, feats):
        return self.bias + feats.linear.sum(1) + self.fm(feats.emb)


@dataclass
class _DNNConfig(MethodConfig):
    hidden: tuple[int, ...] = (16,)


class _DNNMethod(BackboneMethod):
    name, model_class, Config = "tiny-dnn", _TinyDNN, _DNNConfig


class _FMMethod(BackboneMethod):
    name, model_class = "tiny-fm", _TinyFM


_BACKBONES = {"dnn": _DNNMethod, "fm": _FMMethod}
REAL_GET_BACKBONE = leanrec.methods.get_backbone


@pytest.fixture(autouse=True)
def _tiny_backbones(monkeypatch):
    monkeypatch.setattr(leanrec.methods, "get_backbone",
                        lambda name, overrides=None: _BACKBONES[name].from_overrides(overrides))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only contend on the shared machine
    yield
    torch.set_num_threads(threads)


def _ctx(seed=0):
    torch.manual_seed(seed)
    return RunContext(device=torch.device("cpu"), seed=seed, progress=False)


# ---- search space ---------------------------------------------------------------------------------------
def test_default_candidates_give_the_papers_region_widths():
    assert region_widths(resolve_candidates((0, 1, 2, 4, 8, 16, 30))) == [0, 1, 1, 2, 4, 8, 14]
    assert resolve_candidates((1, 3, 6, 10), zero_dim=True) == [0, 1, 3, 6, 10]
    assert resolve_candidates((0, 1, 3, 6, 10), zero_dim=False) == [1, 3, 6, 10]
    with pytest.raises(ConfigError):
        resolve_candidates((0,))


@pytest.mark.parametrize("cand", [[0, 1, 2, 4, 8, 16, 30], [0, 1, 3, 6], [1, 3, 6, 10], [0, 4, 8, 12]])
def test_region_masks_partition_the_embedding(cand):
    masks = region_masks(cand)
    assert masks.shape == (len(cand), cand[-1])
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(masks.sum(0), torch.ones(cand[-1]))          # every position in exactly one region
    assert masks.sum(1).tolist() == region_widths(cand)             # region k has width c_k
    for k in range(1, len(cand)):                                   # and covers [d_{k-1}, d_k)
        lo = cand[k - 1]
        assert masks[k, lo:cand[k]].all() and masks[k].sum() == cand[k] - lo


# ---- CPT pruning (Algorithm 1) --------------------------------------------------------------------------
def test_paper_worked_example_five_dims_from_candidates_0_1_3_6():
    # Regions of {0,1,3,6} have widths 0,1,2,3; keeping the third (2) and fourth (3) gives 5, not a candidate.
    probs = np.array([[0.05, 0.10, 0.40, 0.45]])
    assert cpt_prune(probs, [0, 1, 3, 6], 0.8).tolist() == [5]
    assert cpt_prune(probs, [0, 1, 3, 6], 0.4).tolist() == [3]      # 0.45 < 0.4 fails -> only region 4
    assert cpt_prune(probs, [0, 1, 3, 6], 0.3).tolist() == [3]


def test_cpt_drops_fields_dominated_by_the_zero_region():
    probs = np.array([[0.70, 0.15, 0.10, 0.05], [0.50, 0.05, 0.05, 0.40]])
    assert cpt_prune(probs, [0, 1, 3, 6], 0.5).tolist() == [0, 0]
    assert cpt_prune(probs, [0, 1, 3, 6], 0.8).tolist() == [1, 3]   # zero region adds 0 dims, next regions add


def test_cpt_zero_equals_argmax():
    rng = np.random.default_rng(0)
    cand = [0, 1, 2, 4, 8, 16, 30]
    probs = rng.dirichlet(np.ones(len(cand)) * 0.5, size=200)
    widths = np.asarray(region_widths(cand))
    assert np.array_equal(cpt_prune(probs, cand, 0.0), widths[probs.argmax(1)])


def test_cpt_one_keeps_every_region_even_with_underflowed_probabilities():
    cand = [0, 1, 2, 4, 8, 16, 30]
    logits = torch.tensor([[0.0, 9.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]])
    probs = torch.softmax(logits / 0.05, dim=1).float()           # row 0: other regions underflow to 0
    assert (probs[0] == 0).sum() > 0
    assert cpt_prune(probs, cand, 1.0).tolist() == [30, 30]


def test_cpt_is_monotone_in_the_threshold():
    rng = np.random.default_rng(1)
    cand = [0, 1, 3, 6, 10]
    probs = rng.dirichlet(np.ones(len(cand)), size=100)
    prev = cpt_prune(probs, cand, 0.0)
    for cpt in np.linspace(0.05, 1.0, 20):
        cur = cpt_prune(probs, cand, float(cpt))
        # A larger threshold never removes a region: the taken set grows, so dims never decrease.
        assert (cur >= prev).all()
        prev = cur


def test_derive_dims_keeps_one_field_when_everything_is_pruned():
    probs = np.array([[0.9, 0.05, 0.05], [0.6, 0.1, 0.3]])
    dims, fallback = derive_dims(probs, [0, 1, 3], 0.0)
    assert fallback and dims.tolist() == [0, 2]


# ---- the search model -----------------------------------------------------------------------------------
def test_regulariser_weights_follow_field_cardinalities():
    assert torch.allclose(cardinality_shares([10, 30, 60]), torch.tensor([0.1, 0.3, 0.6]))
    fields = [FieldSpec(f"f{i}", 5) for i in range(3)]
    cand = [0, 1, 3, 6]
    search = IRazorSearch(_TinyDNN(fields, 6), cand, 0.05, cardinalities=[10, 30, 60])
    with torch.no_grad():
        search.arch_logits.copy_(torch.tensor([[5.0, 0, 0, 0], [0, 0, 0, 5.0], [0, 0, 5.0, 0]]))
    # alpha is (almost) one-hot: expected dims 0, 3, 2 weighted by 0.1, 0.3, 0.6
    assert search.param_regulariser().item() == pytest.approx(0.3 * 3 + 0.6 * 2, rel=1e-6)
    # Moving probability mass in a high-cardinality field costs more than in a low-cardinality one.
    grad = torch.autograd.grad(search.param_regulariser(), search.arch_logits)[0]
    with torch.no_grad():
        search.arch_logits.zero_()
    g = torch.autograd.grad(search.param_regulariser(), search.arch_logits)[0]
    assert torch.allclose(g[1] / g[0], torch.tensor(3.0)) and torch.allclose(g[2] / g[0], torch.tensor(6.0))
    assert grad.shape == (3, 4)


def test_search_forward_masks_regions_after_batch_norm():
    fields = [FieldSpec(f"f{i}", 7) for i in range(4)]
    cand = [0, 1, 3, 6]
    search = IRazorSearch(_TinyDNN(fields, 6), cand, 0.05, [7] * 4)
    captured = {}
    search.backbone.interact = lambda feats: captured.setdefault("emb", feats.emb).sum((1, 2))
    with torch.no_grad():  # field 0 -> region 0 (dropped), field 1 -> region 3 (positions 3..5)
        search.arch_logits.copy_(torch.tensor([[9.0, 0, 0, 0], [0, 0, 0, 9.0], [0, 0, 0, 0], [0, 9.0, 0, 0]]))
    X = torch.randint(0, 7, (64, 4))
    search.train()
    search(X)
    emb = captured["emb"]
    assert emb.shape == (64, 4, 6)
    assert emb[:, 0].abs().max() < 1e-6
    assert emb[:, 1, :3].abs().max() < 1e-6 and emb[:, 1, 3:].std() > 0.5
    assert emb[:, 3, 1:].abs().max() < 1e-6
    # batch statistics: every kept position is standardised over the batch
    assert emb[:, 1, 3:].mean(0).abs().max() < 1e-4
    # field 2 has uniform logits: every position is its batch-standardised value times 1/K
    raw = search.backbone.embed(X).emb[:, 2].detach()
    ref = (raw - raw.mean(0)) / torch.sqrt(raw.var(0, unbiased=False) + search.bn.eps) / 4
    assert torch.allclose(emb[:, 2], ref, atol=1e-5)


def test_search_gates_linear_terms_by_the_keep_probability():
    fields = [FieldSpec(f"f{i}", 5) for i in range(2)]
    search = IRazorSearch(_TinyFM(fields, 6), [0, 1, 3, 6], 0.05, [5, 5])
    with torch.no_grad():
        search.arch_logits.copy_(torch.tensor([[9.0, 0, 0, 0], [0, 9.0, 0, 0]]))
    seen = {}
    search.backbone.interact = lambda feats: seen.setdefault("lin", feats.linear).sum(1)
    X = torch.randint(0, 5, (8, 2))
    search(X)
    raw = search.backbone.embed(X).linear
    assert seen["lin"][:, 0].abs().max() < 1e-6 and torch.allclose(seen["lin"][:, 1], raw[:, 1], atol=1e-6)


# ---- retraining models ----------------------------------------------------------------------------------
def test_retrain_model_has_mixed_dims_and_reads_only_kept_columns():
    fields = [FieldSpec(f"f{i}", 5 + i) for i in range(4)]
    model = build_retrain_model(_DNNMethod(), fields, [3, 0, 5, 1], projection_dim=6)
    assert model.embedding.dims == [3, 5, 1] and [f.name for f in model.fields] == ["f0", "f2", "f3"]
    n_emb = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters())
    assert n_emb == 5 * 3 + 7 * 5 + 8 * 1
    X = torch.randint(0, 5, (10, 4))
    X2 = X.clone()
    X2[:, 1] = 4  # the dropped column must not matter
    assert torch.equal(model(X), model(X2)) and model(X).shape == (10,)


def test_uniform_backbone_gets_per_field_projection():
    fields = [FieldSpec(f"f{i}", 6) for i in range(4)]
    model = build_retrain_model(_FMMethod(), fields, [3, 0, 5, 1], projection_dim=6)
    assert isinstance(model.embedding, ProjectedFieldEmbedding)
    assert model.embedding.inner.dims == [3, 5, 1] and model.linear_embedding.dims == [1, 1, 1]
    emb_params = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters())
    assert emb_params == 6 * (3 + 5 + 1) + 6 * 3            # searched tables + linear terms, nothing of dim 6
    proj = model.embedding
    assert proj.weight.shape == (9, 6) and proj.bias.shape == (3, 6)
    X = torch.randint(0, 6, (5, 4))
    out = proj(X[:, [0, 2, 3]])
    assert out.shape == (5, 3, 6)
    # equals a separate Linear(d_f -> 6) per field
    flat, start = proj.inner(X[:, [0, 2, 3]]), 0
    for f, d in enumerate([3, 5, 1]):
        ref = flat[:, start:start + d] @ proj.weight[start:start + d] + proj.bias[f]
        assert torch.allclose(out[:, f], ref, atol=1e-6)
        start += d
    assert model(X).shape == (5,)
    # uniform searched dims need no projection
    assert not isinstance(build_retrain_model(_FMMethod(), fields, [2, 2, 0, 2], 6).embedding,
                          ProjectedFieldEmbedding)


def test_zoo_backbones_search_and_retrain_shapes():
    """The real zoo (leanrec-baselines): DNN takes mixed dims, FM-style interaction models get projections."""
    from leanrec.errors import UnknownNameError
    get_backbone = REAL_GET_BACKBONE  # the fixture patches the module attribute

    try:
        get_backbone("dnn")
    except UnknownNameError:
        pytest.skip("leanrec-baselines is not installed")
    fields = [FieldSpec(f"f{i}", 6) for i in range(4)]
    X = torch.randint(0, 6, (8, 4))
    dnn = build_retrain_model(get_backbone("dnn", {"hidden": [8]}), fields, [3, 0, 5, 1], 6)
    assert not isinstance(dnn.embedding, ProjectedFieldEmbedding) and dnn.embedding.dims == [3, 5, 1]
    assert dnn(X).shape == (8,)
    for name in ("deepfm", "ipnn", "xdeepfm"):
        backbone = get_backbone(name, {"hidden": [8]})
        model = build_retrain_model(backbone, fields, [3, 0, 5, 1], 6)
        assert isinstance(model.embedding, ProjectedFieldEmbedding), name
        assert model(X).shape == (8,), name
        search = IRazorSearch(backbone.build_model(fields, embedding_dim=6), [0, 1, 3, 6], 0.05, [6] * 4)
        assert search(X).shape == (8,), name


# ---- config and registration ----------------------------------------------------------------------------
def test_config_defaults_and_validation():
    cfg = IRazor().config
    assert (cfg.tau, cfg.reg_lambda, cfg.backbone, tuple(cfg.candidates)) == (0.05, 1e-4, "dnn",
                                                                              (0, 1, 2, 4, 8, 16, 30))
    assert IRazorArgmax().config.cpt == 0.0 and IRazorArgmax.name == "irazor-argmax"
    assert make_config(IRazor.Config, {"candidates": "[0,1,3,6]", "zero_dim": "false"}).candidates == (0, 1, 3, 6)
    for bad in ({"cpt": 1.5}, {"tau": 0}, {"candidates": [0]}, {"nope": 1}, {"backbone_config": {"lr": 0.1}},
                {"backbone_config": {"embedding_dim": 4}}):
        with pytest.raises(ConfigError):
            make_config(IRazor.Config, bad)


def test_plugin_registers_both_names():
    from leanrec.plugins import load_registry
    import leanrec_irazor.plugin as plugin

    reg = load_registry([plugin], entry_points=False)
    assert reg.method("irazor") is IRazor and reg.method("irazor-argmax") is IRazorArgmax
    assert reg.method("irazor-transfer") is IRazorTransfer and reg.method("irazor-fde") is IRazorFDE


# ---- end to end -----------------------------------------------------------------------------------------
_FAST = dict(epochs=3, batch_size=256, lr=5e-3, patience=1, backbone_config={"hidden": [16]})


def test_search_and_retrain_end_to_end_on_tiny_data():
    data = tiny_dataset(2000, n_informative=2, n_noise=2, seed=0)
    method = IRazor.from_overrides({**_FAST, "candidates": [0, 1, 3, 6], "cpt": 0.5})
    ctx = _ctx()
    result = method.fit(data, ctx)
    assert set(ctx.stage_times) == {"search", "prune", "retrain"}
    assert set(ctx.train_results) == {"search", "retrain"}
    dims = result.extra["all_dims"]
    assert result.selected_fields == [n for n, d in dims.items() if d > 0]
    assert result.field_dims == {n: d for n, d in dims.items() if d > 0}
    assert result.extra["fields"] == len(result.selected_fields) and result.extra["dims"] == sum(dims.values())
    model = result.model
    emb_params = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters())
    assert emb_params == result.extra["embedding_params"]
    assert [f.name for f in model.fields] == result.selected_fields
    logits = model(torch.from_numpy(data.test.X))
    assert logits.shape == (len(data.test.X),) and torch.isfinite(logits).all()
    assert ctx.train_results["retrain"].best_valid_auc > 0.6


def test_argmax_variant_and_projection_backbone_run():
    data = tiny_dataset(1500, n_informative=2, n_noise=1, interaction=False, seed=1)
    res = IRazorArgmax.from_overrides({**_FAST, "epochs": 2, "backbone": "fm", "backbone_config": {},
                                       "candidates": [0, 1, 3, 6]}).fit(data, _ctx(1))
    assert all(d in (1, 2, 3) for d in res.field_dims.values())    # argmax: one region, width 1, 2 or 3
    assert res.model(torch.from_numpy(data.test.X)).shape == (len(data.test.X),)


def test_search_drops_noise_fields_more_often_than_informative_ones():
    """Over a few seeds the zero region wins more often on pure-noise fields than on informative ones."""
    dropped = {"informative": 0, "noise": 0}
    for seed in range(3):
        data = tiny_dataset(2000, n_informative=3, n_noise=3, interaction=False, seed=seed)
        # lambda above the paper's 1e-4: with 1.6k training rows and 3 epochs the BCE gradient alone barely
        # separates the zero region of a noise field from its other regions.
        method = IRazor.from_overrides({**_FAST, "candidates": [0, 1, 3, 6], "cpt": 0.5, "reg_lambda": 0.01})
        ctx = _ctx(seed)
        search_only = method.fit(data, ctx)
        for kind in dropped:
            dropped[kind] += sum(search_only.extra["all_dims"][n] == 0 for n in data.ground_truth[kind])
    assert dropped["noise"] > dropped["informative"], dropped
    # 9 fields of each kind: most noise fields go, (almost) no informative one does
    assert dropped["noise"] >= 6 and dropped["informative"] <= 1, dropped


def test_transfer_retrains_another_backbone_on_the_dnn_searched_configuration():
    """Table 7's 'MLP' config: irazor-transfer's search is i-Razor's search on the DNN (same seed: the same
    dims, field for field), and the backbone it serves is the other model, retrained on those dims."""
    data = tiny_dataset(1500, n_informative=2, n_noise=1, seed=2)
    over = {**_FAST, "epochs": 2, "candidates": [0, 1, 3, 6], "cpt": 0.5}
    own = IRazor.from_overrides(over).fit(data, _ctx(3))
    moved = IRazorTransfer.from_overrides({**over, "backbone": "fm", "backbone_config": {}}).fit(data, _ctx(3))
    assert moved.extra["all_dims"] == own.extra["all_dims"]
    assert moved.extra["search_backbone"] == _BACKBONES["dnn"].name and moved.extra["backbone"] == "fm"
    assert type(moved.model).__name__ == type(_FMMethod().build_model(field_specs(data))).__name__
    assert type(moved.model) is not type(own.model)
    same = IRazorTransfer.from_overrides(over).fit(data, _ctx(3))    # search and retrain on the DNN: i-Razor
    assert same.extra["all_dims"] == own.extra["all_dims"]
    torch.testing.assert_close(same.model(torch.from_numpy(data.test.X)), own.model(torch.from_numpy(data.test.X)),
                               rtol=0, atol=0)


def test_fde_variant_keeps_the_searched_fields_at_one_fixed_dim():
    """'i-Razor w/ FDE': the same search as i-Razor (same seed: the same kept fields), every kept field retrained
    at field_dim; dropped fields stay dropped."""
    data = tiny_dataset(1500, n_informative=2, n_noise=2, seed=4)
    over = {**_FAST, "epochs": 2, "candidates": [0, 1, 3, 6], "cpt": 0.5}
    own = IRazor.from_overrides(over).fit(data, _ctx(5))
    fde = IRazorFDE.from_overrides({**over, "field_dim": 4}).fit(data, _ctx(5))
    assert fde.selected_fields == own.selected_fields
    assert fde.field_dims == {f: 4 for f in own.selected_fields}
    assert fde.extra["region_probs"] == own.extra["region_probs"]
    assert fde.extra["searched_dims"] == own.extra["all_dims"] and "searched_dims" not in own.extra
    emb = {f.name: f.vocab_size for f in data.fields}
    assert fde.extra["embedding_params"] == sum(4 * emb[f] for f in own.selected_fields)
    with pytest.raises(ConfigError):
        IRazorFDE.from_overrides({"field_dim": 0})
