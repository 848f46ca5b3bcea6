"""CTRModel: the base every backbone in the zoo derives from.

A model maps int codes X (B, F_dataset) to logits (B,). It embeds only the dataset columns listed in
``input_index``, so a model that dropped fields still accepts the full dataset tensor, and its parameter
count is exactly what serving keeps. Gating methods (Light-FMP, AdaFS, ...) scale per-field representations
through ``forward(X, field_weights=...)`` or ``interact(scale_fields(embed(X), w))``.
"""
from __future__ import annotations

import copy
from typing import ClassVar, NamedTuple, Sequence

import torch
from torch import nn

from leanrec.nn.embedding import FieldEmbedding, FieldSpec


class Features(NamedTuple):
    """Per-field representations: ``emb`` (B, F, d) or flat (B, sum d) for mixed dims; ``linear`` (B, F) or None."""

    emb: torch.Tensor
    linear: torch.Tensor | None


class CTRModel(nn.Module):
    """Base class: subclasses set ``uses_linear``/``supports_mixed_dims`` and implement ``interact`` and
    ``transfer_fields`` (how to slice their layers that read per-field inputs when fields are dropped)."""

    supports_mixed_dims: ClassVar[bool] = False
    uses_linear: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs) -> None:
        # `_transfer_fields` is the old, private name of `transfer_fields`: a class that defines either gets the
        # other as an alias, so old plugins keep working and `super()` calls through either name reach the
        # parent's implementation.
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "transfer_fields" in own and "_transfer_fields" not in own:
            cls._transfer_fields = own["transfer_fields"]
        elif "_transfer_fields" in own and "transfer_fields" not in own:
            cls.transfer_fields = own["_transfer_fields"]

    def __init__(self, fields: Sequence[FieldSpec], embedding_dim: int | Sequence[int] = 10,
                 init_std: float = 1e-2):
        super().__init__()
        self.fields = list(fields)
        self.embedding = FieldEmbedding(self.fields, embedding_dim, init_std)
        if not self.embedding.uniform and not self.supports_mixed_dims:
            raise ValueError(f"{type(self).__name__} needs one embedding dim for all fields, got {self.embedding.dims}")
        self.linear_embedding = FieldEmbedding(self.fields, 1, init_std) if self.uses_linear else None
        self.register_buffer("input_index", torch.arange(len(self.fields)))
        self._full_input = True  # X's columns are exactly self.fields (no gather needed)

    @property
    def num_fields(self) -> int:
        return len(self.fields)

    @property
    def embedding_dim(self) -> int:
        """The common embedding dim (uniform models) or the total flattened width (mixed dims)."""
        return self.embedding.dims[0] if self.embedding.uniform else self.embedding.output_dim

    def embed(self, X: torch.Tensor) -> Features:
        if not self._full_input:
            X = X.index_select(1, self.input_index)
        lin = self.linear_embedding(X).squeeze(-1) if self.linear_embedding is not None else None
        return Features(self.embedding(X), lin)

    def use_columns(self, columns: Sequence[int]) -> "CTRModel":
        """Declare which dataset columns feed this model's fields (for models built over a field subset)."""
        if len(columns) != self.num_fields:
            raise ValueError(f"{len(columns)} columns for {self.num_fields} fields")
        self.input_index = torch.as_tensor(list(columns), dtype=torch.long, device=self.input_index.device)
        self._full_input = False
        return self

    def scale_fields(self, feats: Features, weights: torch.Tensor) -> Features:
        """Multiply every per-field representation by weights (F,) or (B, F)."""
        lin = feats.linear * weights if feats.linear is not None else None
        return Features(self.embedding.scale(feats.emb, weights), lin)

    def interact(self, feats: Features) -> torch.Tensor:
        """Logits (B,) from per-field representations."""
        raise NotImplementedError

    def forward(self, X: torch.Tensor, field_weights: torch.Tensor | None = None) -> torch.Tensor:
        feats = self.embed(X)
        if field_weights is not None:
            feats = self.scale_fields(feats, field_weights)
        return self.interact(feats)

    # ---- field dropping with weight transfer -----------------------------------------------------------
    def drop_fields(self, keep: Sequence[int]) -> "CTRModel":
        """A copy of this model over the fields `keep` (indices into self.fields), every kept weight copied.

        Where the architecture allows it, the result equals this model with the other fields' representations
        masked to zero.
        """
        keep = sorted(int(k) for k in keep)
        if not keep:
            raise ValueError("cannot drop every field")
        new = copy.deepcopy(self)
        new.fields = [self.fields[i] for i in keep]
        new.embedding = self.embedding.select(keep)
        if self.linear_embedding is not None:
            new.linear_embedding = self.linear_embedding.select(keep)
        new.use_columns(self.input_index[keep].tolist())
        new.transfer_fields(keep, list(self.embedding.dims))
        return new

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        """Slice the layers that read per-field inputs so that they accept only the fields `keep`.

        Called by :meth:`drop_fields` on the copy, after the embeddings (``self.embedding``,
        ``self.linear_embedding``), ``self.fields`` and the input columns were already reduced to `keep`.
        `keep` holds sorted indices into the *old* field list; `old_dims` the old per-field embedding dims
        (so a layer over the concatenated embeddings keeps the input columns of the kept fields). Replace
        each such layer by a smaller copy holding the kept weights, so that the pruned model equals the old
        one with the dropped fields' representations set to zero wherever the architecture allows. A model
        none of whose layers depend on the number of fields (e.g. one that pools the fields) implements it
        as ``pass``. The default raises NotImplementedError: the model cannot drop fields.
        ``_transfer_fields`` is an alias (the old name), kept so that existing plugins work unchanged.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support dropping fields "
                                  "(it does not implement transfer_fields)")

    _transfer_fields = transfer_fields

    def describe(self) -> dict:
        """Fields kept and embedding dims, for the run record."""
        return {"fields": [f.name for f in self.fields], "field_dims": list(self.embedding.dims)}
