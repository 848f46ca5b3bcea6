"""Feature-interaction layers shared by the model zoo (and by any method that builds on it).

Every forward is vectorised over fields, field pairs and heads (no Python loops over them); loops appear only
over stacked *layers*. Each layer that consumes per-field inputs has a ``select(keep)`` (or a helper below)
that slices its weights to the fields ``keep`` (weight transfer), so models built from these layers can
drop fields.

Conventions: ``E`` is the field-embedding tensor (B, F, d); pairs (i < j) are ordered row-major, as
``torch.triu_indices(F, F, 1)`` orders them.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from leanrec.nn.layers import select_linear_inputs

__all__ = [
    "pair_positions", "select_linear_inputs", "select_linear_outputs", "InnerProduct", "FieldPairWeights",
    "CIN", "CrossNetV2", "MultiHeadSelfAttention", "SENet", "BilinearInteraction", "InteractionAggregation",
]


# ---- helpers -----------------------------------------------------------------------------------------------
def pair_positions(num_fields: int, keep: Sequence[int]) -> list[int]:
    """Positions, in the row-major list of pairs (i < j) over `num_fields` fields, of the pairs whose fields
    are both in `keep` (sorted), in the order the pairs of the kept fields have after re-indexing."""
    kept = set(int(k) for k in keep)
    rows, cols = torch.triu_indices(num_fields, num_fields, 1).tolist()
    return [p for p, (i, j) in enumerate(zip(rows, cols)) if i in kept and j in kept]


def select_linear_outputs(linear: nn.Linear, rows: Sequence[int]) -> nn.Linear:
    """A new Linear producing only the output `rows` of `linear` (weights copied)."""
    idx = torch.as_tensor(list(rows), dtype=torch.long, device=linear.weight.device)
    new = nn.Linear(linear.in_features, len(idx), bias=linear.bias is not None).to(linear.weight.device)
    with torch.no_grad():
        new.weight.copy_(linear.weight[idx])
        if linear.bias is not None:
            new.bias.copy_(linear.bias[idx])
    return new


def _triu(num_fields: int, module: nn.Module) -> None:
    rows, cols = torch.triu_indices(num_fields, num_fields, 1)
    module.register_buffer("rows", rows, persistent=False)
    module.register_buffer("cols", cols, persistent=False)


# ---- pairwise products -------------------------------------------------------------------------------------
class InnerProduct(nn.Module):
    """Pairwise inner products <e_i, e_j>, i < j: (B, F, d) -> (B, F(F-1)/2). Used by IPNN and FwFM.

    Computed as one batched Gram matrix E E^T and a gather of its upper triangle.
    """

    def __init__(self, num_fields: int):
        super().__init__()
        self.num_fields = num_fields
        _triu(num_fields, self)

    @property
    def num_pairs(self) -> int:
        return self.num_fields * (self.num_fields - 1) // 2

    def forward(self, E: torch.Tensor) -> torch.Tensor:
        gram = torch.bmm(E, E.transpose(1, 2))
        return gram[:, self.rows, self.cols]

    def select(self, keep: Sequence[int]) -> "InnerProduct":
        return InnerProduct(len(keep)).to(self.rows.device)


class FieldPairWeights(nn.Module):
    """FwFM's second-order term: sum_{i<j} r_ij <e_i, e_j> with one learned weight per field pair."""

    def __init__(self, num_fields: int):
        super().__init__()
        self.product = InnerProduct(num_fields)
        self.weight = nn.Parameter(torch.empty(self.product.num_pairs))
        # r_ij = 1 + noise: training starts from a plain FM's pair weighting.
        nn.init.normal_(self.weight, mean=1.0, std=0.1)

    def forward(self, E: torch.Tensor) -> torch.Tensor:
        return self.product(E) @ self.weight

    def select(self, keep: Sequence[int]) -> None:
        """In place: keep only the pair weights of the fields `keep`."""
        pos = pair_positions(self.product.num_fields, keep)
        self.product = self.product.select(keep)
        self.weight = nn.Parameter(self.weight.detach()[pos].clone())


class CIN(nn.Module):
    """Compressed Interaction Network of xDeepFM (Lian et al., KDD 2018, eq. 6).

    Layer k: X^k_h = sum_{i,j} W^{k,h}_{ij} (X^{k-1}_i * X^0_j), implemented as one outer product
    (B, H_{k-1}, m, d) -> reshape (B, H_{k-1} m, d) -> 1x1 convolution to H_k maps. Each layer's maps (the
    second half when `split_half`) are sum-pooled over d and concatenated: (B, output_dim).
    """

    def __init__(self, num_fields: int, layer_units: Sequence[int], split_half: bool = False):
        super().__init__()
        self.num_fields, self.layer_units, self.split_half = num_fields, list(layer_units), split_half
        if split_half and any(h % 2 for h in self.layer_units[:-1]):
            raise ValueError(f"split_half needs even CIN layer sizes (but the last), got {self.layer_units}")
        self.convs = nn.ModuleList()
        prev, out = num_fields, 0
        for k, h in enumerate(self.layer_units):
            self.convs.append(nn.Conv1d(prev * num_fields, h, kernel_size=1))
            last = k == len(self.layer_units) - 1
            prev = h // 2 if split_half and not last else h
            out += h // 2 if split_half and not last else h
        self.output_dim = out

    def forward(self, X0: torch.Tensor) -> torch.Tensor:
        B, m, d = X0.shape
        h, pooled = X0, []
        for k, conv in enumerate(self.convs):
            z = (h.unsqueeze(2) * X0.unsqueeze(1)).reshape(B, -1, d)
            x = conv(z)
            if self.split_half and k < len(self.convs) - 1:
                h, direct = x.chunk(2, dim=1)
            else:
                h = direct = x
            pooled.append(direct.sum(-1))
        return torch.cat(pooled, dim=1)

    def select(self, keep: Sequence[int]) -> None:
        """In place: keep the X^0 channels of fields `keep` in every layer (and the X^{k-1} = X^0 channels of
        the first layer). Exact: a zero field embedding zeroes every channel it enters."""
        keep = [int(k) for k in keep]
        m = self.num_fields
        prev = m
        for k, conv in enumerate(self.convs):
            rows = keep if k == 0 else list(range(prev))
            channels = [r * m + j for r in rows for j in keep]
            new = nn.Conv1d(len(channels), conv.out_channels, kernel_size=1).to(conv.weight.device)
            with torch.no_grad():
                new.weight.copy_(conv.weight[:, channels])
                new.bias.copy_(conv.bias)
            self.convs[k] = new
            last = k == len(self.convs) - 1
            prev = conv.out_channels // 2 if self.split_half and not last else conv.out_channels
        self.num_fields = len(keep)


class CrossNetV2(nn.Module):
    """DCN-V2 cross network (Wang et al., WWW 2021, eq. 1): x_{l+1} = x_0 * (W_l x_l + b_l) + x_l.

    Full-rank W_l by default; `low_rank` > 0 uses W_l = U_l V_l^T (the paper's low-rank cross layer, eq. 2,
    with one expert). Works on the flat embedding, so it allows per-field dims.
    """

    def __init__(self, input_dim: int, num_layers: int, low_rank: int = 0):
        super().__init__()
        self.input_dim, self.low_rank = input_dim, low_rank
        if low_rank > 0:
            self.V = nn.ModuleList(nn.Linear(input_dim, low_rank, bias=False) for _ in range(num_layers))
            self.U = nn.ModuleList(nn.Linear(low_rank, input_dim) for _ in range(num_layers))
        else:
            self.W = nn.ModuleList(nn.Linear(input_dim, input_dim) for _ in range(num_layers))

    def _layers(self):
        if self.low_rank > 0:
            return [lambda x, v=v, u=u: u(v(x)) for v, u in zip(self.V, self.U)]
        return list(self.W)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self._layers():
            x = x0 * layer(x) + x
        return x

    def select(self, columns: Sequence[int]) -> None:
        """In place: keep input/output `columns`. Exact for zeroed columns: a column with x_0 = 0 stays 0 in
        every layer, so its row and column of W_l never influence the kept columns."""
        cols = list(columns)
        if self.low_rank > 0:
            for i in range(len(self.V)):
                self.V[i] = select_linear_inputs(self.V[i], cols)
                self.U[i] = select_linear_outputs(self.U[i], cols)
        else:
            for i in range(len(self.W)):
                self.W[i] = select_linear_outputs(select_linear_inputs(self.W[i], cols), cols)
        self.input_dim = len(cols)


class MultiHeadSelfAttention(nn.Module):
    """AutoInt's interacting layer (Song et al., CIKM 2019, eqs. 5-8): multi-head self-attention over field
    embeddings with a residual projection and ReLU: (B, F, d_in) -> (B, F, heads * head_dim).

    All heads in one batched matmul. `key_mask` (F,) bool excludes keys (fields) from the softmax.
    """

    def __init__(self, input_dim: int, head_dim: int, num_heads: int, use_residual: bool = True,
                 use_scale: bool = False):
        super().__init__()
        self.head_dim, self.num_heads, self.use_scale = head_dim, num_heads, use_scale
        out = head_dim * num_heads
        self.W_q = nn.Linear(input_dim, out, bias=False)
        self.W_k = nn.Linear(input_dim, out, bias=False)
        self.W_v = nn.Linear(input_dim, out, bias=False)
        self.W_res = nn.Linear(input_dim, out, bias=False) if use_residual else None
        self.output_dim = out

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, F, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:  # (B, F, H*k) -> (B, H, F, k)
            return t.view(B, F, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.W_q(x)), heads(self.W_k(x)), heads(self.W_v(x))
        scores = q @ k.transpose(-1, -2)
        if self.use_scale:
            scores = scores / math.sqrt(self.head_dim)
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask.view(1, 1, 1, F), float("-inf"))
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, F, -1)
        if self.W_res is not None:
            out = out + self.W_res(x)
        return torch.relu(out)


class SENet(nn.Module):
    """FiBiNET's Squeeze-Excitation over fields (Huang et al., RecSys 2019, eqs. 1-4): z = mean_d(E),
    a = ReLU(W2 ReLU(W1 z)), output E * a. (B, F, d) -> (B, F, d)."""

    def __init__(self, num_fields: int, reduction_ratio: float = 3.0):
        super().__init__()
        self.hidden = max(1, int(num_fields / reduction_ratio))
        self.W1 = nn.Linear(num_fields, self.hidden, bias=False)
        self.W2 = nn.Linear(self.hidden, num_fields, bias=False)

    def forward(self, E: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.W2(torch.relu(self.W1(E.mean(-1)))))
        return E * a.unsqueeze(-1)

    def select(self, keep: Sequence[int]) -> None:
        """In place. Exact: a zero field contributes 0 to the squeeze and its own weight multiplies zeros."""
        self.W1 = select_linear_inputs(self.W1, keep)
        self.W2 = select_linear_outputs(self.W2, keep)


class BilinearInteraction(nn.Module):
    """FiBiNET's bilinear interaction (eqs. 5-7): p_ij = (v_i W) * v_j for i < j, with W shared
    ("field_all"), per field i ("field_each") or per pair ("field_interaction"). (B, F, d) -> (B, P, d)."""

    TYPES = ("field_all", "field_each", "field_interaction")

    def __init__(self, num_fields: int, dim: int, bilinear_type: str = "field_interaction"):
        super().__init__()
        if bilinear_type not in self.TYPES:
            raise ValueError(f"bilinear_type must be one of {self.TYPES}, got {bilinear_type!r}")
        self.num_fields, self.bilinear_type = num_fields, bilinear_type
        _triu(num_fields, self)
        n = {"field_all": 1, "field_each": num_fields, "field_interaction": len(self.rows)}[bilinear_type]
        self.weight = nn.Parameter(torch.empty(n, dim, dim))
        nn.init.xavier_normal_(self.weight)

    def forward(self, E: torch.Tensor) -> torch.Tensor:
        left, right = E[:, self.rows], E[:, self.cols]
        if self.bilinear_type == "field_all":
            return (left @ self.weight[0]) * right
        if self.bilinear_type == "field_each":
            vw = torch.einsum("bfd,fde->bfe", E, self.weight)
            return vw[:, self.rows] * right
        return torch.einsum("bpd,pde->bpe", left, self.weight) * right

    def select(self, keep: Sequence[int]) -> None:
        """In place; exact (a pair with a zero field is zero)."""
        pos = {"field_all": [0], "field_each": list(keep),
               "field_interaction": pair_positions(self.num_fields, keep)}[self.bilinear_type]
        self.weight = nn.Parameter(self.weight.detach()[pos].clone())
        self.num_fields = len(keep)
        _triu(self.num_fields, self)
        self.rows, self.cols = self.rows.to(self.weight.device), self.cols.to(self.weight.device)


class InteractionAggregation(nn.Module):
    """FinalMLP's multi-head bilinear fusion (Mao et al., AAAI 2023, eq. 6):
    y = w_x^T x + w_y^T y + sum_h x_h^T W_h y_h + b, heads over equal slices of x and y (one einsum)."""

    def __init__(self, x_dim: int, y_dim: int, num_heads: int = 1):
        super().__init__()
        if x_dim % num_heads or y_dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide both stream widths ({x_dim}, {y_dim})")
        self.num_heads, self.hx, self.hy = num_heads, x_dim // num_heads, y_dim // num_heads
        self.w_x = nn.Linear(x_dim, 1)
        self.w_y = nn.Linear(y_dim, 1, bias=False)
        self.w_xy = nn.Parameter(torch.empty(num_heads, self.hx, self.hy))
        nn.init.xavier_normal_(self.w_xy)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        xh, yh = x.view(B, self.num_heads, self.hx), y.view(B, self.num_heads, self.hy)
        bilinear = torch.einsum("bhx,hxy,bhy->b", xh, self.w_xy, yh)
        return self.w_x(x).squeeze(-1) + self.w_y(y).squeeze(-1) + bilinear
