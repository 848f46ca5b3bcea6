"""Light-FMP: pretrain a hard-concrete field mask on a small subset, prune fields with weight transfer,
continue training the pruned model on the rest of the training data.

Paper: N. Bui, Y. Ning, L. Wang. "Light-FMP: Lightweight Feature and Model Pruning for Enhanced Deep
Recommender Systems" (see ../shared/papers/light-fmp.txt and docs/lightfmp.md).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from leanrec.errors import ConfigError
from leanrec.methods import BackboneChoiceConfig, BackboneMethod, FitResult, Method, MethodConfig, field_specs
from leanrec.nn import CTRModel
from leanrec.space import LogUniform, tunable
from leanrec.trainer import Tensors, make_adam

from leanrec_lightfmp.gates import BETA, GAMMA, ZETA, HardConcreteGate, Lagrangian

if TYPE_CHECKING:
    from leanrec.context import RunContext
    from leanrec.data import EncodedDataset

PAPER = ("Bui, Ning, Wang. Light-FMP: Lightweight Feature and Model Pruning for Enhanced Deep Recommender "
         "Systems. 2025")
CONSTRAINTS = ("sample", "expected_l0")
SELECTS = ("last", "best")


@dataclass
class LightFMPConfig(BackboneChoiceConfig):
    """Defaults follow the paper (tau = 0.5, 2K pretraining rows, mu = 0.5, sigma^2 = 0.0625, beta = 0.83,
    zeta = 1.1, gamma = -0.1). The shared training keys (lr, batch_size, epochs, ...) drive continued training."""

    # backbone / backbone_config (inherited): any registered backbone whose CTRModel supports drop_fields
    prune_ratio: float = 0.5               # tau: share of fields removed
    pretrain_rows: int = 2000              # |D_S|, stratified by the first label
    pretrain_valid_rows: int = 2000        # validation rows for pretraining early stopping (0 = whole split)
    # The paper only says "until convergence"; these settings are ours (see docs/lightfmp.md). Validation (and
    # the best-epoch restore, gates included) scores the model pruning would produce (top-k, gates folded).
    pretrain_epochs: int = 50              # upper bound; early stopping usually ends pretraining sooner
    pretrain_batch_size: int = 256
    pretrain_select: str = "best"          # "best": early stopping + restore; "last": state after pretrain_epochs
    pretrain_patience: int = 5             # for "best": validations without gain of the pruned-equivalent valid AUC
    pretrain_lr: float = tunable(1e-3, LogUniform(1e-4, 1e-2))  # Adam LR of the backbone during pretraining (paper: one LR)
    gate_lr: float = tunable(0.05, LogUniform(5e-3, 0.5))  # Adam LR of log_alpha (CoFi's reg_learning_rate)
    lagrangian_lr: float = 0.05            # Adam LR of (lambda, phi), gradient ascent
    constraint: str = "sample"             # "sample": mean of the sampled z (eq. 4); "expected_l0": mean P(z>0)
    gate_init_mean: float = 0.5            # mu
    gate_init_std: float = 0.25            # sigma (sigma^2 = 0.0625)
    beta: float = BETA
    zeta: float = ZETA
    gamma: float = GAMMA
    weight_transfer: bool = True           # False = re-initialise the pruned model (Fig. 2b ablation)
    fold_gates: bool = True                # fold kept fields' deterministic gates into their embedding rows

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.prune_ratio < 1.0:
            raise ConfigError(f"prune_ratio must be in [0, 1), got {self.prune_ratio}")
        for name in ("pretrain_rows", "pretrain_epochs", "pretrain_batch_size", "pretrain_patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pretrain_valid_rows < 0:
            raise ConfigError(f"pretrain_valid_rows must be >= 0, got {self.pretrain_valid_rows}")
        if min(self.pretrain_lr, self.gate_lr, self.lagrangian_lr) <= 0:
            raise ConfigError("pretrain_lr, gate_lr and lagrangian_lr must be > 0")
        if self.pretrain_select not in SELECTS:
            raise ConfigError(f"pretrain_select must be one of {SELECTS}, got {self.pretrain_select!r}")
        if self.constraint not in CONSTRAINTS:
            raise ConfigError(f"constraint must be one of {CONSTRAINTS}, got {self.constraint!r}")
        if not (self.gamma < 0 < 1 < self.zeta) or self.beta <= 0:
            raise ConfigError(f"need gamma < 0, zeta > 1, beta > 0; got {self.gamma}, {self.zeta}, {self.beta}")


class GatedModel(nn.Module):
    """A backbone with a hard-concrete masking layer after its embedding (eq. 2) and the Lagrange multipliers.

    ``forward`` uses the deterministic gate (what the trainer's validation sees in eval mode);
    :meth:`loss` samples z once per step, shared by the batch (u in R^m in eq. 3).
    """

    def __init__(self, backbone: CTRModel, gate: HardConcreteGate, target: float, constraint: str = "sample"):
        super().__init__()
        self.backbone, self.gate, self.lagrangian = backbone, gate, Lagrangian()
        self.target, self.constraint = target, constraint

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.backbone(X, field_weights=self.gate.deterministic())

    def predict_pruned(self, X: torch.Tensor, k: int, fold_gates: bool = True) -> torch.Tensor:
        """Logits of the model that pruning to the top-k fields would produce right now (see :func:`prune`)."""
        keep = rank_fields(self.gate)[:k]
        return self.backbone(X, field_weights=masked_weights(self.gate, keep, fold_gates)).reshape(-1)

    def constraint_value(self, z: torch.Tensor) -> torch.Tensor:
        return z.mean() if self.constraint == "sample" else self.gate.expected_l0().mean()

    def loss(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Eq. 5: BCE of the masked model + lambda (c - t) + phi (c - t)^2."""
        z = self.gate.sample()
        logits = self.backbone(X, field_weights=z).reshape(-1)
        bce = nn.functional.binary_cross_entropy_with_logits(logits, y[:, 0])
        return bce + self.lagrangian(self.constraint_value(z), self.target)

    def optimizer(self, cfg: LightFMPConfig) -> torch.optim.Optimizer:
        """Adam: backbone by descent (the harness's groups), log_alpha by descent, (lambda, phi) by ascent."""
        opt = make_adam(self.backbone, cfg)
        opt.add_param_group({"params": [self.gate.log_alpha], "lr": cfg.gate_lr, "weight_decay": 0.0})
        opt.add_param_group({"params": list(self.lagrangian.parameters()), "lr": cfg.lagrangian_lr,
                             "weight_decay": 0.0, "maximize": True})
        return opt


def keep_count(num_fields: int, prune_ratio: float) -> int:
    """(1 - tau) m fields, by the harness's one rounding rule (leanrec.selection.keep_count: half up, >= 1)."""
    from leanrec.selection import keep_count as harness_keep_count

    return harness_keep_count(num_fields, 1.0 - prune_ratio)


def rank_fields(gate: HardConcreteGate) -> list[int]:
    """Fields by deterministic gate, descending; ties (gates clamped at 0 or 1) broken by log_alpha."""
    det = gate.deterministic().detach().cpu().numpy()
    la = gate.log_alpha.detach().cpu().numpy()
    return [int(i) for i in np.lexsort((-la, -det))]


def stratified_subset(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of about n rows drawn without replacement, preserving the label distribution."""
    labels = np.asarray(labels).reshape(-1)
    if n >= len(labels):
        return np.arange(len(labels))
    classes, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse)
    # Largest-remainder allocation so the class counts sum to exactly n.
    quota = counts * n / len(labels)
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take))[: n - take.sum()]] += 1
    chosen = [rng.choice(np.flatnonzero(inverse == c), size=min(t, cnt), replace=False)
              for c, t, cnt in zip(range(len(classes)), take, counts)]
    return np.sort(np.concatenate(chosen))


def prune(backbone: CTRModel, gate: HardConcreteGate, keep: Sequence[int], *, fold_gates: bool = True,
          weight_transfer: bool = True, fresh: CTRModel | None = None) -> CTRModel:
    """The pruned serving model over the fields `keep` (sorted indices into backbone.fields).

    With weight transfer it equals ``backbone(X, field_weights=w)`` where w is the deterministic gate on kept
    fields (1 when not fold_gates) and 0 elsewhere. Without it, `fresh` (an untrained model over the kept
    fields) is returned, reading the right dataset columns.
    """
    keep = sorted(int(k) for k in keep)
    if not weight_transfer:
        if fresh is None:
            raise ValueError("weight_transfer=False needs a freshly built model over the kept fields")
        return fresh.use_columns(backbone.input_index[keep].tolist()).to(backbone.input_index.device)
    pruned = backbone.drop_fields(keep)
    if fold_gates:
        # e'_m = z_m e_m: scaling field m's embedding rows by z_m removes the masking layer without changing
        # the function (one multiplication either way, so outputs match to rounding).
        z = gate.deterministic().detach()[keep]
        with torch.no_grad():
            for emb in (pruned.embedding, pruned.linear_embedding):
                if emb is None:
                    continue
                for i in range(len(keep)):  # once per pruning, not in any forward pass
                    emb.field_rows(i).mul_(z[i])
    return pruned


def masked_weights(gate: HardConcreteGate, keep: Sequence[int], fold_gates: bool = True) -> torch.Tensor:
    """The field weights (F,) the pruned model is equivalent to: gate (or 1) on kept fields, 0 elsewhere."""
    det = gate.deterministic().detach()
    w = torch.zeros_like(det)
    idx = torch.as_tensor(list(keep), dtype=torch.long, device=det.device)
    w[idx] = det[idx] if fold_gates else 1.0
    return w


def _pretrain(gated: GatedModel, data: tuple[Tensors, Tensors], cfg: LightFMPConfig, ctx: "RunContext",
              k: int) -> None:
    """Algorithm 1 through the harness trainer: eq. 5 as the loss, one Adam with descent and ascent groups.

    Validation scores the model pruning would produce now (top-k fields, gates folded). With "best" the
    trainer's early stopping and best-weights restore pick the validation whose pruned model scores best (on
    realistic data later epochs drift towards high-cardinality fields that memorise D_S); with "last" every
    planned step runs and the final state is kept.
    """
    last = cfg.pretrain_select == "last"
    # No LR decay on plateaus: it would freeze the gates long before they separate.
    pre_cfg = dataclasses.replace(cfg, epochs=cfg.pretrain_epochs, batch_size=cfg.pretrain_batch_size,
                                  lr=cfg.pretrain_lr, lr_decay=1.0, patience=cfg.pretrain_patience)
    ctx.train(gated, data, pre_cfg, name="pretrain", loss_fn=lambda m, X, y: m.loss(X, y),
              predict_fn=lambda m, X: m.predict_pruned(X, k, cfg.fold_gates),
              optimizer=gated.optimizer(pre_cfg), keep="last" if last else "best")
    gated.eval()


def _subset(t: Tensors, idx: np.ndarray) -> Tensors:
    i = torch.as_tensor(idx, dtype=torch.long, device=t.X.device)
    return Tensors(t.X.index_select(0, i), t.y.index_select(0, i))


class LightFMP(Method):
    """Light-FMP (Bui, Ning & Wang, 2025): hard-concrete field mask pretrained with a Lagrangian sparsity
    constraint on a small stratified subset D_S, pruning of the backbone's fields with weight transfer
    (``CTRModel.drop_fields``), continued training on D - D_S. Backbone-agnostic (config ``backbone``)."""

    name: ClassVar[str] = "lightfmp"
    paper: ClassVar[str] = PAPER
    family: ClassVar[str] = "pruning"
    Config: ClassVar[type[MethodConfig]] = LightFMPConfig
    config: LightFMPConfig

    def backbone_method(self) -> BackboneMethod:
        return self.config.build_backbone()

    def fit(self, data: "EncodedDataset", ctx: "RunContext") -> FitResult:
        cfg = self.config
        bb = self.backbone_method()
        fields = field_specs(data)
        train, valid = ctx.tensors(data, "train"), ctx.tensors(data, "valid")
        if cfg.pretrain_rows >= len(train):
            raise ConfigError(f"pretrain_rows={cfg.pretrain_rows} leaves no rows for continued training "
                              f"(train split has {len(train)})")
        rng = np.random.default_rng(ctx.seed)
        pre_idx = stratified_subset(data.train.y[:, 0] if data.train.y.ndim > 1 else data.train.y,
                                    cfg.pretrain_rows, rng)
        rest_mask = np.ones(len(train), dtype=bool)
        rest_mask[pre_idx] = False

        with ctx.stage("pretrain"):
            pre_valid = valid
            if 0 < cfg.pretrain_valid_rows < len(valid):
                vy = data.valid.y[:, 0] if data.valid.y.ndim > 1 else data.valid.y
                pre_valid = _subset(valid, stratified_subset(vy, cfg.pretrain_valid_rows, rng))
            backbone = bb.build_model(fields).to(ctx.device)
            gate = HardConcreteGate(len(fields), cfg.gate_init_mean, cfg.gate_init_std,
                                    cfg.beta, cfg.zeta, cfg.gamma).to(ctx.device)
            gated = GatedModel(backbone, gate, target=1.0 - cfg.prune_ratio, constraint=cfg.constraint)
            k = keep_count(len(fields), cfg.prune_ratio)
            _pretrain(gated, (_subset(train, pre_idx), pre_valid), cfg, ctx, k)

        with ctx.stage("prune"):
            ranking = rank_fields(gate)
            keep = sorted(ranking[:k])
            fresh = None if cfg.weight_transfer else bb.build_model([fields[i] for i in keep])
            model = prune(backbone, gate, keep, fold_gates=cfg.fold_gates, weight_transfer=cfg.weight_transfer,
                          fresh=fresh)

        with ctx.stage("continue"):
            ctx.train(model, (_subset(train, np.flatnonzero(rest_mask)), valid), cfg, name="continue")

        det = gate.deterministic().detach().cpu().tolist()
        names = [f.name for f in fields]
        times = {k: ctx.stage_times.get(k, 0.0) for k in ("pretrain", "prune", "continue")}
        with torch.no_grad():
            z = gate.sample((4096,))
        extra = {
            "backbone": cfg.backbone, "PT": times["pretrain"], "prune_time": times["prune"],
            "CT": times["continue"], "TT": sum(times.values()),
            "pretrain_rows": int(len(pre_idx)), "continue_rows": int(rest_mask.sum()),
            "kept": [names[i] for i in keep], "ranking": [names[i] for i in ranking],
            "log_alpha": dict(zip(names, gate.log_alpha.detach().cpu().tolist())),
            "mean_gate_sample": float(z.mean()), "expected_l0": float(gate.expected_l0().detach().sum()),
            "target_keep_ratio": 1.0 - cfg.prune_ratio,
            "lambda": float(gated.lagrangian.lambda_.detach()), "phi": float(gated.lagrangian.phi.detach()),
        }
        return FitResult(model=model, selected_fields=[names[i] for i in keep],
                         field_scores=dict(zip(names, det)), extra=extra)


def _with_backbone(backbone: str, method_name: str) -> type[LightFMP]:
    """A registered variant of Light-FMP whose default backbone is `backbone` (Table 3 of the paper)."""
    config_cls = dataclasses.make_dataclass(
        f"LightFMP{backbone.title().replace('-', '')}Config",
        [("backbone", str, dataclasses.field(default=backbone))], bases=(LightFMPConfig,))
    doc = (f"Light-FMP (Bui, Ning & Wang, 2025) on the {backbone} backbone by default; identical to "
           f"``lightfmp:backbone={backbone}``.")
    return type(f"LightFMP_{backbone.replace('-', '_')}", (LightFMP,),
                {"name": method_name, "Config": config_cls, "__doc__": doc, "__module__": __name__})


BACKBONE_VARIANTS: dict[str, type[LightFMP]] = {
    bb: _with_backbone(bb, f"lightfmp-{bb}") for bb in ("deepfm", "wide-deep", "ipnn", "xdeepfm")
}
