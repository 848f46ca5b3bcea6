"""The ssr-s and ssr-d methods: SSR backbones trained end to end by the harness trainer."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from leanrec.errors import ConfigError
from leanrec.methods import BackboneMethod, FitResult, MethodConfig, field_specs
from leanrec.space import Choice, tunable

from leanrec_ssr.model import FILTERS, PROJECTED, SSRModel, view_diversity

if TYPE_CHECKING:
    from leanrec.context import RunContext
    from leanrec.data import EncodedDataset

PAPER = ("Yu, Qiao, Shen, Wang, Zeng. Beyond Dense Connectivity: Explicit Sparsity for Scalable "
         "Recommendation. SIGIR 2026.")

SPARSITY_ROWS = 4096  # validation rows used to measure the ICS sparsity ratio after training


@dataclass
class SSRConfig(MethodConfig):
    """The paper's defaults (Sec. 4.1): embedding 16, Adam 1e-3, batch 1024, b = 16 views, d_v = 256, 2 layers,
    ICS with T = 5, alpha_t initialised to 0.1 and gamma to ones."""

    embedding_dim: int = 16
    b: int = tunable(16, Choice(4, 8, 16))          # number of views
    d_v: int = tunable(256, Choice(64, 128, 256))   # width of each view's output (and of its projection for ssr-d)
    num_layers: int = 2               # L
    filter: str = "random"            # random | ics | topk | none | dropout (see leanrec_ssr.model.FILTERS)
    filter_dim: int | None = None     # random filter: dims gathered per view (None = d_v; capped at the input width)
    ics_iters: int = 5                # T
    ics_alpha: float = 0.1            # initial extinction rate alpha_t (learnable)
    ics_gamma: bool = True            # learnable per-dim rescaling gamma (False = Table 5's "w/o gamma")
    topk_keep: float = 0.1            # filter=topk: share of each view's dims kept
    dropout_rate: float | None = None  # filter=dropout: rate (None = 1 - d_v / d_in, the random filter's share)
    residual: bool = False            # official code: z_i = h_i + GELU(h_i V_i + bias_i)
    gate: bool = False                # official code: h_i = ICS(x W_i^proj) * (x W_i^value)
    head_mean: bool = False           # official code: the head reads the mean over views, not their concatenation
    head_hidden: list[int] = field(default_factory=list)  # hidden widths of the head MLP ([] = one Linear)

    def validate(self) -> None:
        super().validate()
        for name in ("b", "d_v", "num_layers", "ics_iters"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.filter not in FILTERS:
            raise ConfigError(f"filter must be one of {FILTERS}, got {self.filter!r}")
        if self.filter_dim is not None and self.filter_dim < 1:
            raise ConfigError(f"filter_dim must be >= 1 or null, got {self.filter_dim}")
        if not 0.0 < self.topk_keep <= 1.0:
            raise ConfigError(f"topk_keep must be in (0, 1], got {self.topk_keep}")
        if self.dropout_rate is not None and not 0.0 <= self.dropout_rate < 1.0:
            raise ConfigError(f"dropout_rate must be in [0, 1) or null, got {self.dropout_rate}")
        if self.gate and self.filter not in PROJECTED:
            raise ConfigError(f"gate=true needs filter in {PROJECTED}, got {self.filter!r}")
        if self.residual and self.filter in ("none", "dropout"):
            raise ConfigError("residual=true needs a filter whose views have width d_v (random, ics, topk)")


@dataclass
class SSRDConfig(SSRConfig):
    filter: str = "ics"


class _SSRMethod(BackboneMethod):
    model_class: ClassVar[type[SSRModel]] = SSRModel
    paper = PAPER

    def fit(self, data: "EncodedDataset", ctx: "RunContext") -> FitResult:
        """Train as every backbone does; the record's extra gets the filter's sparsity per layer and, for
        projected filters, the views' diversity (:func:`leanrec_ssr.model.view_diversity`)."""
        model: SSRModel = self.build_model(field_specs(data)).to(ctx.device)
        init = model.view_projections()   # copies: drawing no random numbers, so training is unchanged
        with ctx.stage("train"):
            ctx.train(model, data, self.config)
        result = FitResult(model=model)
        if init is not None:
            result.extra["view_diversity"] = view_diversity(model.view_projections(), init)
        X = ctx.tensors(data, "valid").X[:SPARSITY_ROWS]
        result.extra["filter_sparsity_per_layer"] = model.filter_sparsity(X)
        result.extra["view_widths"] = [layer.k for layer in model.layers]
        if self.config.filter == "ics":
            result.extra["ics_alpha_mean_per_layer"] = [layer.alpha.detach().mean(0).tolist()
                                                        for layer in model.layers]
        return result


class SSRSMethod(_SSRMethod):
    """SSR-S (Yu et al., SIGIR 2026, Sec. 2.2 "Static Random Filter"): each of b views gathers a fixed random
    set of d_v input dims (no replacement within a view, independent across views), fuses them with its own
    dense layer and GELU, LayerNorm per view, views concatenated; L layers, linear head.

    Ablations as config keys: filter=none|dropout, b=1; scaling: b, d_v, num_layers."""

    name = "ssr-s"
    Config = SSRConfig


class SSRDMethod(_SSRMethod):
    """SSR-D (Yu et al., SIGIR 2026, Sec. 2.2 and 3, Algorithm 1): each view projects the whole input
    (W_i^proj) and sparsifies it with Iterative Competitive Sparse (T = 5 learnable extinction rates, learnable
    per-dim scale gamma) before the per-view dense fusion of SSR-S. The ICS sparsity ratio per layer (share of
    exact zeros on a validation batch) goes into the run record's extra.

    Ablations as config keys: filter=topk (straight-through Top-k), filter=none, ics_iters, ics_alpha,
    ics_gamma; official-code variants: residual, gate, head_mean."""

    name = "ssr-d"
    Config = SSRDConfig
