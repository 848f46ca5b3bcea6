"""The baseline backbone zoo (plugin leanrec-baselines, issue 6): registration through the entry point,
learning a planted signal, field dropping with weight transfer, and hand-counted parameter numbers."""
from __future__ import annotations

import importlib.metadata as md

import pytest
import torch
from torch import nn

from leanrec.context import RunContext
from leanrec.measure import count_parameters, quality
from leanrec.methods import BackboneMethod, get_backbone
from leanrec.nn import FieldSpec
from leanrec.plugins import load_registry
from leanrec.testing import tiny_dataset
from leanrec.trainer import Tensors

from leanrec_baselines.methods import ALL_METHODS

NAMES = [m.name for m in ALL_METHODS]
EXPECTED = ["lr", "fm", "fwfm", "dnn", "wide-deep", "deepfm", "ipnn", "xdeepfm", "dcnv2", "autoint-plus",
            "fibinet", "finalmlp", "wukong", "rankmixer"]

# Small configs: the model keeps its architecture, only widths shrink (CPU, seconds).
SMALL: dict[str, dict] = {
    "lr": {}, "fm": {}, "fwfm": {},
    "dnn": {"hidden": [32, 32]}, "wide-deep": {"hidden": [32, 32]}, "deepfm": {"hidden": [32, 32]},
    "ipnn": {"hidden": [32, 32]},
    "xdeepfm": {"hidden": [32, 32], "cin_layer_units": [8, 8]},
    "dcnv2": {"hidden": [32, 32], "num_cross_layers": 2},
    "autoint-plus": {"hidden": [32, 32], "attention_layers": 2, "num_heads": 2, "attention_dim": 8},
    "fibinet": {"hidden": [32, 32]},
    "finalmlp": {"mlp1_hidden": [32, 32], "mlp2_hidden": [32], "fs_hidden": [16], "fusion_heads": 2},
    "wukong": {"num_layers": 2, "fmb_tokens": 4, "lcb_tokens": 4, "fmb_rank": 4, "fmb_hidden": [16],
               "hidden": [32]},
    "rankmixer": {"num_tokens": 4, "token_dim": 16, "num_layers": 2, "ffn_ratio": 2},
}


def test_every_registered_method_is_found_through_the_entry_point():
    eps = [ep for ep in md.entry_points(group="leanrec") if ep.name == "leanrec-baselines"]
    assert eps, "leanrec-baselines is not installed: pip install --no-build-isolation --no-deps -e plugins/leanrec-baselines"
    reg = load_registry()
    info = reg.plugins["leanrec-baselines"]
    assert not info.errors
    assert sorted(info.methods) == sorted(NAMES + ["magprune", "oracle"]) == sorted(EXPECTED + ["magprune", "oracle"])
    for cls in ALL_METHODS:
        assert reg.method(cls.name) is cls
        assert issubclass(cls, BackboneMethod) and cls.family == "backbone" and cls.is_baseline
        assert cls.__doc__ and cls.paper


# ---- learning -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The tiny models gain nothing from intra-op threads; on a shared CPU they only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    return tiny_dataset(3000, seed=1)


@pytest.mark.parametrize("name", NAMES)
def test_learns_planted_signal(name, tiny):
    torch.manual_seed(0)
    method = get_backbone(name, {**SMALL[name], "lr": 1e-2, "batch_size": 256, "epochs": 8, "embedding_dim": 8})
    ctx = RunContext(device=torch.device("cpu"), seed=0, progress=False)
    result = method.fit(tiny, ctx)
    test = Tensors.from_numpy(tiny.test.X, tiny.test.y, ctx.device)
    auc = quality(result.model, test)["auc"]
    # A trivial (constant or noise-only) model gives 0.5; the additive informative fields alone ~0.77 (all LR
    # can capture); capturing the planted XOR pair as well lifts it to ~0.95.
    threshold = 0.7 if name == "lr" else 0.88
    assert auc > threshold, f"{name}: test AUC {auc:.3f}"


# ---- field dropping with weight transfer -------------------------------------------------------------------
FIELDS = [FieldSpec(f"f{i}", v) for i, v in enumerate([3, 4, 5, 6, 7])]
KEEP = [0, 2, 3]


def _randomised(name: str, **changes) -> nn.Module:
    """A small model with every parameter and BN statistic drawn at O(1) scale, so that a mismatch shows."""
    torch.manual_seed(0)
    config = {**SMALL[name], **{k: v for k, v in changes.items() if k != "embedding_dim"}}
    model = get_backbone(name, config).build_model(FIELDS, **{"embedding_dim": 4, **changes})
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _codes(n: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.stack([torch.randint(0, f.vocab_size, (n,), generator=g) for f in FIELDS], dim=1).int()


# Models (and architecture variants) whose dropped copy equals the masked original exactly. AutoInt+ and
# Wukong with its FMB LayerNorm are not exact; their own tests below check what is.
EXACT = [(n, {}) for n in NAMES if n not in ("autoint-plus", "wukong")] + [
    ("xdeepfm", {"cin_split_half": True}),
    ("dcnv2", {"model_structure": "stacked"}), ("dcnv2", {"model_structure": "crossnet_only"}),
    ("dcnv2", {"low_rank": 3}),
    ("fibinet", {"bilinear_type": "field_all"}), ("fibinet", {"bilinear_type": "field_each"}),
    ("finalmlp", {"use_fs": False}),
    ("wukong", {"fmb_layernorm": False}), ("wukong", {"fmb_layernorm": False, "num_layers": 0}),
    ("wukong", {"fmb_layernorm": False, "fmb_tokens": 3, "lcb_tokens": 2}),  # identity residual in layer 1
]


@pytest.mark.parametrize("name,changes", EXACT, ids=[f"{n}-{c}" if c else n for n, c in EXACT])
def test_drop_fields_equals_masking(name, changes):
    model = _randomised(name, **changes)
    X = _codes()
    mask = torch.zeros(len(FIELDS))
    mask[KEEP] = 1.0
    with torch.no_grad():
        full, masked = model(X), model(X, field_weights=mask)
        dropped = model.drop_fields(KEEP)
        out = dropped(X)
    assert not torch.allclose(full, masked, atol=1e-3), "masking must change the output for this test to mean anything"
    torch.testing.assert_close(out, masked, rtol=1e-4, atol=1e-4)
    # weight transfer: the kept fields' embedding rows were copied, the dropped fields' rows are gone
    for new_i, old_i in enumerate(KEEP):
        torch.testing.assert_close(dropped.embedding.field_rows(new_i), model.embedding.field_rows(old_i))
    assert count_parameters(dropped)["embedding"] < count_parameters(model)["embedding"]
    assert [f.name for f in dropped.fields] == [FIELDS[i].name for i in KEEP]


def test_autoint_drop_fields_equals_attention_over_kept_fields():
    """Masking is not exact for attention (a zero key still takes softmax mass); dropping equals attending
    over the kept fields only, with every kept weight unchanged."""
    model = _randomised("autoint-plus")
    X = _codes()
    mask = torch.zeros(len(FIELDS))
    mask[KEEP] = 1.0
    with torch.no_grad():
        out = model.drop_fields(KEEP)(X)
        torch.testing.assert_close(out, model.masked_logits(X, KEEP), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(out, model(X, field_weights=mask), atol=1e-3)


def test_wukong_fmb_layernorm_drop_transfers_weights():
    """With the paper's LayerNorm before the first FMB MLP, dropping is not exactly masking (the norm's
    statistics change), but every kept weight is transferred and the model still runs on the full X."""
    model = _randomised("wukong")
    X = _codes()
    dropped = model.drop_fields(KEEP)
    old, new = model.layers[0], dropped.layers[0]
    torch.testing.assert_close(new.fm_proj, old.fm_proj[KEEP])
    torch.testing.assert_close(new.lcb.weight, old.lcb.weight[:, KEEP])
    torch.testing.assert_close(new.residual.weight, old.residual.weight[:, KEEP])
    cols = [k * 4 + r for k in KEEP for r in range(4)]  # fmb_rank 4
    torch.testing.assert_close(new.fmb_norm.weight, old.fmb_norm.weight[cols])
    torch.testing.assert_close(new.fmb_mlp.net[0].weight, old.fmb_mlp.net[0].weight[:, cols])
    for a, b in zip(model.layers[1].parameters(), dropped.layers[1].parameters()):
        torch.testing.assert_close(a, b)
    assert dropped(X).shape == (X.shape[0],)


@pytest.mark.parametrize("name", [n for n in NAMES if get_backbone(n).model_class.supports_mixed_dims])
def test_mixed_dims_drop_fields(name):
    """Models that accept per-field dims also drop fields exactly with them (dim-0 fields included)."""
    model = _randomised(name, embedding_dim=[2, 3, 0, 4, 1])
    X = _codes()
    keep = [1, 3, 4]
    mask = torch.zeros(len(FIELDS))
    mask[keep] = 1.0
    with torch.no_grad():
        torch.testing.assert_close(model.drop_fields(keep)(X), model(X, field_weights=mask), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", [n for n in NAMES if not get_backbone(n).model_class.supports_mixed_dims])
def test_uniform_only_models_reject_mixed_dims(name):
    with pytest.raises(ValueError, match="one embedding dim"):
        get_backbone(name, SMALL[name]).build_model(FIELDS, embedding_dim=[2, 3, 4, 4, 1])


# ---- parameter counts ---------------------------------------------------------------------------------------
# FIELDS: vocab sizes 3+4+5+6+7 = 25, F = 5 fields, P = 10 pairs, embedding dim d = 4.
V, F, P, D = 25, 5, 10, 4
EMB, LIN = V * D, V + 1          # factor embeddings; first-order weights + global bias


def mlp(n_in: int, hidden: list[int], out: int | None = 1, bn: bool = True) -> int:
    """Linear (w + b) [+ BatchNorm (gamma, beta)] per hidden layer, then the output Linear."""
    total, prev = 0, n_in
    for h in hidden:
        total += prev * h + h + (2 * h if bn else 0)
        prev = h
    return total + (prev * out + out if out else 0)


def hand_count(name: str) -> int:
    deep = mlp(F * D, [32, 32])
    if name == "lr":
        return LIN
    if name == "fm":
        return LIN + EMB
    if name == "fwfm":
        return LIN + EMB + P                       # one r_ij per field pair
    if name == "dnn":
        return EMB + deep
    if name in ("wide-deep", "deepfm"):            # the FM term has no parameters of its own
        return LIN + EMB + deep
    if name == "ipnn":
        return EMB + mlp(F * D + P, [32, 32])
    if name == "xdeepfm":                          # CIN [8, 8]: 1x1 convs over H_{k-1} * F channels, + bias
        cin = (F * F * 8 + 8) + (8 * F * 8 + 8) + (16 + 1)
        return LIN + EMB + deep + cin
    if name == "dcnv2":                            # 2 full-rank cross layers (W, b) + parallel DNN + head
        cross = 2 * (F * D * F * D + F * D)
        return EMB + cross + mlp(F * D, [32, 32], None) + (F * D + 32 + 1)
    if name == "autoint-plus":                     # W_q, W_k, W_v, W_res per layer (no bias), 2 heads x 8
        attn = 4 * (D * 16) + 4 * (16 * 16)
        return EMB + attn + (F * 16 + 1) + deep
    if name == "fibinet":                          # SENet F -> int(F/3) = 1 -> F (no bias); 2 bilinear P x d x d
        return LIN + EMB + (F * 1 + 1 * F) + 2 * P * D * D + mlp(2 * P * D, [32, 32])
    if name == "finalmlp":                         # 2 context vectors, 2 gate MLPs (no BN), 2 streams, fusion
        gates = 2 * D + 2 * mlp(D, [16], F * D, bn=False)
        streams = mlp(F * D, [32, 32], None) + mlp(F * D, [32], None)
        fusion = (32 + 1) + 32 + 2 * 16 * 16       # w_x (+bias), w_y, 2 heads of 16 x 16
        return EMB + gates + streams + fusion
    if name == "wukong":                           # layer: Y (n x k), LN(n k), FMB MLP, LCB, [residual], LN(d)
        def layer(n: int) -> int:
            residual = n * 8 if n != 8 else 0
            return n * 4 + 2 * n * 4 + mlp(n * 4, [16], 4 * D, bn=False) + n * 4 + residual + 2 * D
        return EMB + layer(F) + layer(8) + mlp(8 * D, [32])
    if name == "rankmixer":                        # T = 4 tokens of width 16, 2 layers, FFN ratio 2
        T, W, L, k = 4, 16, 2, 2
        tokenizer = F * D * W + T * W
        ffn = L * T * (W * k * W + k * W + k * W * W + W)
        return EMB + tokenizer + ffn + L * 2 * (2 * W) + (W + 1)
    raise KeyError(name)


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_hand_count(name):
    model = get_backbone(name, SMALL[name]).build_model(FIELDS, embedding_dim=D)
    assert count_parameters(model)["total"] == hand_count(name)


# ---- configuration -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,overrides", [
    ("dnn", {"hiden": [8]}),                       # unknown key (typo)
    ("dnn", {"dropout": 1.5}),
    ("finalmlp", {"fusion_heads": 7}),             # must divide both stream widths
    ("rankmixer", {"num_tokens": 3}),              # token_dim 64 not divisible into 3 heads
    ("dcnv2", {"model_structure": "serial"}),
    ("fibinet", {"bilinear_type": "pairwise"}),
])
def test_bad_config_is_rejected(name, overrides):
    from leanrec.errors import ConfigError

    with pytest.raises(ConfigError):
        get_backbone(name, overrides)


def test_cli_style_overrides_build_the_paper_hyperparameters():
    method = get_backbone("xdeepfm", {"cin_layer_units": "[4, 6]", "hidden": "[8]"})
    model = method.build_model(FIELDS)
    assert model.cin.layer_units == [4, 6] and model.mlp.net[0].out_features == 8
    assert model.embedding.dims == [10] * len(FIELDS)  # BARS default embedding dim
