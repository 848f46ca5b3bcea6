"""The SSR layer (filter-then-fuse over b views) and the SSR backbone (L stacked layers and a head).

Every view is processed in one batched operation: the static filter is one gather of a (b, k) index table,
projections are one Linear of width b * d_v, and the per-view dense fusion is one einsum over views (a bmm
with the block-diagonal weight diag(V_1, ..., V_b) stored as a (b, k, d_v) tensor).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from leanrec.nn import MLP, CTRModel, Dropout, Features, FieldSpec, field_columns

from leanrec_ssr.ics import ics, topk_ste

# random: SSR-S static random filter (eq. 3)      ics: SSR-D projection + ICS (eq. 4, Algorithm 1)
# topk:   projection + Top-k straight-through     none: no filtering, every view sees the whole input
# dropout: every view sees the whole input through its own Dropout mask (regularisation instead of filtering)
FILTERS = ("random", "ics", "topk", "none", "dropout")
PROJECTED = ("ics", "topk")


class SSRLayer(nn.Module):
    """One SSR layer: h_i = F_i(x) (filter), z_i = GELU(h_i V_i + bias_i) (fusion, eq. 5), y_i = LN_i(z_i) (eq. 6).

    Input (B, d_in); output (B, b, d_v). ``k`` is the width each view's fusion reads: the number of gathered
    dims for the random filter (``filter_dim``, default d_v, at most d_in), d_v for projected filters, d_in for
    "none"/"dropout". Options from the official code: ``residual`` (z_i = h_i + GELU(h_i V_i + bias_i)) and
    ``gate`` (h_i = ICS(x W_i^proj) * (x W_i^value)).
    """

    def __init__(self, d_in: int, b: int, d_v: int, filter: str = "random", *, filter_dim: int | None = None,
                 ics_iters: int = 5, ics_alpha: float = 0.1, ics_gamma: bool = True, topk_keep: float = 0.1,
                 dropout_rate: float | None = None, residual: bool = False, gate: bool = False):
        super().__init__()
        if filter not in FILTERS:
            raise ValueError(f"unknown SSR filter {filter!r}; choose one of {FILTERS}")
        if gate and filter not in PROJECTED:
            raise ValueError(f"gate=True needs a projected filter {PROJECTED}, got {filter!r}")
        self.d_in, self.b, self.d_v, self.filter = d_in, b, d_v, filter
        self.residual, self.gate = residual, gate
        self.pad_zero = False  # set by select_inputs when gathered indices point at a dropped input column
        if filter == "random":
            k = min(filter_dim or d_v, d_in)
            # b independent draws without replacement: the first k entries of b random permutations of d_in.
            self.register_buffer("index", torch.rand(b, d_in).argsort(dim=1)[:, :k].contiguous())
        elif filter in PROJECTED:
            k = d_v
            self.proj = nn.Linear(d_in, b * d_v, bias=False)  # W_i^proj of all views side by side
            self.value = nn.Linear(d_in, b * d_v, bias=False) if gate else None
            if filter == "ics":
                self.alpha = nn.Parameter(torch.full((b, ics_iters), float(ics_alpha)))
                self.gamma = nn.Parameter(torch.ones(b, d_v)) if ics_gamma else None
            else:
                self.topk = max(1, min(d_v, round(topk_keep * d_v)))
        else:
            k = d_in
            if filter == "dropout":
                # Default: the same expected share of kept dims as a static filter of width d_v.
                rate = 1.0 - min(d_v, d_in) / d_in if dropout_rate is None else dropout_rate
                self.dropout = Dropout(rate)
        if residual and k != d_v:
            raise ValueError(f"residual=True needs the fused width k ({k}) to equal d_v ({d_v}); "
                             "for the random filter that means d_v <= d_in and filter_dim = d_v")
        self.k = k
        bound = math.sqrt(6.0 / (k + d_v))  # Glorot-uniform per view, like the official Dense layers
        self.V = nn.Parameter(torch.empty(b, k, d_v).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(b, d_v))
        self.ln_weight = nn.Parameter(torch.ones(b, d_v))  # per-view LayerNorm affine
        self.ln_bias = nn.Parameter(torch.zeros(b, d_v))

    def filter_views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(h, s): h (B, b, k) what each view's fusion reads; s (B, b, d_v) the sparsified activation whose
        exact zeros define the sparsity ratio (ICS or Top-k output; None for the other filters)."""
        B = x.shape[0]
        if self.filter == "random":
            if self.pad_zero:
                x = F.pad(x, (0, 1))  # column d_in is a constant 0: where dropped fields' dims used to be
            return x[:, self.index], None  # one gather (zero FLOPs)
        if self.filter in PROJECTED:
            z = self.proj(x).view(B, self.b, self.d_v)
            s = ics(z, self.alpha, self.gamma) if self.filter == "ics" else topk_ste(z, self.topk)
            h = s * self.value(x).view(B, self.b, self.d_v) if self.gate else s
            return h, s
        h = x.unsqueeze(1).expand(B, self.b, self.d_in)
        return (self.dropout(h) if self.filter == "dropout" else h), None

    def fuse(self, h: torch.Tensor) -> torch.Tensor:
        """Per-view dense fusion and LayerNorm for h (B, b, k) -> (B, b, d_v), all views in one einsum."""
        z = F.gelu(torch.einsum("nvk,vkd->nvd", h, self.V) + self.bias)
        if self.residual:
            z = z + h
        return F.layer_norm(z, (self.d_v,)) * self.ln_weight + self.ln_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.filter_views(x)[0])

    def select_inputs(self, columns: Sequence[int]) -> None:
        """Keep only the input columns `columns` (weight transfer); exact w.r.t. zeroing the other columns."""
        cols = torch.as_tensor(list(columns), dtype=torch.long, device=self.V.device)
        new_d_in = len(cols)
        if self.filter == "random":
            self._select_random(cols, new_d_in)
        elif self.filter in PROJECTED:
            for name in ("proj", "value"):
                old = getattr(self, name)
                if old is None:
                    continue
                new = nn.Linear(new_d_in, old.out_features, bias=False).to(old.weight.device)
                with torch.no_grad():
                    new.weight.copy_(old.weight[:, cols])
                setattr(self, name, new)
        else:
            self.V = nn.Parameter(self.V.detach()[:, cols].clone())
            self.k = new_d_in
        self.d_in = new_d_in

    def _select_random(self, cols: torch.Tensor, new_d_in: int) -> None:
        # old column -> new position, -1 for dropped columns
        where = torch.full((self.d_in + int(self.pad_zero),), -1, dtype=torch.long, device=cols.device)
        where[cols] = torch.arange(new_d_in, device=cols.device)
        mapped = where[self.index]                                  # (b, k)
        kept = mapped >= 0
        V = self.V.detach()
        if not self.residual:
            # Compact: move each view's kept dims first and shrink k to the largest kept count, so dropped
            # fields' weights leave the model; shorter views are padded with the zero column and zero rows.
            order = (~kept).to(torch.int8).argsort(dim=1, stable=True)
            mapped, kept = mapped.gather(1, order), kept.gather(1, order)
            V = V.gather(1, order.unsqueeze(-1).expand(-1, -1, self.d_v))
            k = int(kept.sum(dim=1).max())
            mapped, kept, V = mapped[:, :k], kept[:, :k], V[:, :k]
        self.index = torch.where(kept, mapped, torch.full_like(mapped, new_d_in)).contiguous()
        self.V = nn.Parameter((V * kept.unsqueeze(-1)).clone())
        self.k = self.index.shape[1]
        self.pad_zero = bool((~kept).any())


def view_cosine(weights: torch.Tensor) -> torch.Tensor:
    """Pairwise cosine similarity (b, b) of b views' matrices `weights` (b, ...), each flattened (SSR Fig. 6)."""
    flat = weights.detach().reshape(weights.shape[0], -1).double()
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return flat @ flat.T


def view_diversity(trained: Sequence[torch.Tensor], init: Sequence[torch.Tensor]) -> dict:
    """SSR Fig. 6's statistic per layer: the mean and largest |cosine| between different views' projection
    matrices, after training and at initialisation, the (b, b) matrix itself (4 decimals, for heatmaps) and
    ``relative_change`` = ||W - W_0|| / ||W_0|| (how far training moved them: near 0, the similarities describe
    the initialiser). The same statistics of the updates W - W_0 (``update_*``) say whether training itself
    pulls the views together (updates pointing the same way) or apart, however far it moved them.
    ``mean_abs_cosine``, ``update_mean_abs_cosine`` and ``relative_change`` at the top level are means over
    layers."""
    layers = []
    for w, w0 in zip(trained, init):
        w, w0 = w.detach().cpu().double(), w0.detach().cpu().double()   # small (b x b) results: on the CPU
        b = w.shape[0]
        off = ~torch.eye(b, dtype=torch.bool)
        cos, cos0, cos_update = view_cosine(w), view_cosine(w0), view_cosine(w - w0)
        layers.append({
            "mean_abs_cosine": float(cos[off].abs().mean()) if b > 1 else None,
            "max_abs_cosine": float(cos[off].abs().max()) if b > 1 else None,
            "init_mean_abs_cosine": float(cos0[off].abs().mean()) if b > 1 else None,
            "update_mean_abs_cosine": float(cos_update[off].abs().mean()) if b > 1 else None,
            "update_max_abs_cosine": float(cos_update[off].abs().max()) if b > 1 else None,
            "relative_change": float((w - w0).norm() / w0.norm()),
            "cosine": [[round(float(v), 4) for v in row] for row in cos],
            "update_cosine": [[round(float(v), 4) for v in row] for row in cos_update],
        })
    means = {key: (sum(vals) / len(vals) if (vals := [x[key] for x in layers if x[key] is not None]) else None)
             for key in ("mean_abs_cosine", "update_mean_abs_cosine", "relative_change")}
    return {**means, "layers": layers}


class SSRModel(CTRModel):
    """SSR backbone: concatenated field embeddings -> L SSR layers -> head (Linear, or MLP with head_hidden).

    Layer 1 reads the F*d embedding dims; layer l > 1 reads the b*d_v concatenated views of layer l-1. With
    ``head_mean`` the head reads the mean over the last layer's views (official code) instead of their
    concatenation. Per-field dims may differ (the embedding is flattened either way).
    """

    supports_mixed_dims = True

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: int | Sequence[int] = 16, b: int = 16,
                 d_v: int = 256, num_layers: int = 2, filter: str = "random", filter_dim: int | None = None,
                 ics_iters: int = 5, ics_alpha: float = 0.1, ics_gamma: bool = True, topk_keep: float = 0.1,
                 dropout_rate: float | None = None, residual: bool = False, gate: bool = False,
                 head_mean: bool = False, head_hidden: Sequence[int] = (), init_std: float = 1e-2):
        super().__init__(fields, embedding_dim, init_std)
        opts = dict(filter=filter, filter_dim=filter_dim, ics_iters=ics_iters, ics_alpha=ics_alpha,
                    ics_gamma=ics_gamma, topk_keep=topk_keep, dropout_rate=dropout_rate, residual=residual,
                    gate=gate)
        d_in = self.embedding.output_dim
        layers = []
        for _ in range(num_layers):
            layers.append(SSRLayer(d_in, b, d_v, **opts))
            d_in = b * d_v
        self.layers = nn.ModuleList(layers)
        self.b, self.d_v, self.head_mean = b, d_v, head_mean
        self.head = MLP(d_v if head_mean else b * d_v, list(head_hidden), 1)

    def _flat(self, feats: Features) -> torch.Tensor:
        return feats.emb.flatten(1)  # (B, F, d) -> (B, F*d); mixed dims are already flat

    def interact(self, feats: Features) -> torch.Tensor:
        x = self._flat(feats)
        y = None
        for layer in self.layers:  # loop over depth L, not over views
            y = layer(x)
            x = y.flatten(1)
        out = y.mean(dim=1) if self.head_mean else x
        return self.head(out).squeeze(-1)

    @torch.no_grad()
    def filter_sparsity(self, X: torch.Tensor) -> list[float] | None:
        """Share of exact zeros in each layer's sparsified activation (ICS / Top-k output) on inputs X, in
        eval mode; None when the filter has no data-dependent sparsity (random, none, dropout)."""
        if self.layers[0].filter not in PROJECTED:
            return None
        was_training = self.training
        self.eval()
        x = self._flat(self.embed(X))
        ratios = []
        for layer in self.layers:
            h, s = layer.filter_views(x)
            ratios.append(float((s == 0).float().mean()))
            x = layer.fuse(h).flatten(1)
        self.train(was_training)
        return ratios

    def view_projections(self) -> list[torch.Tensor] | None:
        """Each layer's projection weights W^proj of all views, (b, d_v, d_in) with view i at [i] (detached
        copies); None when the filter projects nothing (random, none, dropout)."""
        if self.layers[0].filter not in PROJECTED:
            return None
        return [layer.proj.weight.detach().view(layer.b, layer.d_v, layer.d_in).clone() for layer in self.layers]

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        # Only layer 1 reads per-field inputs; its columns are the kept fields' embedding dims.
        self.layers[0].select_inputs(field_columns(old_dims, keep))

    def describe(self) -> dict:
        out = super().describe()
        out["view_widths"] = [layer.k for layer in self.layers]
        return out
