"""The i-Razor methods: search (section 3.2) -> CPT pruning (Algorithm 1) -> retrain a fresh model (3.3)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torch import nn

from leanrec.errors import ConfigError
from leanrec.methods import BackboneChoiceConfig, BackboneMethod, FitResult, Method, field_specs
from leanrec.nn import CTRModel, FieldEmbedding, FieldSpec
from leanrec.selection import search_diagnostics
from leanrec.space import LogUniform, Uniform, tunable
from leanrec.trainer import bce_loss

from leanrec_irazor.search import IRazorSearch, cpt_prune, region_widths, resolve_candidates

if TYPE_CHECKING:
    from leanrec.context import RunContext
    from leanrec.data import EncodedDataset

PAPER = ("Yao et al., i-Razor: A Differentiable Neural Input Razor for Feature Selection and Dimension Search "
         "in DNN-Based Recommender Systems, IEEE TKDE 2023 (arXiv:2204.00281)")


@dataclass
class IRazorConfig(BackboneChoiceConfig):
    """i-Razor settings; defaults follow the paper's Table 2 (Avazu column) and section 4.5.

    ``embedding_dim`` (inherited) is not used: the search embedding has d_K = max(candidates) dims and the
    retrained model gets the searched per-field dims.
    """

    embedding_dim: int = tunable(10, None)      # unused (see above): not searched
    candidates: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 30)  # search space D (exponential expansion, d_K = 30)
    zero_dim: bool = True                       # include the "drop field" candidate 0 (ablation: w/o 0)
    tau: float = tunable(0.05, LogUniform(0.01, 1.0))  # softmax temperature of eq. 2
    reg_lambda: float = 1e-4                    # lambda of eq. 7 (weight of the parameter regulariser L_p)
    cpt: float = tunable(0.3, Uniform(0.1, 0.9, step=0.05))  # cumulative-probability threshold of Algorithm 1 (0 = argmax)
    search_epochs: int = 0                      # epochs of the search stage (0 = same as epochs); every planned
                                                # step runs (no early stopping) and the final architecture is pruned
    arch_lr: float = tunable(0.01, LogUniform(1e-3, 0.1))  # Adam LR of the architecture weights w (the rest uses lr)
    projection_dim: int = 0                     # common dim for backbones without mixed dims (0 = d_K; Table 7)

    def validate(self) -> None:
        super().validate()
        resolve_candidates(self.candidates, self.zero_dim)
        if self.tau <= 0:
            raise ConfigError(f"tau must be > 0, got {self.tau}")
        if self.reg_lambda < 0:
            raise ConfigError(f"reg_lambda must be >= 0, got {self.reg_lambda}")
        if not 0.0 <= self.cpt <= 1.0:
            raise ConfigError(f"cpt must lie in [0, 1], got {self.cpt}")
        if self.search_epochs < 0 or self.projection_dim < 0:
            raise ConfigError("search_epochs and projection_dim must be >= 0")
        if self.arch_lr <= 0:
            raise ConfigError(f"arch_lr must be > 0, got {self.arch_lr}")


class ProjectedFieldEmbedding(nn.Module):
    """Mixed per-field dims d_f, each field linearly projected to one common dim P: output (B, F, P).

    Paper, section 4.7 / Table 7: "to ensure dimension uniformity for feature interaction operations, we
    introduce different MLP layers for each field to perform linear transformations on embeddings". The
    tables keep the searched dims (so embedding parameters are sum_f |f| d_f); the per-field projections hold
    sum_f d_f * P weights + F * P biases, stored compactly and scattered into an (F, d_max, P) block at
    forward time so that the projection is one batched matmul over fields.
    Quacks like a uniform FieldEmbedding of dim P for the interaction layers (``dims``, ``uniform``, ``scale``).
    """

    def __init__(self, fields: Sequence[FieldSpec], dims: Sequence[int], out_dim: int, init_std: float = 1e-2):
        super().__init__()
        self.fields = list(fields)
        self.source_dims = [int(d) for d in dims]
        if any(d < 1 for d in self.source_dims):
            raise ValueError(f"projected fields need dims >= 1, got {self.source_dims}")
        self.inner = FieldEmbedding(self.fields, self.source_dims, init_std)
        self.init_std, self.out_dim = init_std, int(out_dim)
        self.dims, self.uniform, self.groups = [self.out_dim] * len(self.fields), True, [self.out_dim]
        self.d_max = max(self.source_dims)
        col_field = torch.repeat_interleave(torch.arange(len(self.fields)), torch.tensor(self.source_dims))
        col_pos = torch.cat([torch.arange(d) for d in self.source_dims])
        self.register_buffer("slot", col_field * self.d_max + col_pos, persistent=False)  # (sum d,)
        # Each field starts as its own embedding, zero-padded to P (identity on the first min(d_f, P) positions,
        # zero bias): a projected field carries its embedding from the first step. (nn.Linear's default bias
        # U(+-1/sqrt(d_f)) is ~50x the 0.01-std embeddings, so every field started as a constant.)
        self.weight = nn.Parameter((col_pos.unsqueeze(1) == torch.arange(self.out_dim).unsqueeze(0)).float())
        self.bias = nn.Parameter(torch.zeros(len(self.fields), self.out_dim))

    @property
    def output_dim(self) -> int:
        return len(self.fields) * self.out_dim

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        flat = self.inner(X)                                                     # (B, sum d)
        F, B = len(self.fields), flat.shape[0]
        padded = flat.new_zeros(B, F * self.d_max).index_copy(1, self.slot, flat).view(B, F, self.d_max)
        W = self.weight.new_zeros(F * self.d_max, self.out_dim).index_copy(0, self.slot, self.weight)
        return torch.einsum("bfd,fdp->bfp", padded, W.view(F, self.d_max, self.out_dim)) + self.bias

    def scale(self, E: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return E * weights.unsqueeze(-1)


def build_retrain_model(backbone: BackboneMethod, fields: Sequence[FieldSpec], dims: Sequence[int],
                        projection_dim: int) -> CTRModel:
    """A fresh backbone over the kept fields (dims > 0) with their searched dims.

    Backbones with mixed-dim support (DNN: MLP input = sum of dims) take the dims directly; so does any
    backbone when the kept dims happen to be equal. Otherwise (FM-style interactions: DeepFM, xDeepFM, IPNN)
    the per-field embeddings are projected to `projection_dim` (ProjectedFieldEmbedding). The returned model
    reads the dataset columns of the kept fields from the full X.
    """
    keep = [i for i, d in enumerate(dims) if d > 0]
    if not keep:
        raise ValueError("every field was pruned; nothing to retrain")
    kept = [fields[i] for i in keep]
    kept_dims = [int(dims[i]) for i in keep]
    if len(set(kept_dims)) == 1 or backbone.model_class.supports_mixed_dims:
        model = backbone.build_model(kept, embedding_dim=kept_dims[0] if len(set(kept_dims)) == 1 else kept_dims)
    else:
        # Build the interaction layers over one-row placeholder tables (the real (vocab, P) tables would be
        # allocated only to be thrown away), then put the real embeddings in.
        model = backbone.build_model([FieldSpec(f.name, 1) for f in kept], embedding_dim=projection_dim)
        init_std = model.embedding.init_std
        model.fields = kept
        model.embedding = ProjectedFieldEmbedding(kept, kept_dims, projection_dim, init_std)
        if model.linear_embedding is not None:
            model.linear_embedding = FieldEmbedding(kept, 1, init_std)
    if len(keep) < len(fields):
        model.use_columns(keep)
    return model


class IRazor(Method):
    """i-Razor: joint field selection and per-field embedding-dimension search, then retraining.

    Paper: Yao et al., "i-Razor: A Differentiable Neural Input Razor for Feature Selection and Dimension
    Search in DNN-Based Recommender Systems", IEEE TKDE 2023 (arXiv:2204.00281). Search (eqs. 2-7, one-level
    optimisation: one Adam over embeddings, architecture weights and backbone), CPT pruning (Algorithm 1; a
    field whose dims come out 0 is dropped), then a fresh model with the searched mixed dims is trained with
    plain BCE and no batch normalisation (section 3.3.2).
    """

    name = "irazor"
    paper = PAPER
    family = "dimension-search"
    Config = IRazorConfig

    def search_backbone(self) -> BackboneMethod:
        """The backbone the search runs on: the one that is retrained (the paper's model-consistent config)."""
        return self.config.build_backbone()

    def retrain_dims(self, dims: np.ndarray) -> np.ndarray:
        """The per-field dims the retrained model gets from the searched ones (i-Razor: the searched dims)."""
        return dims

    def search_loss(self, model: IRazorSearch, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Eq. 7: BCE + lambda * L_p."""
        return bce_loss(model, X, y) + self.config.reg_lambda * model.param_regulariser()

    def fit(self, data: "EncodedDataset", ctx: "RunContext") -> FitResult:
        cfg: IRazorConfig = self.config  # type: ignore[assignment]
        cand = resolve_candidates(cfg.candidates, cfg.zero_dim)
        backbone = cfg.build_backbone()  # embedding dims are overridden below: the search decides them
        search_backbone = self.search_backbone()
        specs = field_specs(data)
        with ctx.stage("search"):
            search = IRazorSearch(search_backbone.build_model(specs, embedding_dim=cand[-1]), cand, cfg.tau,
                                  [f.cardinality for f in data.fields]).to(ctx.device)
            search_cfg = dataclasses.replace(cfg, epochs=cfg.search_epochs or cfg.epochs)
            ctx.train(search, data, search_cfg, name="search", loss_fn=self.search_loss, keep="last",
                      optimizer=search_optimizer(search, search_cfg))
            probs = search.region_probs().detach().cpu().double().numpy()
            del search
        with ctx.stage("prune"):
            searched, fallback = derive_dims(probs, cand, cfg.cpt)
            dims = self.retrain_dims(searched)
            model = build_retrain_model(backbone, specs, dims, cfg.projection_dim or cand[-1]).to(ctx.device)
        with ctx.stage("retrain"):
            ctx.train(model, data, cfg, name="retrain")
        kept = [i for i, d in enumerate(dims) if d > 0]
        widths = np.asarray(region_widths(cand), dtype=np.float64)
        names = [data.fields[i].name for i in kept]
        extra = {
            "fields": len(kept),
            "dims": int(sum(dims)),
            "embedding_params": int(sum(data.fields[i].vocab_size * int(dims[i]) for i in kept)),
            "paper_params": int(sum(data.fields[i].cardinality * int(dims[i]) for i in kept)),
            "candidates": cand,
            "cpt": cfg.cpt,
            "backbone": cfg.backbone,
            "search_backbone": search_backbone.name,
            "projected": isinstance(model.embedding, ProjectedFieldEmbedding),
            "all_dims": {f.name: int(d) for f, d in zip(data.fields, dims)},
            "region_probs": {f.name: [round(float(p), 6) for p in row] for f, row in zip(data.fields, probs)},
            "all_pruned_fallback": fallback,
            "search": search_diagnostics(probs),
        }
        if not np.array_equal(dims, searched):
            extra["searched_dims"] = {f.name: int(d) for f, d in zip(data.fields, searched)}
        return FitResult(model=model, selected_fields=names,
                         field_dims={data.fields[i].name: int(dims[i]) for i in kept},
                         # expected searched dims (sum_k alpha_ik c_k): what L_p charges a field for
                         field_scores={f.name: float(row @ widths) for f, row in zip(data.fields, probs)},
                         extra=extra)


def search_optimizer(search: IRazorSearch, cfg: IRazorConfig) -> torch.optim.Optimizer:
    """The harness's Adam for the model (lr, weight decay, embedding L2) plus the architecture weights in a
    group of their own at cfg.arch_lr (no weight decay). The paper's reference code trains everything with
    Adam at 0.01; at the harness's 1e-3 the architecture weights barely left zero within a small sample's
    search (max region probability ~0.16 against a uniform 1/7), so CPT kept every field."""
    from leanrec.trainer import make_adam

    return make_adam(search, cfg, extra_groups=[{"params": [search.arch_logits], "lr": cfg.arch_lr,
                                                 "weight_decay": 0.0}])


def derive_dims(probs: np.ndarray, candidates: Sequence[int], cpt: float) -> tuple[np.ndarray, bool]:
    """Algorithm 1 on every field; if it drops every field, keep the one least dominated by the 0 region
    (a model needs an input) with the dims Algorithm 1 gives over its non-zero regions. Returns (dims, fallback)."""
    dims = cpt_prune(probs, candidates, cpt)
    if dims.any():
        return dims, False
    j = int(np.argmin(probs[:, 0]))
    rest = probs[j:j + 1, 1:] / probs[j, 1:].sum()
    dims[j] = int(cpt_prune(rest, candidates[1:], cpt)[0])
    return dims, True


class IRazorArgmax(IRazor):
    """i-Razor's search with argmax selection (cpt = 0): the AutoDim-style selector of the paper's ablation
    (Table 5, 'argmax w/ 0'; with zero_dim=false, 'argmax w/o 0').

    Paper: Yao et al., i-Razor, IEEE TKDE 2023 (arXiv:2204.00281), section 4.4.
    """

    name = "irazor-argmax"

    @dataclass
    class Config(IRazorConfig):
        cpt: float = 0.0


@dataclass
class IRazorTransferConfig(IRazorConfig):
    """i-Razor's keys plus the backbone its search runs on."""

    search_backbone: str = "dnn"   # the backbone the search runs on (its registered defaults); `backbone` is
                                   # then retrained on the configuration it found


class IRazorTransfer(IRazor):
    """i-Razor's configuration transferred across models (Table 7, 'MLP' config): the search runs on
    ``search_backbone`` (default the DNN, the paper's MLP), and ``backbone`` (e.g. DeepFM) is retrained on the
    fields and dims it found. With backbone = search_backbone and no backbone_config (the search uses the
    search backbone's registered architecture) this is plain i-Razor.

    Paper: Yao et al., i-Razor, IEEE TKDE 2023 (arXiv:2204.00281), section 4.8.
    """

    name = "irazor-transfer"
    Config = IRazorTransferConfig

    def search_backbone(self) -> BackboneMethod:
        cfg: IRazorTransferConfig = self.config  # type: ignore[assignment]
        return dataclasses.replace(cfg, backbone=cfg.search_backbone, backbone_config={}).build_backbone()


@dataclass
class IRazorFDEConfig(IRazorConfig):
    """i-Razor's keys plus the one dim every kept field is retrained at."""

    field_dim: int = 10   # the fixed dim of every kept field (10 = the zoo DNN's, leanrec's FDE row `dnn`)

    def validate(self) -> None:
        super().validate()
        if self.field_dim < 1:
            raise ConfigError(f"field_dim must be >= 1, got {self.field_dim}")


class IRazorFDE(IRazor):
    """'i-Razor w/ FDE' (Tables 3-4): i-Razor's field selection alone -- the fields its search keeps, each
    retrained at one fixed dim (``field_dim``) instead of its searched dim.

    Paper: Yao et al., i-Razor, IEEE TKDE 2023 (arXiv:2204.00281), section 4.2.
    """

    name = "irazor-fde"
    Config = IRazorFDEConfig

    def retrain_dims(self, dims: np.ndarray) -> np.ndarray:
        cfg: IRazorFDEConfig = self.config  # type: ignore[assignment]
        return np.where(dims > 0, cfg.field_dim, 0)
