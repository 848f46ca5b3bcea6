"""Tests of the SSR plugin (leanrec-ssr): ICS, the static random filter, batched vs per-view equivalence,
parameter/FLOP accounting, field dropping and end-to-end learning on a planted signal."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("leanrec_ssr")

from leanrec.context import RunContext
from leanrec.errors import ConfigError
from leanrec.measure import flops_per_sample, quality
from leanrec.methods import get_backbone
from leanrec.nn import FieldSpec
from leanrec.testing import tiny_dataset
from leanrec_ssr import SSRLayer, SSRModel, ics, topk_ste
from leanrec_ssr.methods import SSRDMethod, SSRSMethod
from leanrec_ssr.model import view_diversity


# ---- ICS (Algorithm 1) ---------------------------------------------------------------------------------------
def test_ics_matches_hand_computed_example():
    z = torch.tensor([[3.0, 1.0, 0.2, -1.0]])
    # x0 = [3, 1, .2, 0], mean 1.05, alpha 1 -> x1 = relu([1.95, -.05, -.85, -1.05]) = [1.95, 0, 0, 0]
    y = ics(z, torch.tensor([1.0]), torch.tensor([2.0, 1.0, 1.0, 1.0]))
    assert torch.allclose(y, torch.tensor([[3.9, 0.0, 0.0, 0.0]]))
    # two iterations with alpha 0.5: x1 = relu(x0 - .525) = [2.475, .475, 0, 0]; mean .7375;
    # x2 = relu(x1 - .36875) = [2.10625, .10625, 0, 0]
    y2 = ics(z, torch.tensor([0.5, 0.5]))
    assert torch.allclose(y2, torch.tensor([[2.10625, 0.10625, 0.0, 0.0]]))


def test_ics_nonnegative_monotone_and_sparse():
    torch.manual_seed(0)
    z = torch.randn(64, 4, 32)                 # (batch, views, d)
    alpha = torch.full((4, 5), 0.1)
    trace: list[torch.Tensor] = []
    y = ics(z, alpha, torch.ones(4, 32), trace=trace)
    assert (y >= 0).all()
    assert len(trace) == 6                     # x^(0) .. x^(T)
    norms = torch.stack([x.abs().sum(-1) for x in trace])   # (T+1, batch, views): L1 per view
    assert (norms[1:] <= norms[:-1] + 1e-6).all()
    assert (norms[-1] < norms[0]).all()        # the inhibition really removes energy
    relu_zeros = (trace[0] == 0).float().mean()
    ics_zeros = (y == 0).float().mean()
    assert ics_zeros > relu_zeros + 0.05       # competition creates exact zeros beyond the ReLU's
    assert (y == 0).any(dim=-1).all()          # every view of every sample has exact zeros


def test_ics_gradients_reach_alpha_and_gamma():
    torch.manual_seed(0)
    layer = SSRLayer(24, b=3, d_v=16, filter="ics")
    x = torch.randn(32, 24)
    layer(x).pow(2).sum().backward()
    assert layer.alpha.grad is not None and layer.gamma.grad is not None
    assert (layer.alpha.grad.abs().sum(0) > 0).all()   # every iteration's rate gets a gradient
    assert (layer.gamma.grad.abs().sum(0) > 0).any() and layer.gamma.grad.abs().sum() > 0
    assert layer.proj.weight.grad.abs().sum() > 0


def test_topk_ste_keeps_k_and_passes_gradient_straight_through():
    z = torch.randn(8, 2, 20, requires_grad=True)
    y = topk_ste(z, 3)
    assert ((y > 0).sum(-1) <= 3).all()
    y.sum().backward()
    assert torch.equal(z.grad, (z > 0).float())  # d ReLU(z)/dz, as if nothing were cut


# ---- SSR-S static filter ----------------------------------------------------------------------------------------
def test_static_filter_distinct_within_view_independent_across_views():
    torch.manual_seed(1)
    layer = SSRLayer(40, b=6, d_v=8, filter="random")
    idx = layer.index
    assert idx.shape == (6, 8)
    assert ((idx >= 0) & (idx < 40)).all()
    assert all(len(set(row.tolist())) == 8 for row in idx)          # no replacement within a view
    assert len({tuple(sorted(row.tolist())) for row in idx}) > 1     # views drawn independently
    x = torch.randn(5, 40)
    assert torch.equal(layer.filter_views(x)[0], torch.stack([x[:, r] for r in idx], dim=1))
    # the index set is fixed: not a parameter, unchanged by a training step
    assert "index" not in dict(layer.named_parameters())
    before = idx.clone()
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer(x).sum().backward()
    opt.step()
    assert torch.equal(layer.index, before)


def test_static_layer_parameter_count_is_b_dv_squared_plus_bias_and_norms():
    # Reading: a view gathers d_v dims and outputs d_v, so V_i is d_v x d_v; plus a bias (d_v) and the
    # LayerNorm's weight and bias (2 d_v) per view.
    b, d_v = 4, 8
    layer = SSRLayer(50, b=b, d_v=d_v, filter="random")
    assert sum(p.numel() for p in layer.parameters()) == b * d_v ** 2 + b * d_v + 2 * b * d_v
    fields = [FieldSpec(f"f{i}", 5) for i in range(6)]
    model = SSRModel(fields, embedding_dim=4, b=b, d_v=d_v, num_layers=3)   # d_in = 24 >= d_v
    for lay in model.layers:
        assert sum(p.numel() for p in lay.parameters()) == b * d_v ** 2 + 3 * b * d_v


def test_static_backbone_flops_exclude_the_gather():
    b, d_v, L = 4, 8, 2
    fields = [FieldSpec(f"f{i}", 5) for i in range(6)]
    model = SSRModel(fields, embedding_dim=4, b=b, d_v=d_v, num_layers=L)
    X = torch.randint(0, 5, (16, 6))
    # only the per-view fusions (2 * b * d_v * d_v per layer) and the head (2 * b * d_v) are matmuls
    assert flops_per_sample(model, X) == L * 2 * b * d_v * d_v + 2 * b * d_v


# ---- batched == per-view loop ------------------------------------------------------------------------------------
def _naive(layer: SSRLayer, x: torch.Tensor) -> torch.Tensor:
    """Reference: the equations view by view (the loop exists only here)."""
    outs = []
    d_v = layer.d_v
    for i in range(layer.b):
        if layer.filter == "random":
            h = x[:, layer.index[i]]
        elif layer.filter == "none":
            h = x
        else:
            z = x @ layer.proj.weight[i * d_v:(i + 1) * d_v].T
            if layer.filter == "ics":
                s = F.relu(z)
                for t in range(layer.alpha.shape[1]):
                    s = F.relu(s - layer.alpha[i, t] * s.mean(dim=1, keepdim=True))
                s = layer.gamma[i] * s
            else:
                s = F.relu(z)
                s = s * (s >= s.topk(layer.topk, dim=1).values[:, -1:])
            h = s * (x @ layer.value.weight[i * d_v:(i + 1) * d_v].T) if layer.gate else s
        zi = F.gelu(h @ layer.V[i] + layer.bias[i])
        if layer.residual:
            zi = zi + h
        outs.append(F.layer_norm(zi, (d_v,), layer.ln_weight[i], layer.ln_bias[i]))
    return torch.stack(outs, dim=1)


@pytest.mark.parametrize("kw", [
    dict(filter="random"), dict(filter="random", residual=True), dict(filter="random", filter_dim=5),
    dict(filter="ics"), dict(filter="ics", gate=True, residual=True), dict(filter="topk", topk_keep=0.25),
    dict(filter="none"),
])
def test_batched_layer_equals_per_view_loop(kw):
    torch.manual_seed(2)
    layer = SSRLayer(20, b=5, d_v=8, **kw)
    with torch.no_grad():   # non-trivial per-view affine parameters, so a view mix-up would show
        for p in (layer.bias, layer.ln_weight, layer.ln_bias):
            p.normal_()
        if kw["filter"] == "ics":
            layer.alpha.uniform_(0.05, 0.4)
            layer.gamma.uniform_(0.5, 1.5)
    x = torch.randn(7, 20)
    assert torch.allclose(layer(x), _naive(layer, x), atol=1e-5)


def test_dropout_filter_masks_views_independently_in_training_only():
    torch.manual_seed(3)
    layer = SSRLayer(20, b=4, d_v=5, filter="dropout")
    assert layer.dropout.p == pytest.approx(0.75)   # same kept share as gathering 5 of 20
    x = torch.randn(3, 20) + 5
    h = layer.filter_views(x)[0]
    assert not torch.equal(h[:, 0], h[:, 1])
    layer.eval()
    assert torch.equal(layer.filter_views(x)[0], x.unsqueeze(1).expand(3, 4, 20))


# ---- the backbone ---------------------------------------------------------------------------------------------
FIELDS = [FieldSpec(f"f{i}", 7) for i in range(5)]


@pytest.mark.parametrize("kw", [dict(filter="random"), dict(filter="random", residual=True, d_v=6),
                                dict(filter="ics"), dict(filter="topk"), dict(filter="none"),
                                dict(filter="ics", gate=True, head_mean=True, head_hidden=[8])])
def test_drop_fields_equals_masking(kw):
    torch.manual_seed(4)
    kw = {"b": 3, "d_v": 10, **kw}
    model = SSRModel(FIELDS, embedding_dim=4, num_layers=2, **kw).eval()
    keep = [0, 2, 3]
    small = model.drop_fields(keep).eval()
    X = torch.randint(0, 7, (11, 5))
    mask = torch.zeros(5)
    mask[keep] = 1
    assert torch.allclose(small(X), model(X, field_weights=mask), atol=1e-5)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(small) < n(model)
    assert small.embedding.output_dim == 12


def test_mixed_dims_and_describe():
    model = SSRModel(FIELDS, embedding_dim=[2, 4, 4, 8, 2], b=2, d_v=6)
    X = torch.randint(0, 7, (4, 5))
    assert model(X).shape == (4,)
    assert model.describe()["view_widths"] == [6, 6]
    assert model.layers[0].d_in == 20


# ---- methods, registration, config -----------------------------------------------------------------------------
def test_registered_as_backbones_with_paper_defaults():
    s, d = get_backbone("ssr-s"), get_backbone("ssr-d")
    assert isinstance(s, SSRSMethod) and isinstance(d, SSRDMethod)
    assert s.family == d.family == "backbone" and "SIGIR 2026" in s.paper
    for m in (s, d):
        c = m.config
        assert (c.embedding_dim, c.b, c.d_v, c.num_layers, c.batch_size, c.lr) == (16, 16, 256, 2, 1024, 1e-3)
    assert s.config.filter == "random" and d.config.filter == "ics"
    assert (d.config.ics_iters, d.config.ics_alpha, d.config.ics_gamma) == (5, 0.1, True)
    model = d.build_model(FIELDS, b=2, d_v=4)
    assert torch.allclose(model.layers[0].alpha, torch.full((2, 5), 0.1))
    assert torch.equal(model.layers[0].gamma, torch.ones(2, 4))


@pytest.mark.parametrize("overrides", [{"filter": "magic"}, {"gate": "true"}, {"b": "0"},
                                       {"topk_keep": "0"}, {"filter": "none", "residual": "true"},
                                       {"no_such_key": "1"}])
def test_bad_config_is_rejected(overrides):
    with pytest.raises(ConfigError):
        SSRSMethod.from_overrides(overrides)


def test_ablation_specs_parse():
    m = SSRDMethod.from_overrides({"filter": "topk", "b": "1", "head_hidden": "[8,4]", "dropout_rate": "0.3",
                                   "filter_dim": "null"})
    assert m.config.b == 1 and m.config.head_hidden == [8, 4] and m.config.filter_dim is None


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread than fighting over a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cls", [SSRSMethod, SSRDMethod])
def test_learns_planted_signal_and_records_sparsity(cls, one_thread):
    torch.manual_seed(0)
    data = tiny_dataset(3000, seed=0)
    method = cls.from_overrides({"embedding_dim": 8, "b": 4, "d_v": 16, "epochs": 6,
                                 "batch_size": 256, "lr": 3e-3})
    ctx = RunContext(device=torch.device("cpu"), seed=0, progress=False)
    result = method.fit(data, ctx)
    auc = quality(result.model, ctx.tensors(data, "test"))["auc"]
    assert auc > 0.75, auc
    sparsity = result.extra["filter_sparsity_per_layer"]
    if cls is SSRDMethod:
        assert len(sparsity) == 2 and all(0.0 < s < 1.0 for s in sparsity)
        assert len(result.extra["ics_alpha_mean_per_layer"][0]) == 5
    else:
        assert sparsity is None


def test_filter_sparsity_counts_exact_zeros_per_layer():
    torch.manual_seed(5)
    X = torch.randint(0, 7, (64, 5))
    topk = SSRModel(FIELDS, embedding_dim=4, b=3, d_v=20, filter="topk", topk_keep=0.25)
    assert all(s >= 0.75 for s in topk.filter_sparsity(X))          # at most 5 of 20 dims survive per view
    model = SSRModel(FIELDS, embedding_dim=4, b=3, d_v=20, filter="ics").train()
    ratios = model.filter_sparsity(X)
    assert model.training                                          # mode restored
    x = model.embed(X).emb.flatten(1)
    h, s = model.layers[0].filter_views(x)
    assert ratios[0] == pytest.approx(float((s == 0).float().mean()))
    x2 = model.layers[0].fuse(h).flatten(1)
    assert ratios[1] == pytest.approx(float((model.layers[1].filter_views(x2)[1] == 0).float().mean()))
    assert SSRModel(FIELDS, embedding_dim=4, b=3, d_v=20).filter_sparsity(X) is None


@settings(max_examples=25, deadline=None)
@given(b=st.integers(2, 5), rows=st.integers(1, 4), cols=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_view_diversity_matches_sklearn_cosine(b, rows, cols, seed):
    from sklearn.metrics.pairwise import cosine_similarity

    rng = np.random.default_rng(seed)
    w0 = torch.tensor(rng.normal(size=(b, rows, cols)))
    w = w0 + torch.tensor(rng.normal(size=(b, rows, cols)))
    ref = cosine_similarity(w.reshape(b, -1).numpy())
    ref0 = cosine_similarity(w0.reshape(b, -1).numpy())
    ref_update = cosine_similarity((w - w0).reshape(b, -1).numpy())
    off = ~np.eye(b, dtype=bool)
    stats = view_diversity([w, w], [w0, w0])
    layer = stats["layers"][0]
    np.testing.assert_allclose(layer["cosine"], ref, atol=1e-4)
    assert layer["mean_abs_cosine"] == pytest.approx(np.abs(ref[off]).mean())
    assert layer["max_abs_cosine"] == pytest.approx(np.abs(ref[off]).max())
    assert layer["init_mean_abs_cosine"] == pytest.approx(np.abs(ref0[off]).mean())
    np.testing.assert_allclose(layer["update_cosine"], ref_update, atol=1e-4)
    assert layer["update_mean_abs_cosine"] == pytest.approx(np.abs(ref_update[off]).mean())
    assert layer["update_max_abs_cosine"] == pytest.approx(np.abs(ref_update[off]).max())
    change = np.linalg.norm((w - w0).numpy()) / np.linalg.norm(w0.numpy())
    assert layer["relative_change"] == pytest.approx(change)
    assert stats["mean_abs_cosine"] == pytest.approx(np.abs(ref[off]).mean())   # both layers alike here
    assert stats["update_mean_abs_cosine"] == pytest.approx(np.abs(ref_update[off]).mean())


def test_view_diversity_tells_views_pulled_together_from_views_moved_apart():
    """Views whose updates share one direction have update cosines near 1; independent updates, near 0."""
    torch.manual_seed(0)
    w0 = torch.randn(4, 32, 64)
    shared = torch.randn(32, 64)
    together = view_diversity([w0 + 3 * shared], [w0])
    apart = view_diversity([w0 + 3 * torch.randn(4, 32, 64)], [w0])
    assert together["update_mean_abs_cosine"] > 0.99 and together["mean_abs_cosine"] > 0.8
    assert apart["update_mean_abs_cosine"] < 0.1 and apart["mean_abs_cosine"] < 0.1


def test_view_projections_are_each_views_rows_of_the_projection():
    model = SSRModel(FIELDS, embedding_dim=4, b=3, d_v=5, filter="ics")
    x = torch.randn(7, model.layers[0].d_in)
    per_view = model.view_projections()[0]                          # (b, d_v, d_in)
    z = model.layers[0].proj(x).view(7, 3, 5)
    for i in range(3):
        torch.testing.assert_close(z[:, i], x @ per_view[i].T)
    assert SSRModel(FIELDS, embedding_dim=4, b=3, d_v=5).view_projections() is None


def test_ssr_d_fit_trains_as_a_plain_backbone_and_records_view_diversity(one_thread):
    """The SSR methods' own fit (which keeps the initial projections) trains exactly what BackboneMethod.fit does."""
    from leanrec.methods import BackboneMethod

    data = tiny_dataset(1200, seed=1)
    overrides = {"embedding_dim": 4, "b": 3, "d_v": 8, "epochs": 2, "batch_size": 256}
    fits = []
    for fit in (SSRDMethod.fit, BackboneMethod.fit):
        torch.manual_seed(0)
        method = SSRDMethod.from_overrides(overrides)
        fits.append(fit(method, data, RunContext(device=torch.device("cpu"), seed=0, progress=False)))
    ours, plain = fits
    for (name, p), q in zip(ours.model.state_dict().items(), plain.model.state_dict().values()):
        assert torch.equal(p, q), name
    diversity = ours.extra["view_diversity"]
    assert len(diversity["layers"]) == 2 and diversity["relative_change"] > 0
    assert all(len(layer["cosine"]) == 3 for layer in diversity["layers"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_view_diversity_of_a_cuda_model_matches_the_cpu():
    w0 = torch.randn(3, 4, 5)
    w = w0 + torch.randn(3, 4, 5)
    assert view_diversity([w.cuda()], [w0.cuda()]) == view_diversity([w], [w0])
