"""Registers one method, `example-mean-pool`: field embeddings averaged, then a small MLP.

Everything a method needs: a CTRModel subclass (the serving model), a Config dataclass with defaults, and a
Method class. BackboneMethod already implements `fit` (train with the harness trainer, return the model);
write your own `fit` when your method has several stages (see docs/plugins.md, section 4).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

import leanrec
from leanrec.methods import BackboneMethod, MethodConfig
from leanrec.nn import MLP, CTRModel, Features


class MeanPoolModel(CTRModel):
    """Average of the field embeddings -> MLP -> logit."""

    def __init__(self, fields, embedding_dim: int = 10, hidden: tuple[int, ...] = (32,)):
        super().__init__(fields, embedding_dim)
        self.mlp = MLP(embedding_dim, list(hidden))

    def interact(self, feats: Features) -> torch.Tensor:
        return self.mlp(feats.emb.mean(dim=1)).squeeze(-1)

    def transfer_fields(self, keep: list[int], old_dims: list[int]) -> None:
        """Called by drop_fields after it selected the kept fields' embeddings: slice every layer that reads
        per-field inputs. Here there is none: the MLP reads the pooled vector, whose width does not depend on
        the number of fields (the pruned model averages over the kept fields only)."""


@dataclass
class MeanPoolConfig(MethodConfig):
    hidden: tuple[int, ...] = (32,)


class MeanPool(BackboneMethod):
    """Example method (no paper): mean-pooled embeddings and an MLP."""

    name = "example-mean-pool"
    paper = "none (template)"
    family = "backbone"          # BackboneMethod's family; see docs/plugins.md, section 6
    model_class = MeanPoolModel
    Config = MeanPoolConfig


@leanrec.hookimpl
def leanrec_register_methods(register) -> None:
    """Register the example method."""
    register(MeanPool)
