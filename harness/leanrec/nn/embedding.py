"""One fused embedding table for all fields, with per-field offsets and optional per-field dimensions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn


@dataclass(frozen=True)
class FieldSpec:
    """What a model needs to know about one input field."""

    name: str
    vocab_size: int


class FieldEmbedding(nn.Module):
    """Embeds int codes X (B, F) of F fields through fused tables.

    Fields sharing a dimension share one ``nn.Embedding`` (one table when all dims are equal), so a lookup is
    one gather per distinct dimension, never a Python loop over fields.

    * uniform dims: ``forward`` returns (B, F, d)
    * mixed dims:   ``forward`` returns the concatenation (B, sum(d_f)) in field order; a field with dim 0
      contributes nothing (it is dropped).
    """

    def __init__(self, fields: Sequence[FieldSpec], dims: int | Sequence[int], init_std: float = 1e-2):
        super().__init__()
        self.fields = list(fields)
        self.dims = [int(dims)] * len(self.fields) if isinstance(dims, int) else [int(d) for d in dims]
        if len(self.dims) != len(self.fields):
            raise ValueError(f"got {len(self.dims)} dims for {len(self.fields)} fields")
        if any(d < 0 for d in self.dims):
            raise ValueError(f"embedding dims must be >= 0, got {self.dims}")
        self.uniform = len(set(self.dims)) == 1 and self.dims[0] > 0
        self.init_std = init_std
        self.groups = sorted({d for d in self.dims if d > 0})
        self.tables = nn.ModuleList()
        self._rows: dict[int, tuple[int, int]] = {}   # field -> (table, first row), kept on the host
        for g, d in enumerate(self.groups):
            idx = [i for i, dd in enumerate(self.dims) if dd == d]
            vocab = [self.fields[i].vocab_size for i in idx]
            offsets = torch.tensor([0] + vocab[:-1]).cumsum(0)
            self._rows.update({i: (g, int(o)) for i, o in zip(idx, offsets)})
            self.register_buffer(f"field_index_{g}", torch.tensor(idx, dtype=torch.long), persistent=False)
            self.register_buffer(f"offsets_{g}", offsets, persistent=False)
            table = nn.Embedding(sum(vocab), d)
            nn.init.normal_(table.weight, std=init_std)
            self.tables.append(table)
        # per-field repeat counts for scale() with mixed dims (a buffer: no host->device copy per forward)
        self.register_buffer("dim_repeats", torch.tensor(self.dims, dtype=torch.long), persistent=False)
        if not self.uniform:
            # Column permutation from grouped order back to field order.
            order = [i for d in self.groups for i, dd in enumerate(self.dims) if dd == d]
            starts, pos = {}, 0
            for i in order:
                starts[i] = pos
                pos += self.dims[i]
            perm = [starts[i] + k for i in range(len(self.dims)) for k in range(self.dims[i])]
            self.register_buffer("column_order", torch.tensor(perm, dtype=torch.long), persistent=False)

    @property
    def output_dim(self) -> int:
        """Width of the flattened embedding (sum of per-field dims)."""
        return sum(self.dims)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if self.uniform:
            return self.tables[0](X + self.offsets_0)
        parts = [
            table(X[:, getattr(self, f"field_index_{g}")] + getattr(self, f"offsets_{g}")).flatten(1)
            for g, table in enumerate(self.tables)
        ]
        if not parts:
            return X.new_zeros((X.shape[0], 0), dtype=torch.float32)
        return torch.cat(parts, dim=1)[:, self.column_order]

    def scale(self, E: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Multiply each field's embedding by a weight: weights (F,) or (B, F)."""
        if self.uniform:
            return E * weights.unsqueeze(-1)
        # output_size: known on the host, so no device->host sync to size the result
        return E * torch.repeat_interleave(weights, self.dim_repeats, dim=-1, output_size=self.output_dim)

    def select(self, keep: Sequence[int]) -> "FieldEmbedding":
        """A new embedding over the fields `keep` (indices into self.fields), copying their rows (weight transfer)."""
        keep = list(keep)
        new = FieldEmbedding([self.fields[i] for i in keep], [self.dims[i] for i in keep], self.init_std)
        with torch.no_grad():
            for i_new, i_old in enumerate(keep):
                new.field_rows(i_new).copy_(self.field_rows(i_old))
        return new.to(self._device())

    def field_rows(self, i: int) -> torch.Tensor:
        """The (vocab_size, dim) slice of the fused table that holds field i (a view; writable)."""
        d = self.dims[i]
        if d == 0:
            return torch.empty(self.fields[i].vocab_size, 0, device=self._device())
        g, start = self._rows[i]
        return self.tables[g].weight[start:start + self.fields[i].vocab_size]

    def _device(self) -> torch.device:
        return self.tables[0].weight.device if len(self.tables) else self.dim_repeats.device
