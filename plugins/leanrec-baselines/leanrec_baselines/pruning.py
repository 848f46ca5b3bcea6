"""One-shot magnitude pruning of a trained backbone's dense layers (Han, Pool, Tran, Dally. Learning both
Weights and Connections for Efficient Neural Networks. NeurIPS 2015; without the retraining step).

The measurement behind REACTION's Figure 1(c) ("retaining only 10% of dense-layer parameters preserves 98.5%
performance on Criteo") and SSR's Figure 1 (most learned dense weights are near zero): the backbone is trained
exactly as its own run trains it, then all but the largest-magnitude ``keep`` share of its dense-layer weights
are zeroed. The pruned model is served; the unpruned one goes to the harness as companion ``unpruned``, so both
are scored on the same test split (``metrics.companions.unpruned``), and the trained weights' sparsity
statistics (:func:`leanrec.nn.sparsity.dense_weight_stats`) are kept in ``extra["dense_weights"]``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

from leanrec.errors import ConfigError
from leanrec.methods import BackboneChoiceConfig, FitResult, Method, field_specs
from leanrec.nn.sparsity import dense_layers, dense_weight_stats, hidden_layers, magnitude_prune_

if TYPE_CHECKING:
    from leanrec.context import RunContext
    from leanrec.data import EncodedDataset


@dataclass
class MagnitudePruningConfig(BackboneChoiceConfig):
    """``keep``: share of the backbone's dense-layer weights kept (one global magnitude threshold). The
    backbone trains with its own config (its defaults + ``backbone_config``, this config's ``embedding_dim``),
    so at the backbone's default embedding dim the unpruned model is the backbone's own run, seed for seed."""

    keep: float = 0.1

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.keep <= 1.0:
            raise ConfigError(f"keep must be in (0, 1], got {self.keep}")


class MagnitudePruning(Method):
    """Train a backbone, then keep only the largest-magnitude ``keep`` share of its dense-layer weights."""

    name = "magprune"
    paper = ("Han, Pool, Tran, Dally. Learning both Weights and Connections for Efficient Neural Networks. "
             "NeurIPS 2015 (one-shot magnitude pruning, no retraining)")
    family = "pruning"
    Config = MagnitudePruningConfig
    config: MagnitudePruningConfig

    def fit(self, data: "EncodedDataset", ctx: "RunContext") -> FitResult:
        backbone = self.config.build_backbone()
        model = backbone.build_model(field_specs(data)).to(ctx.device)
        if not dense_layers(model):   # before any training is spent
            raise ConfigError(f"backbone {self.config.backbone!r} has no dense (nn.Linear) layer to prune")
        init = copy.deepcopy(model)   # to tell how far training moved the weights (copying draws no random numbers)
        with ctx.stage("train"):
            ctx.train(model, data, backbone.config)
        unpruned = copy.deepcopy(model).eval()
        with ctx.stage("prune"):
            stats = dense_weight_stats(model, init=init) if hidden_layers(model) else None   # RankMixer: no hidden Linear
            pruning = magnitude_prune_(model, self.config.keep)
        return FitResult(model=model.eval(), companions={"unpruned": unpruned},
                         extra={"backbone": self.config.backbone, "pruning": pruning, "dense_weights": stats})
