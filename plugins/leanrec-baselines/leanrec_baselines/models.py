"""The baseline CTR backbones as CTRModel subclasses (serving models).

Every model maps per-field representations (``Features``) to logits (B,), vectorised over fields, pairs and
heads. ``transfer_fields(keep, old_dims)`` slices the layers that read per-field inputs so that
``drop_fields`` copies every kept weight; the docstring of each model says whether the dropped model equals
the original with the dropped fields masked to zero (``field_weights`` = 0), and why not where it does not.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from leanrec.nn import MLP, CTRModel, FactorizationMachine, FieldSpec, field_columns
from leanrec.nn.interactions import (CIN, BilinearInteraction, CrossNetV2, FieldPairWeights, InnerProduct,
                                     InteractionAggregation, MultiHeadSelfAttention, SENet, pair_positions,
                                     select_linear_inputs, select_linear_outputs)

Dims = int | Sequence[int]


def flat(emb: torch.Tensor) -> torch.Tensor:
    """(B, F, d) or already-flat (B, sum d) -> (B, sum d)."""
    return emb.flatten(1) if emb.dim() == 3 else emb


class _FirstOrder(CTRModel):
    """Adds the first-order term w_0 + sum_f w_f[x_f] (one scalar per feature value, from the core's
    ``linear_embedding``) shared by LR, FM, FwFM, Wide&Deep, DeepFM, xDeepFM and FiBiNET."""

    uses_linear = True

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10):
        super().__init__(fields, embedding_dim)
        self.bias = nn.Parameter(torch.zeros(1))

    def first_order(self, feats) -> torch.Tensor:
        return feats.linear.sum(dim=1) + self.bias


# ---- linear / factorisation machines ------------------------------------------------------------------------
class LRModel(_FirstOrder):
    """Logistic regression: w_0 + sum_f w_f[x_f]. It has no factor embeddings (embedding_dim is ignored and
    the fused table is empty), so any per-field dims are trivially allowed. Dropping fields is exact."""

    supports_mixed_dims = True

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10):
        super().__init__(fields, embedding_dim=[0] * len(fields))

    def interact(self, feats) -> torch.Tensor:
        return self.first_order(feats)

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        pass  # the per-field weights live in linear_embedding, which drop_fields already selected


class FMModel(_FirstOrder):
    """Factorization Machine (Rendle, ICDM 2010): first order + sum_{i<j} <v_i, v_j>, in O(F d).
    Needs one dim for all fields (inner products). Dropping fields is exact (a zero v_i adds nothing)."""

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10):
        super().__init__(fields, embedding_dim)
        self.fm = FactorizationMachine()

    def interact(self, feats) -> torch.Tensor:
        return self.first_order(feats) + self.fm(feats.emb)

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        pass


class FwFMModel(_FirstOrder):
    """Field-weighted FM (Pan et al., WWW 2018): first order + sum_{i<j} r_{F(i)F(j)} <v_i, v_j> with one
    learned weight per field pair. Uniform dims only. Dropping fields is exact (pair weights are selected)."""

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10):
        super().__init__(fields, embedding_dim)
        self.fwfm = FieldPairWeights(len(self.fields))

    def interact(self, feats) -> torch.Tensor:
        return self.first_order(feats) + self.fwfm(feats.emb)

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        self.fwfm.select(keep)


# ---- MLP-based ----------------------------------------------------------------------------------------------
class DNNModel(CTRModel):
    """Plain DNN over the concatenated field embeddings (the FuxiCTR/BARS "DNN" baseline). Allows per-field
    dims (the MLP reads the flat concatenation). Dropping fields is exact: it removes the first layer's input
    columns of the dropped fields, which multiply zeros when those fields are masked."""

    supports_mixed_dims = True

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10,
                 hidden: Sequence[int] = (400, 400, 400), dropout: float = 0.2, batch_norm: bool = True):
        super().__init__(fields, embedding_dim)
        self.mlp = MLP(self.embedding.output_dim, list(hidden), 1, dropout, batch_norm)

    def deep(self, feats) -> torch.Tensor:
        return self.mlp(flat(feats.emb)).squeeze(-1)

    def interact(self, feats) -> torch.Tensor:
        return self.deep(feats)

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        self.mlp.select_inputs(field_columns(old_dims, keep))


class WideDeepModel(DNNModel):
    """Wide & Deep (Cheng et al., DLRS 2016): a wide linear part over the raw features plus a DNN over the
    embeddings, summed into one logit (no hand-made cross-product features: the FuxiCTR/BARS variant).
    Allows per-field dims. Dropping fields is exact."""

    uses_linear = True

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10,
                 hidden: Sequence[int] = (400, 400, 400), dropout: float = 0.2, batch_norm: bool = True):
        super().__init__(fields, embedding_dim, hidden, dropout, batch_norm)
        self.bias = nn.Parameter(torch.zeros(1))

    def interact(self, feats) -> torch.Tensor:
        return feats.linear.sum(dim=1) + self.bias + self.deep(feats)


class DeepFMModel(DNNModel):
    """DeepFM (Guo et al., IJCAI 2017): FM (first + second order) and a DNN sharing the embeddings.
    Uniform dims only (the FM's inner products). Dropping fields is exact."""

    uses_linear = True
    supports_mixed_dims = False

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10,
                 hidden: Sequence[int] = (400, 400, 400), dropout: float = 0.2, batch_norm: bool = True):
        super().__init__(fields, embedding_dim, hidden, dropout, batch_norm)
        self.bias = nn.Parameter(torch.zeros(1))
        self.fm = FactorizationMachine()

    def interact(self, feats) -> torch.Tensor:
        return feats.linear.sum(dim=1) + self.bias + self.fm(feats.emb) + self.deep(feats)


class IPNNModel(CTRModel):
    """Inner-product PNN (Qu et al., ICDM 2016): an MLP over [concatenated embeddings (l_z),
    all pairwise inner products (l_p)]. Uniform dims only (inner products). Dropping fields is exact: the
    dropped fields' embedding columns and every product involving them are removed from the first layer."""

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10,
                 hidden: Sequence[int] = (400, 400, 400), dropout: float = 0.2, batch_norm: bool = True):
        super().__init__(fields, embedding_dim)
        self.product = InnerProduct(len(self.fields))
        self.mlp = MLP(self.embedding.output_dim + self.product.num_pairs, list(hidden), 1, dropout, batch_norm)

    def interact(self, feats) -> torch.Tensor:
        return self.mlp(torch.cat([flat(feats.emb), self.product(feats.emb)], dim=1)).squeeze(-1)

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        width = sum(old_dims)
        pairs = [width + p for p in pair_positions(len(old_dims), keep)]
        self.mlp.select_inputs(field_columns(old_dims, keep) + pairs)
        self.product = self.product.select(keep)


class XDeepFMModel(DNNModel):
    """xDeepFM (Lian et al., KDD 2018): linear + CIN (explicit vector-wise interactions) + DNN. Uniform dims
    only (the CIN's Hadamard products). Dropping fields is exact: every CIN layer's channels that involve a
    dropped field's X^0 row are removed (they are zero when the field is masked)."""

    uses_linear = True
    supports_mixed_dims = False

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10,
                 hidden: Sequence[int] = (400, 400, 400), dropout: float = 0.2, batch_norm: bool = True,
                 cin_layer_units: Sequence[int] = (16, 16, 16), cin_split_half: bool = False):
        super().__init__(fields, embedding_dim, hidden, dropout, batch_norm)
        self.bias = nn.Parameter(torch.zeros(1))
        self.cin = CIN(len(self.fields), cin_layer_units, cin_split_half)
        self.cin_out = nn.Linear(self.cin.output_dim, 1)

    def interact(self, feats) -> torch.Tensor:
        cin = self.cin_out(self.cin(feats.emb)).squeeze(-1)
        return feats.linear.sum(dim=1) + self.bias + cin + self.deep(feats)

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        super().transfer_fields(keep, old_dims)
        self.cin.select(keep)


# ---- explicit-interaction networks ---------------------------------------------------------------------------
class DCNv2Model(CTRModel):
    """DCN-V2 (Wang et al., WWW 2021): a cross network (eq. 1; low-rank eq. 2 when `low_rank` > 0) and a DNN,
    "parallel" (both on x_0, outputs concatenated) or "stacked" (DNN on the cross output), or
    "crossnet_only". Allows per-field dims (the cross network reads the flat x_0). Dropping fields is exact:
    a zero column of x_0 stays zero through every cross layer, so its rows/columns of W_l can be removed."""

    supports_mixed_dims = True
    STRUCTURES = ("parallel", "stacked", "crossnet_only")

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10,
                 hidden: Sequence[int] = (400, 400, 400), dropout: float = 0.2, batch_norm: bool = True,
                 num_cross_layers: int = 3, model_structure: str = "parallel", low_rank: int = 0):
        super().__init__(fields, embedding_dim)
        if model_structure not in self.STRUCTURES:
            raise ValueError(f"model_structure must be one of {self.STRUCTURES}, got {model_structure!r}")
        if model_structure != "crossnet_only" and not hidden:
            raise ValueError(f"model_structure {model_structure!r} needs a non-empty DNN (hidden)")
        self.structure = model_structure
        width = self.embedding.output_dim
        self.cross = CrossNetV2(width, num_cross_layers, low_rank)
        self.mlp = MLP(width, list(hidden), None, dropout, batch_norm) if model_structure != "crossnet_only" else None
        head_in = {"parallel": width + (hidden[-1] if hidden else 0), "stacked": hidden[-1] if hidden else 0,
                   "crossnet_only": width}[model_structure]
        self.head = nn.Linear(head_in, 1)

    def interact(self, feats) -> torch.Tensor:
        x0 = flat(feats.emb)
        cross = self.cross(x0)
        if self.structure == "parallel":
            out = torch.cat([cross, self.mlp(x0)], dim=1)
        elif self.structure == "stacked":
            out = self.mlp(cross)
        else:
            out = cross
        return self.head(out).squeeze(-1)

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        cols = field_columns(old_dims, keep)
        self.cross.select(cols)
        if self.mlp is not None:
            self.mlp.select_inputs(cols)
        if self.structure == "parallel":
            width = sum(old_dims)
            self.head = select_linear_inputs(self.head, cols + list(range(width, self.head.in_features)))
        elif self.structure == "crossnet_only":
            self.head = select_linear_inputs(self.head, cols)


class AutoIntPlusModel(CTRModel):
    """AutoInt+ (Song et al., CIKM 2019): stacked multi-head self-attention over the field embeddings
    (residual, ReLU), a linear output over the flattened attention outputs, plus a DNN ("+").
    Uniform dims only (attention needs one token width).

    Dropping fields is NOT exactly masking: a masked (zero) field is still a key with score 0 in every
    softmax, so it takes attention mass from the kept fields. What drop_fields does exactly equal is
    :meth:`masked_logits`: the dropped fields excluded as keys and their outputs removed -- attention over
    the kept fields only, with every kept weight unchanged."""

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10,
                 hidden: Sequence[int] = (400, 400, 400), dropout: float = 0.2, batch_norm: bool = True,
                 attention_layers: int = 3, num_heads: int = 2, attention_dim: int = 32,
                 use_residual: bool = True, use_scale: bool = False):
        super().__init__(fields, embedding_dim)
        d = self.embedding.dims[0]
        self.attention = nn.ModuleList(
            MultiHeadSelfAttention(d if i == 0 else num_heads * attention_dim, attention_dim, num_heads,
                                   use_residual, use_scale) for i in range(attention_layers))
        self.token_dim = num_heads * attention_dim if attention_layers else d
        self.attn_out = nn.Linear(len(self.fields) * self.token_dim, 1)
        self.mlp = MLP(self.embedding.output_dim, list(hidden), 1, dropout, batch_norm) if hidden else None

    def _logits(self, E: torch.Tensor, keep_mask: torch.Tensor | None) -> torch.Tensor:
        h = E
        for layer in self.attention:
            h = layer(h, keep_mask)
        if keep_mask is not None:
            h = h * keep_mask.view(1, -1, 1)
        out = self.attn_out(h.flatten(1)).squeeze(-1)
        if self.mlp is not None:
            out = out + self.mlp(E.flatten(1)).squeeze(-1)
        return out

    def interact(self, feats) -> torch.Tensor:
        return self._logits(feats.emb, None)

    @torch.no_grad()
    def masked_logits(self, X: torch.Tensor, keep: Sequence[int]) -> torch.Tensor:
        """Logits with only the fields `keep` present: the reference that ``drop_fields(keep)`` reproduces."""
        mask = torch.zeros(self.num_fields, dtype=torch.bool, device=X.device)
        mask[list(keep)] = True
        E = self.embed(X).emb * mask.view(1, -1, 1)
        return self._logits(E, mask)

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        self.attn_out = select_linear_inputs(self.attn_out, field_columns([self.token_dim] * len(old_dims), keep))
        if self.mlp is not None:
            self.mlp.select_inputs(field_columns(old_dims, keep))


class FiBiNETModel(_FirstOrder):
    """FiBiNET (Huang et al., RecSys 2019): SENet field re-weighting, bilinear interactions (eqs. 5-7) on both
    the original and the re-weighted embeddings, their concatenation into a DNN, plus the linear part.
    Uniform dims only (bilinear W is d x d). Dropping fields is exact: a zero field adds nothing to the SENet
    squeeze and every pair involving it is zero, so those pair columns are removed from the DNN."""

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10,
                 hidden: Sequence[int] = (400, 400, 400), dropout: float = 0.2, batch_norm: bool = True,
                 reduction_ratio: float = 3.0, bilinear_type: str = "field_interaction"):
        super().__init__(fields, embedding_dim)
        F, d = len(self.fields), self.embedding.dims[0]
        self.senet = SENet(F, reduction_ratio)
        self.bilinear_e = BilinearInteraction(F, d, bilinear_type)   # on the original embeddings (p)
        self.bilinear_v = BilinearInteraction(F, d, bilinear_type)   # on the SENet embeddings (q)
        self.mlp = MLP(2 * (F * (F - 1) // 2) * d, list(hidden), 1, dropout, batch_norm)

    def interact(self, feats) -> torch.Tensor:
        E = feats.emb
        p, q = self.bilinear_e(E), self.bilinear_v(self.senet(E))
        deep = self.mlp(torch.cat([p.flatten(1), q.flatten(1)], dim=1)).squeeze(-1)
        return self.first_order(feats) + deep

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        n, d = len(old_dims), old_dims[0]
        pairs, block = pair_positions(n, keep), n * (n - 1) // 2 * d
        cols = [p * d + k for p in pairs for k in range(d)]
        self.mlp.select_inputs(cols + [block + c for c in cols])
        self.senet.select(keep)
        self.bilinear_e.select(keep)
        self.bilinear_v.select(keep)


# ---- two-stream MLP, scaling architectures -------------------------------------------------------------------
class FinalMLPModel(CTRModel):
    """FinalMLP (Mao et al., AAAI 2023): two MLP streams over the flat embedding, each behind a
    stream-specific feature-selection gate (2 * sigmoid(MLP(context)), eq. 3, with the learnable context
    vector used when no context fields are given), fused by multi-head bilinear aggregation (eq. 6).
    Context fields for the gates are not implemented (the gates use the learnable context bias).
    Allows per-field dims. Dropping fields is exact: the gate outputs and first-layer inputs of the dropped
    fields' columns are removed (the gate is multiplied by the field's zero embedding)."""

    supports_mixed_dims = True

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10,
                 mlp1_hidden: Sequence[int] = (400, 400, 400), mlp2_hidden: Sequence[int] = (800,),
                 dropout: float = 0.2, batch_norm: bool = True, use_fs: bool = True,
                 fs_hidden: Sequence[int] = (800,), fusion_heads: int = 10):
        super().__init__(fields, embedding_dim)
        width = self.embedding.output_dim
        self.use_fs = use_fs
        if use_fs:
            ctx = max(self.embedding.dims)
            # learnable context vectors (FuxiCTR's fs*_ctx_bias); full parameters, not views, are fed to
            # the gates so that torch's FLOP counter can hook them
            self.fs_context1 = nn.Parameter(torch.zeros(1, ctx))
            self.fs_context2 = nn.Parameter(torch.zeros(1, ctx))
            self.fs_gate1 = MLP(ctx, list(fs_hidden), width)
            self.fs_gate2 = MLP(ctx, list(fs_hidden), width)
        self.mlp1 = MLP(width, list(mlp1_hidden), None, dropout, batch_norm)
        self.mlp2 = MLP(width, list(mlp2_hidden), None, dropout, batch_norm)
        self.fusion = InteractionAggregation(self.mlp1.out_features, self.mlp2.out_features, fusion_heads)

    def interact(self, feats) -> torch.Tensor:
        x = flat(feats.emb)
        x1 = x2 = x
        if self.use_fs:
            x1 = x * 2 * torch.sigmoid(self.fs_gate1(self.fs_context1))
            x2 = x * 2 * torch.sigmoid(self.fs_gate2(self.fs_context2))
        return self.fusion(self.mlp1(x1), self.mlp2(x2))

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        cols = field_columns(old_dims, keep)
        if self.use_fs:
            for gate in (self.fs_gate1, self.fs_gate2):
                gate.net[-1] = select_linear_outputs(gate.net[-1], cols)
        self.mlp1.select_inputs(cols)
        self.mlp2.select_inputs(cols)


class WukongLayer(nn.Module):
    """One Wukong layer (Zang et al., ICML 2024, sec. 3): X_{i+1} = LN(concat(FMB(X_i), LCB(X_i)) + X_i).

    FMB: optimised FM X (X^T Y) (B, n, k) -> flatten -> [LayerNorm] -> MLP -> (fmb_tokens, d).
    LCB: a linear map over the token axis, (n -> lcb_tokens). The residual is projected over the token axis
    when n changes.
    """

    def __init__(self, n_in: int, dim: int, fmb_tokens: int, lcb_tokens: int, rank: int,
                 fmb_hidden: Sequence[int], fmb_layernorm: bool):
        super().__init__()
        self.n_in, self.dim, self.rank, self.fmb_tokens = n_in, dim, rank, fmb_tokens
        n_out = fmb_tokens + lcb_tokens
        self.fm_proj = nn.Parameter(torch.empty(n_in, rank))
        nn.init.xavier_normal_(self.fm_proj)
        self.fmb_norm = nn.LayerNorm(n_in * rank) if fmb_layernorm else None
        self.fmb_mlp = MLP(n_in * rank, list(fmb_hidden), fmb_tokens * dim)
        self.lcb = nn.Linear(n_in, lcb_tokens, bias=False)
        self.residual = nn.Linear(n_in, n_out, bias=False) if n_in != n_out else None
        # After dropping fields from an identity residual: where each kept input token lands (no parameters).
        self.register_buffer("residual_index", None)
        self.norm = nn.LayerNorm(dim)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        B = X.shape[0]
        fm = (X @ (X.transpose(1, 2) @ self.fm_proj)).flatten(1)
        if self.fmb_norm is not None:
            fm = self.fmb_norm(fm)
        fmb = self.fmb_mlp(fm).view(B, self.fmb_tokens, self.dim)
        lcb = self.lcb(X.transpose(1, 2)).transpose(1, 2)
        out = torch.cat([fmb, lcb], dim=1)
        if self.residual is not None:
            res = self.residual(X.transpose(1, 2)).transpose(1, 2)
        elif self.residual_index is not None:
            res = X.new_zeros(out.shape).index_copy(1, self.residual_index, X)
        else:
            res = X
        return self.norm(out + res)

    def select(self, keep: list[int]) -> None:
        """In place: accept only the input tokens `keep` (first layer). Exact unless `fmb_norm` is on (the
        LayerNorm's statistics over the flattened FM output include the masked fields' zeros)."""
        cols = field_columns([self.rank] * self.n_in, keep)
        self.fm_proj = nn.Parameter(self.fm_proj.detach()[keep].clone())
        if self.fmb_norm is not None:
            norm = nn.LayerNorm(len(cols)).to(self.fm_proj.device)
            with torch.no_grad():
                norm.weight.copy_(self.fmb_norm.weight[cols])
                norm.bias.copy_(self.fmb_norm.bias[cols])
            self.fmb_norm = norm
        self.fmb_mlp.select_inputs(cols)
        self.lcb = select_linear_inputs(self.lcb, keep)
        if self.residual is not None:
            self.residual = select_linear_inputs(self.residual, keep)
        else:
            old = self.residual_index.tolist() if self.residual_index is not None else list(range(self.n_in))
            self.residual_index = torch.tensor([old[k] for k in keep], device=self.fm_proj.device)
        self.n_in = len(keep)


class WukongModel(CTRModel):
    """Wukong (Zang et al., "Wukong: Towards a Scaling Law for Large-Scale Recommendation", ICML 2024):
    a stack of Wukong layers (FMB + LCB with residual and LayerNorm) over the field embeddings, then an MLP.
    Uniform dims only (tokens share the width d). Dropping fields is exact with ``fmb_layernorm=False``; with
    the paper's LayerNorm before the first FMB's MLP it is not (the norm's mean/variance over the flattened
    FM output include the masked fields' zero rows), and drop_fields then copies the LN's kept weights."""

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10, num_layers: int = 3,
                 fmb_tokens: int = 16, lcb_tokens: int = 16, fmb_rank: int = 8,
                 fmb_hidden: Sequence[int] = (256,), fmb_layernorm: bool = True,
                 hidden: Sequence[int] = (400, 400, 400), dropout: float = 0.2, batch_norm: bool = True):
        super().__init__(fields, embedding_dim)
        d = self.embedding.dims[0]
        n = [len(self.fields)] + [fmb_tokens + lcb_tokens] * num_layers
        self.layers = nn.ModuleList(WukongLayer(n[i], d, fmb_tokens, lcb_tokens, fmb_rank, fmb_hidden, fmb_layernorm)
                                    for i in range(num_layers))
        self.top = MLP(n[-1] * d, list(hidden), 1, dropout, batch_norm)

    def interact(self, feats) -> torch.Tensor:
        h = feats.emb
        for layer in self.layers:
            h = layer(h)
        return self.top(h.flatten(1)).squeeze(-1)

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        if len(self.layers):
            self.layers[0].select(keep)
        else:
            self.top.select_inputs(field_columns(old_dims, keep))


class RankMixerModel(CTRModel):
    """RankMixer (Zhu et al., "RankMixer: Scaling Up Ranking Models in Industrial Recommenders", 2025):
    the flat embedding is cut into T equal chunks, each projected to a D-wide token (own weights per token);
    L blocks of parameter-free multi-head token mixing (H = T heads, so mixed tokens keep width D) and
    per-token FFNs (own weights per token, width ratio k), each with residual + LayerNorm; mean-pooled tokens
    -> logit. Tokens are a gather plus one batched matmul over tokens. Allows per-field dims (chunks cut the
    flat concatenation). Dropping fields is exact: a zero column contributes nothing to its token's
    projection, so its weight row is removed (chunks then have unequal lengths, padded with a constant zero
    column, which adds no parameters)."""

    supports_mixed_dims = True

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10, num_tokens: int = 8,
                 token_dim: int = 64, num_layers: int = 2, ffn_ratio: int = 4):
        super().__init__(fields, embedding_dim)
        if token_dim % num_tokens:
            raise ValueError(f"token_dim ({token_dim}) must be divisible by num_tokens ({num_tokens}): "
                             "token mixing splits every token into num_tokens heads")
        T, D, width = num_tokens, token_dim, self.embedding.output_dim
        chunk = -(-width // T)
        self._set_gather([[c for c in range(t * chunk, min((t + 1) * chunk, width))] for t in range(T)], width)
        self.token_weight = nn.Parameter(torch.empty(width, D))
        nn.init.normal_(self.token_weight, std=(1.0 / chunk) ** 0.5)
        self.token_bias = nn.Parameter(torch.zeros(T, D))
        self.num_tokens, self.token_dim = T, D
        self.ffn_w1 = nn.Parameter(torch.empty(num_layers, T, D, ffn_ratio * D))
        self.ffn_b1 = nn.Parameter(torch.zeros(num_layers, T, ffn_ratio * D))
        self.ffn_w2 = nn.Parameter(torch.empty(num_layers, T, ffn_ratio * D, D))
        self.ffn_b2 = nn.Parameter(torch.zeros(num_layers, T, D))
        nn.init.normal_(self.ffn_w1, std=D ** -0.5)
        nn.init.normal_(self.ffn_w2, std=(ffn_ratio * D) ** -0.5)
        self.norm_mix = nn.ModuleList(nn.LayerNorm(D) for _ in range(num_layers))
        self.norm_ffn = nn.ModuleList(nn.LayerNorm(D) for _ in range(num_layers))
        self.head = nn.Linear(D, 1)

    def _set_gather(self, token_columns: list[list[int]], width: int) -> None:
        """token_columns[t]: flat-embedding columns of token t; padded with `width` (a constant zero column)."""
        C = max(1, max(len(c) for c in token_columns))
        gather = [c + [width] * (C - len(c)) for c in token_columns]
        self.register_buffer("gather_index", torch.tensor(gather, dtype=torch.long), persistent=False)
        self.token_columns = token_columns

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        xp = torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1)
        wp = torch.cat([self.token_weight, self.token_weight.new_zeros(1, self.token_dim)], dim=0)
        return torch.einsum("btc,tcd->btd", xp[:, self.gather_index], wp[self.gather_index]) + self.token_bias

    def interact(self, feats) -> torch.Tensor:
        h = self.tokenize(flat(feats.emb))
        B, T, D = h.shape
        for layer in range(self.ffn_w1.shape[0]):
            # token mixing: head j of every token -> new token j (H = T heads of width D / T)
            mixed = h.view(B, T, T, D // T).transpose(1, 2).reshape(B, T, D)
            h = self.norm_mix[layer](mixed + h)
            ffn = torch.nn.functional.gelu(torch.einsum("btd,tdk->btk", h, self.ffn_w1[layer]) + self.ffn_b1[layer])
            h = self.norm_ffn[layer](torch.einsum("btk,tkd->btd", ffn, self.ffn_w2[layer]) + self.ffn_b2[layer] + h)
        return self.head(h.mean(dim=1)).squeeze(-1)

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        cols = field_columns(old_dims, keep)
        new_pos = {c: i for i, c in enumerate(cols)}
        self.token_weight = nn.Parameter(self.token_weight.detach()[cols].clone())
        self._set_gather([[new_pos[c] for c in tc if c in new_pos] for tc in self.token_columns], len(cols))
        self.gather_index = self.gather_index.to(self.token_weight.device)
