"""i-Razor's search stage (paper section 3.2) and CPT pruning (Algorithm 1).

Every field gets one d_K-dimensional embedding, split by the sorted candidate set D = {d_1 < ... < d_K} into K
non-overlapping regions: region 1 covers positions [0, d_1), region k covers [d_{k-1}, d_k). With d_1 = 0 the
first region is empty and stands for "drop the field". The search model batch-normalises every embedding
position (eq. 3, no affine), multiplies it by sum_k alpha_ik O_k with alpha_i = softmax(w_i / tau) (eqs. 2, 4)
and feeds the result to the target backbone; the loss adds lambda * L_p, the cardinality-weighted expected
number of dims (eqs. 5-7).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from leanrec.errors import ConfigError
from leanrec.nn import CTRModel, Features


def resolve_candidates(candidates: Sequence[int], zero_dim: bool = True) -> list[int]:
    """The sorted candidate set actually searched: 0 added (zero_dim) or removed (ablation 'w/o 0')."""
    values = {int(c) for c in candidates}
    if any(c < 0 for c in values):
        raise ConfigError(f"candidate dims must be >= 0, got {sorted(values)}")
    values = values | {0} if zero_dim else values - {0}
    out = sorted(values)
    if len(out) < 2 or out[-1] < 1:
        raise ConfigError(f"need at least two candidate dims and a positive maximum, got {out}")
    return out


def region_widths(candidates: Sequence[int]) -> list[int]:
    """c_m of eq. 6: d_1 for the first region, d_m - d_{m-1} afterwards."""
    cand = [int(c) for c in candidates]
    if any(b <= a for a, b in zip(cand, cand[1:])):
        raise ValueError(f"candidates must be strictly increasing, got {cand}")
    return [cand[0]] + [b - a for a, b in zip(cand, cand[1:])]


def region_masks(candidates: Sequence[int]) -> torch.Tensor:
    """The operators O_k as one (K, d_K) 0/1 tensor: row k is 1 exactly on region k's positions."""
    widths = region_widths(candidates)
    region_of_position = torch.repeat_interleave(torch.arange(len(widths)), torch.tensor(widths))
    return nn.functional.one_hot(region_of_position, len(widths)).T.float()


def cardinality_shares(cardinalities: Sequence[int]) -> torch.Tensor:
    """|f_i| / sum_j |f_j| (eq. 5): the weight of field i in the parameter regulariser."""
    card = torch.as_tensor([float(c) for c in cardinalities], dtype=torch.float64)
    if (card < 0).any() or card.sum() <= 0:
        raise ValueError(f"field cardinalities must be >= 0 with a positive sum, got {card.tolist()}")
    return (card / card.sum()).float()


def cpt_prune(probs: np.ndarray | torch.Tensor, candidates: Sequence[int], cpt: float) -> np.ndarray:
    """Algorithm 1 for every field at once: per-field dims (F,) from region probabilities (F, K).

    Regions are visited in descending probability (ties: lower region first) and added until the cumulative
    probability reaches `cpt`; the first region is always taken, so cpt = 0 is argmax and cpt = 1 keeps every
    region. The result is the sum of the taken regions' widths and need not be a candidate value
    ({0, 1, 3, 6}: regions of width 2 and 3 give 5). 0 means the field is dropped.
    """
    if not 0.0 <= cpt <= 1.0:
        raise ConfigError(f"cpt must lie in [0, 1], got {cpt}")
    p = probs.detach().cpu().double().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs, np.float64)
    widths = np.asarray(region_widths(candidates))
    if p.ndim != 2 or p.shape[1] != len(widths):
        raise ValueError(f"probs must be (F, {len(widths)}), got {p.shape}")
    order = np.argsort(-p, axis=1, kind="stable")
    sorted_p = np.take_along_axis(p, order, axis=1)
    before = np.cumsum(sorted_p, axis=1) - sorted_p          # cumulative probability before each step
    taken = before < cpt
    taken[:, 0] = True
    if cpt >= 1.0:
        # Exactly the paper's "cpt = 1 retains all regions"; without this, a probability that underflowed to
        # 0 (tau = 0.05 makes that easy in float32) would stop the loop one region early.
        taken[:] = True
    return (widths[order] * taken).sum(axis=1).astype(int)


class IRazorSearch(nn.Module):
    """The search-stage model: a backbone over uniform d_K embeddings with region gating in front.

    `backbone` must have been built with embedding_dim = d_K = max(candidates). Forward is vectorised over
    fields: one BatchNorm1d over the flattened (F * d_K) positions and one (F, K) @ (K, d_K) product for the
    soft region masks.
    """

    def __init__(self, backbone: CTRModel, candidates: Sequence[int], tau: float,
                 cardinalities: Sequence[int]):
        super().__init__()
        cand = [int(c) for c in candidates]
        d_k = cand[-1]
        if not backbone.embedding.uniform or backbone.embedding.dims[0] != d_k:
            raise ValueError(f"the search backbone needs uniform embedding dim {d_k}, got {backbone.embedding.dims}")
        if len(cardinalities) != backbone.num_fields:
            raise ValueError(f"{len(cardinalities)} cardinalities for {backbone.num_fields} fields")
        self.backbone = backbone
        self.candidates, self.tau = cand, float(tau)
        self.register_buffer("masks", region_masks(cand))                                   # (K, d_K)
        self.register_buffer("widths", torch.tensor(region_widths(cand), dtype=torch.float32))  # (K,)
        self.register_buffer("shares", cardinality_shares(cardinalities))                   # (F,)
        # w_i initialised to zero (uniform alpha), as in the official code.
        self.arch_logits = nn.Parameter(torch.zeros(backbone.num_fields, len(cand)))
        # Eq. 3: per (field, position) standardisation with batch statistics, no learned scale/shift.
        self.bn = nn.BatchNorm1d(backbone.num_fields * d_k, affine=False)

    def region_probs(self) -> torch.Tensor:
        """alpha (F, K) = softmax(w / tau) per field (eq. 2)."""
        return torch.softmax(self.arch_logits / self.tau, dim=1)

    def param_regulariser(self) -> torch.Tensor:
        """L_p (eq. 5): sum_i share_i * sum_m c_m alpha_im, the cardinality-weighted expected dims."""
        return (self.shares * (self.region_probs() @ self.widths)).sum()

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.embed(X)
        B, F, d = feats.emb.shape
        emb = self.bn(feats.emb.reshape(B, F * d)).view(B, F, d)
        alpha = self.region_probs()
        emb = emb * (alpha @ self.masks)                                    # eq. 4, all fields at once
        linear = feats.linear
        if linear is not None and self.candidates[0] == 0:
            # A first-order term has no regions; gate it by the probability that the field is kept at all,
            # so the zero region also controls it (the retrained model drops it with the field).
            linear = linear * (1.0 - alpha[:, 0])
        return self.backbone.interact(Features(emb, linear))
