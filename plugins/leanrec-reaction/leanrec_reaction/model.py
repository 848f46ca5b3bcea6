"""The REACTION tower (an MLP over the flattened field embeddings, the serving model) and the K-tower training
cohort of Dynamic Tower Fusion (one shared embedding, K MLP towers of possibly different shapes).

Feature maps (the paper's h x w x d maps, which MLP towers do not have; decision recorded in METHODS.md):
a tower's hidden activations are concatenated and reshaped into P positions of equal width. For the paper's
towers with P = 3 this is exactly METHODS.md's reading: MLP [80, 80, 80] gives its three hidden layers as
3 positions of 80, MLP [240] gives its 240 units as 3 positions of 80. A tower's total hidden width must be
divisible by P.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from leanrec.nn import MLP, CTRModel, FieldSpec, field_columns
from leanrec_reaction.losses import info_nce, relational_fusion_loss, spatial_fusion_loss


def tower_forward(mlp: MLP, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Run an MLP and return (its hidden activations, i.e. the input of every Linear but the first; logits (B,))."""
    hidden: list[torch.Tensor] = []
    for i, layer in enumerate(mlp.net):  # a loop over layers, not over fields or samples
        if i > 0 and isinstance(layer, nn.Linear):
            hidden.append(x)
        x = layer(x)
    return hidden, x.squeeze(-1)


class ReactionNet(CTRModel):
    """One MLP tower over the concatenated field embeddings (REACTION's "Baseline" and its serving model)."""

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: int = 16, hidden: Sequence[int] = (80, 80, 80),
                 dropout: float = 0.0, batch_norm: bool = False, init_std: float = 1e-2):
        super().__init__(fields, embedding_dim, init_std)
        self.hidden = tuple(int(h) for h in hidden)
        self.mlp = MLP(self.embedding.output_dim, self.hidden, 1, dropout, batch_norm)

    def interact(self, feats) -> torch.Tensor:
        return self.mlp(feats.emb.flatten(1)).squeeze(-1)

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        self.mlp.select_inputs(field_columns(old_dims, keep))


def feature_width(hidden: Sequence[int], n_positions: int) -> int:
    """Width of one position of a tower's feature map (its total hidden width / P); raises when not divisible."""
    total = sum(hidden)
    if not hidden or total % n_positions:
        raise ValueError(f"tower {list(hidden)}: total hidden width {total} is not divisible by "
                         f"n_positions={n_positions}")
    return total // n_positions


class TowerCohort(CTRModel):
    """K MLP towers over one shared (selected) field embedding, trained jointly with pairwise fusion losses.

    For every pair a < b a learnable W_ab (no bias) maps tower a's feature map to tower b's width (eq. 9's
    Z' = W Z). ``forward`` returns the mean of the towers' logits (the default early-stopping monitor).
    """

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: int = 16,
                 towers: Sequence[Sequence[int]] = ((80, 80, 80), (240,)), n_positions: int = 3,
                 dropout: float = 0.0, batch_norm: bool = False, init_std: float = 1e-2):
        super().__init__(fields, embedding_dim, init_std)
        if len(towers) < 2:
            raise ValueError(f"a tower cohort needs at least 2 towers, got {len(towers)}")
        self.towers = [tuple(int(h) for h in t) for t in towers]
        self.n_positions, self.dropout, self.batch_norm = n_positions, dropout, batch_norm
        widths = [feature_width(t, n_positions) for t in self.towers]
        self.mlps = nn.ModuleList(MLP(self.embedding.output_dim, t, 1, dropout, batch_norm) for t in self.towers)
        self.pairs = [(a, b) for a in range(len(towers)) for b in range(a + 1, len(towers))]
        self.proj = nn.ModuleList(nn.Linear(widths[a], widths[b], bias=False) for a, b in self.pairs)

    @property
    def num_towers(self) -> int:
        return len(self.towers)

    def run_towers(self, X: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Feature maps [(B, P, c_k)] and logits (B, K) of every tower (one embedding lookup)."""
        x = self.embed(X).emb.flatten(1)
        maps, logits = [], []
        for mlp in self.mlps:  # towers have different shapes, so they cannot be batched into one matmul
            hidden, logit = tower_forward(mlp, x)
            maps.append(torch.cat(hidden, dim=1).reshape(x.shape[0], self.n_positions, -1))
            logits.append(logit)
        return maps, torch.stack(logits, dim=1)

    def tower_logits(self, X: torch.Tensor) -> torch.Tensor:
        return self.run_towers(X)[1]

    def interact(self, feats) -> torch.Tensor:
        x = feats.emb.flatten(1)
        return torch.stack([mlp(x).squeeze(-1) for mlp in self.mlps], dim=1).mean(dim=1)

    def fusion_terms(self, maps: list[torch.Tensor], m1: float, m2: float, tau: float
                     ) -> dict[tuple[int, int], dict[str, torch.Tensor]]:
        """L_srf, L_rff, L_contra for every tower pair (a, b): Z' = W_ab Z_a against F = Z_b. The contrastive
        term uses the flattened maps (B, P * c_b) -- the towers' final hidden vectors differ in width (80 vs
        240), so they are compared in the fusion space."""
        out = {}
        for (a, b), W in zip(self.pairs, self.proj):
            Zp, Fm = W(maps[a]), maps[b]
            out[(a, b)] = {"srf": spatial_fusion_loss(Zp, Fm, m1), "rff": relational_fusion_loss(Zp, Fm, m2),
                           "contra": info_nce(Zp.flatten(1), Fm.flatten(1), tau)}
        return out

    def tower(self, k: int) -> ReactionNet:
        """Tower k alone as a serving model: the shared embedding and tower k's MLP, copied; nothing else."""
        net = ReactionNet(self.fields, self.embedding.dims[0], self.towers[k], self.dropout, self.batch_norm)
        net = net.to(self.input_index.device)
        net.embedding.load_state_dict(self.embedding.state_dict())
        net.mlp.load_state_dict(self.mlps[k].state_dict())
        if not self._full_input:
            net.use_columns(self.input_index.tolist())
        return net.eval()
