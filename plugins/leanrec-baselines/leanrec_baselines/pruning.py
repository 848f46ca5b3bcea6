"""One-shot magnitude pruning of a trained backbone's dense layers (Han, Pool, Tran, Dally. Learning both
Weights and Connections for Efficient Neural Networks. NeurIPS 2015: a threshold per layer; without the
retraining step).

The measurement behind REACTION's Figure 1(c) ("retaining only 10% of dense-layer parameters preserves 98.5%
performance on Criteo") and SSR's Figure 1 (most learned dense weights are near zero): the backbone is trained
exactly as its own run trains it, then all but the largest-magnitude ``keep`` share of each dense layer's
weights (``scope="global"``: of all of them, one threshold) are zeroed and its batch-norm statistics are
re-estimated on the training rows (they were collected for the unpruned weights; ``recalibrate_bn=false`` keeps
them). The pruned model is served; the unpruned one goes to the harness as companion ``unpruned``, so both are
scored on the same test split (``metrics.companions.unpruned``), and the trained weights' sparsity statistics
(:func:`leanrec.nn.sparsity.dense_weight_stats`) are kept in ``extra["dense_weights"]``.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from leanrec import methods
from leanrec.errors import ConfigError
from leanrec.methods import (TRAINING_KEYS, BackboneChoiceConfig, BackboneMethod, FitResult, Method, MethodConfig,
                             field_specs)
from leanrec.nn.sparsity import (PRUNING_SCOPES, dense_layers, dense_weight_stats, hidden_layers, magnitude_prune_,
                                 recalibrate_batch_norm_)
from leanrec.space import tunable

if TYPE_CHECKING:
    from leanrec.context import RunContext
    from leanrec.data import EncodedDataset


@dataclass
class MagnitudePruningConfig(BackboneChoiceConfig):
    """``keep``: share of each dense layer's weights kept (``scope``: "layer", or "global" for one threshold).

    The backbone trains as its own run does: its config (defaults + ``backbone_config``), its embedding dim
    unless ``embedding_dim`` is set (0 = the backbone's), and its training keys except those set here to
    something else than MethodConfig's defaults (``magprune:lr=0.01`` trains the backbone at 0.01). So with
    nothing set, the unpruned model is the backbone's own run, seed for seed.
    """

    embedding_dim: int = tunable(0, None)   # 0 = the backbone's own (not searched: the backbone's is the point)
    keep: float = 0.1
    scope: str = "layer"         # "layer": every layer keeps its share; "global": one threshold (can empty a layer)
    recalibrate_bn: bool = True

    def validate(self) -> None:
        if self.embedding_dim < 0:
            raise ConfigError(f"embedding_dim must be >= 0 (0 = the backbone's), got {self.embedding_dim}")
        probe = dataclasses.replace(self, embedding_dim=self.embedding_dim or 1)   # the base checks dims >= 1
        BackboneChoiceConfig.validate(probe)
        if not 0.0 < self.keep <= 1.0:
            raise ConfigError(f"keep must be in (0, 1], got {self.keep}")
        if self.scope not in PRUNING_SCOPES:
            raise ConfigError(f"scope must be one of {PRUNING_SCOPES}, got {self.scope!r}")

    def build_backbone(self) -> BackboneMethod:
        """The backbone as its own run would train it, with the keys set here on top (see the class doc)."""
        overrides: dict[str, Any] = dict(self.backbone_config)
        if self.embedding_dim:
            overrides["embedding_dim"] = self.embedding_dim
        defaults = MethodConfig()
        overrides |= {k: getattr(self, k) for k in sorted(TRAINING_KEYS) if getattr(self, k) != getattr(defaults, k)}
        return methods.get_backbone(self.backbone, overrides)   # looked up at call time, as build_backbone does


class MagnitudePruning(Method):
    """Train a backbone, then keep only the largest-magnitude ``keep`` share of each of its dense layers' weights."""

    name = "magprune"
    paper = ("Han, Pool, Tran, Dally. Learning both Weights and Connections for Efficient Neural Networks. "
             "NeurIPS 2015 (one-shot magnitude pruning per layer, no retraining)")
    family = "pruning"
    Config = MagnitudePruningConfig
    config: MagnitudePruningConfig

    def fit(self, data: "EncodedDataset", ctx: "RunContext") -> FitResult:
        """Train the backbone (stage "train"), then measure its weights and prune them (stage "prune")."""
        backbone = self.config.build_backbone()
        model = backbone.build_model(field_specs(data)).to(ctx.device)
        if not dense_layers(model):   # before any training is spent
            raise ConfigError(f"backbone {self.config.backbone!r} has no dense (nn.Linear) layer to prune")
        init = copy.deepcopy(model)   # to tell how far training moved the weights (copying draws no random numbers)
        with ctx.stage("train"):
            ctx.train(model, data, backbone.config)
        unpruned = copy.deepcopy(model).eval()
        with ctx.stage("prune"):
            # RankMixer has no hidden nn.Linear: no statistics
            stats = dense_weight_stats(model, init=init) if hidden_layers(model) else None
            pruning = magnitude_prune_(model, self.config.keep, self.config.scope)
            if self.config.recalibrate_bn:
                pruning["recalibrated_bn_layers"] = recalibrate_batch_norm_(
                    model, ctx.tensors(data, "train").X, backbone.config.batch_size)
        return FitResult(model=model.eval(), companions={"unpruned": unpruned},
                         extra={"backbone": self.config.backbone, "pruning": pruning, "dense_weights": stats})
