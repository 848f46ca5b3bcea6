"""The baseline CTR backbones as CTRModel subclasses (serving models).

Every model maps per-field representations (``Features``) to logits (B,), vectorised over fields, pairs and
heads. ``_transfer_fields(keep, old_dims)`` slices the layers that read per-field inputs so that
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

    def _transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        pass  # the per-field weights live in linear_embedding, which drop_fields already selected


class FMModel(_FirstOrder):
    """Factorization Machine (Rendle, ICDM 2010): first order + sum_{i<j} <v_i, v_j>, in O(F d).
    Needs one dim for all fields (inner products). Dropping fields is exact (a zero v_i adds nothing)."""

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10):
        super().__init__(fields, embedding_dim)
        self.fm = FactorizationMachine()

    def interact(self, feats) -> torch.Tensor:
        return self.first_order(feats) + self.fm(feats.emb)

    def _transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        pass


class FwFMModel(_FirstOrder):
    """Field-weighted FM (Pan et al., WWW 2018): first order + sum_{i<j} r_{F(i)F(j)} <v_i, v_j> with one
    learned weight per field pair. Uniform dims only. Dropping fields is exact (pair weights are selected)."""

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: Dims = 10):
        super().__init__(fields, embedding_dim)
        self.fwfm = FieldPairWeights(len(self.fields))

    def interact(self, feats) -> torch.Tensor:
        return self.first_order(feats) + self.fwfm(feats.emb)

    def _transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
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

    def _transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
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

    def _transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
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

    def _transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        super()._transfer_fields(keep, old_dims)
        self.cin.select(keep)
