"""REACTION and the ablations of its Tables 3 and 4, one registered method each.

    reaction-baseline  single MLP tower [80, 80, 80] on every field (the paper's "Baseline")
    reaction-er        Baseline + entropy regularisation of the output (Table 3 "Baseline + ER")
    reaction-kd        Baseline distilled from a trained MLP [240] teacher (Table 3 "Baseline + KD")
    reaction-dtf       Baseline + Dynamic Tower Fusion (K towers, one served)       (Table 3)
    reaction-afe       Baseline on the fields chosen by Adaptive Feature Extraction (Table 4)
    reaction           AFE + DTF (Table 1)

The paper names ER and KD without defining them; our reading is in docs/reaction.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from leanrec.errors import ConfigError
from leanrec.methods import BackboneMethod, FitResult, Method, MethodConfig, field_specs
from leanrec.space import LogUniform, Uniform, tunable
from leanrec.metrics import roc_auc
from leanrec.trainer import predict_logits
from leanrec_reaction.afe import ESTIMATORS, AFEResult, afe_select
from leanrec_reaction.losses import binary_entropy_from_logits, distillation_loss
from leanrec_reaction.model import ReactionNet, TowerCohort, feature_width

if TYPE_CHECKING:
    from leanrec.context import RunContext

PAPER = ("Song-Li Wu, Zhaocheng Du, Qinglin Jia, Zhenhua Dong. REACTION: Parameter-Efficient Learning for "
         "Recommendation. AAAI 2026.")


# ---- configs -----------------------------------------------------------------------------------------------
@dataclass
class TowerConfig(MethodConfig):
    """Settings of every REACTION tower (paper section 5.1: embedding dim 16, Adam)."""

    embedding_dim: int = 16
    dropout: float = tunable(0.0, Uniform(0.0, 0.5, step=0.05))
    batch_norm: bool = False

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class BaselineConfig(TowerConfig):
    hidden: tuple[int, ...] = (80, 80, 80)

    def validate(self) -> None:
        super().validate()
        _check_hidden(self.hidden, "hidden")


@dataclass
class ERConfig(BaselineConfig):
    # loss = BCE - er_weight * H(sigmoid(logit)): > 0 penalises over-confident outputs (confidence penalty),
    # < 0 minimises the output entropy (Grandvalet & Bengio's entropy minimisation).
    er_weight: float = 0.1


@dataclass
class KDConfig(BaselineConfig):
    teacher_hidden: tuple[int, ...] = (240,)     # the paper's other tower, trained first as the teacher
    kd_weight: float = 1.0                       # loss = BCE(y) + kd_weight * soft-label BCE
    kd_temperature: float = 1.0

    def validate(self) -> None:
        super().validate()
        _check_hidden(self.teacher_hidden, "teacher_hidden")
        if self.kd_temperature <= 0:
            raise ConfigError(f"kd_temperature must be > 0, got {self.kd_temperature}")


@dataclass
class AFEKeys:
    """AFE's keys, shared by reaction-afe and reaction (mixed into their configs)."""

    keep_ratio: float = tunable(0.75, Uniform(0.5, 1.0, step=0.05))  # k = round(keep_ratio * F); the paper reports the best of several thresholds
    min_gain: float = 0.0        # stop earlier when the best candidate's J falls below this (nats)
    estimator: str = "plugin"    # MI/CMI estimator: "plugin" (the paper), "miller-madow" or "shuffle" (ours:
                                 # minus a label-permutation null; both less biased to high cardinality)
    lookahead: bool = False      # ours: add the synergy with the best unselected partner (finds pure
                                 # interactions that eq. 8 ties with noise; see afe.py)


@dataclass
class AFEConfig(BaselineConfig, AFEKeys):
    def validate(self) -> None:
        super().validate()
        _check_afe(self)


@dataclass
class DTFConfig(TowerConfig):
    towers: tuple[tuple[int, ...], ...] = ((80, 80, 80), (240,))
    n_positions: int = 3         # positions of each tower's feature map (see model.py)
    alpha: float = 0.1           # weight of L_srf (eq. 14); the paper gives no values for alpha..tau
    beta: float = 0.1            # weight of L_rff
    gamma: float = 0.01          # weight of L_contra
    m1: float = 0.1              # margin of L_srf (eq. 9)
    m2: float = 0.1              # relaxation margin of L_rff (eq. 10)
    tau: float = tunable(0.2, LogUniform(0.05, 1.0))  # InfoNCE temperature (eqs. 11-12)
    monitor: str = "mean"        # early stopping on the AUC of: "mean" (mean of the towers' logits) or tower "k"
    serve: str = "best"          # tower served: "best" (highest validation AUC) or a tower index "k"

    def __post_init__(self) -> None:
        self.towers = tuple(tuple(int(h) for h in t) for t in self.towers)
        self.monitor, self.serve = str(self.monitor), str(self.serve)   # JSON configs may give an int index

    def validate(self) -> None:
        super().validate()
        if len(self.towers) < 2:
            raise ConfigError(f"DTF needs at least 2 towers, got towers={self.towers}")
        for t in self.towers:
            _check_hidden(t, "towers")
            try:
                feature_width(t, self.n_positions)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        for name in ("m1", "m2"):
            if not 0.0 <= getattr(self, name) < 2.0:
                raise ConfigError(f"{name} must be in [0, 2), got {getattr(self, name)}")
        if self.tau <= 0:
            raise ConfigError(f"tau must be > 0, got {self.tau}")
        for name, allowed in (("monitor", "mean"), ("serve", "best")):
            v = getattr(self, name)
            if v != allowed and not (v.isdigit() and int(v) < len(self.towers)):
                raise ConfigError(f"{name} must be {allowed!r} or a tower index < {len(self.towers)}, got {v!r}")


@dataclass
class ReactionConfig(DTFConfig, AFEKeys):
    def validate(self) -> None:
        super().validate()
        _check_afe(self)


def _check_hidden(hidden: Any, name: str) -> None:
    if not hidden or any(int(h) < 1 for h in hidden):
        raise ConfigError(f"{name} must be a non-empty list of positive layer widths, got {hidden}")


def _check_afe(cfg: Any) -> None:
    if not 0.0 < cfg.keep_ratio <= 1.0:
        raise ConfigError(f"keep_ratio must be in (0, 1], got {cfg.keep_ratio}")
    if cfg.estimator not in ESTIMATORS:
        raise ConfigError(f"estimator must be one of {ESTIMATORS}, got {cfg.estimator!r}")


# ---- shared steps ------------------------------------------------------------------------------------------
def run_afe(data: Any, cfg: AFEKeys) -> AFEResult:
    """AFE on the train split (statistics from leanrec.stats, then the O(F)-per-step greedy loop)."""
    return afe_select(data.train.X, data.train.y, cfg.keep_ratio, cfg.min_gain, [f.name for f in data.fields],
                      cfg.estimator, cfg.lookahead)


def _select_fields(data: Any, ctx: "RunContext", afe_config: Any | None) -> tuple[Any, list, list[int]]:
    """Run AFE (stage "search") when `afe_config` is given; return (afe result or None, fields, columns)."""
    afe = None
    if afe_config is not None:
        with ctx.stage("search"):
            afe = run_afe(data, afe_config)
    return (afe, *_fields_and_columns(data, afe))


def _fields_and_columns(data: Any, afe: AFEResult | None) -> tuple[list, list[int]]:
    specs = field_specs(data)
    cols = sorted(afe.selected) if afe is not None else list(range(len(specs)))
    return [specs[c] for c in cols], cols


def _afe_outputs(afe: AFEResult | None, data: Any) -> dict[str, Any]:
    if afe is None:
        return {}
    n = len(afe.order)
    names = [f.name for f in data.fields]
    return {"selected_fields": [names[c] for c in sorted(afe.selected)],
            # a monotone score: F - rank in the greedy order (the J values themselves are in extra["afe"])
            "field_scores": {names[m]: float(n - r) for r, m in enumerate(afe.order)}}


def _afe_extra(afe: AFEResult, data: Any) -> dict[str, Any]:
    """AFE's record, and the share of fields kept (what the selection table groups selector rows by)."""
    return {"afe": afe.to_dict(), "keep_ratio": len(afe.selected) / len(data.fields)}


def _bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, y[:, 0])


class _SingleTower(Method):
    """Shared fit of the single-tower variants: optional AFE, then one MLP tower trained with `loss`."""

    family = "model"
    use_afe: ClassVar[bool] = False

    def loss_fn(self, ctx: "RunContext", data: Any, fields: list, cols: list[int]):
        return lambda model, X, y: _bce(model(X), y)

    def fit(self, data: Any, ctx: "RunContext") -> FitResult:
        c = self.config
        afe, fields, cols = _select_fields(data, ctx, c if self.use_afe else None)
        loss_fn = self.loss_fn(ctx, data, fields, cols)
        model = _tower(fields, cols, len(data.fields), c.hidden, c).to(ctx.device)
        with ctx.stage("train"):
            ctx.train(model, data, c, loss_fn=loss_fn)
        extra = _afe_extra(afe, data) if afe is not None else {}
        return FitResult(model=model, extra=extra, **_afe_outputs(afe, data))


def _tower(fields: list, cols: list[int], n_dataset_fields: int, hidden: tuple[int, ...], c: TowerConfig
           ) -> ReactionNet:
    """An untrained tower over `fields` (dataset columns `cols`)."""
    net = ReactionNet(fields, c.embedding_dim, hidden, c.dropout, c.batch_norm)
    return net.use_columns(cols) if len(cols) != n_dataset_fields else net


# ---- the registered methods --------------------------------------------------------------------------------
class ReactionBaseline(BackboneMethod):
    """REACTION's "Baseline" (Wu et al., AAAI 2026, section 5.1): one MLP tower [80, 80, 80] over 16-dim
    embeddings of every field.

    A backbone, so other methods can build on it: ``lasso:backbone=reaction-baseline,embedding_dim=16`` retrains
    this tower, with its training settings, on the fields LASSO keeps -- the common backbone of REACTION's
    Table 4, where AFE and the other selectors each pick the fields of the same baseline. Its family stays
    "model" (a paper's baseline, not a zoo architecture; records and tables label it so).
    """

    name = "reaction-baseline"
    paper = PAPER
    family = "model"
    is_baseline = True
    Config = BaselineConfig
    model_class = ReactionNet


class ReactionER(_SingleTower):
    """"Baseline + ER" of REACTION Table 3 (Wu et al., AAAI 2026): the baseline tower with an entropy
    regulariser on its output, loss = BCE - er_weight * H(sigmoid(logit)) (our reading; see docs/reaction.md)."""

    name = "reaction-er"
    paper = PAPER
    Config = ERConfig

    def loss_fn(self, ctx, data, fields, cols):
        w = self.config.er_weight

        def loss(model, X, y):
            z = model(X)
            return _bce(z, y) - w * binary_entropy_from_logits(z).mean()
        return loss


class ReactionKD(_SingleTower):
    """"Baseline + KD" of REACTION Table 3 (Wu et al., AAAI 2026): an MLP [240] teacher (the paper's other
    tower) is trained first; the baseline tower then learns from the labels and the teacher's soft labels
    (our reading; see docs/reaction.md). Only the student is served."""

    name = "reaction-kd"
    paper = PAPER
    Config = KDConfig

    def loss_fn(self, ctx, data, fields, cols):
        c = self.config
        teacher = _tower(fields, cols, len(data.fields), c.teacher_hidden, c).to(ctx.device)
        with ctx.stage("teacher"):
            res = ctx.train(teacher, data, c, name="teacher")
        self.teacher_valid_auc = res.best_valid_auc
        teacher.eval()

        def loss(model, X, y):
            z = model(X)
            with torch.no_grad():
                t = teacher(X)
            return _bce(z, y) + c.kd_weight * distillation_loss(z, t, c.kd_temperature)
        return loss

    def fit(self, data, ctx):
        result = super().fit(data, ctx)
        result.extra["teacher_valid_auc"] = self.teacher_valid_auc
        return result


class ReactionAFE(_SingleTower):
    """"Baseline + AFE" of REACTION Table 4 (Wu et al., AAAI 2026): Adaptive Feature Extraction (eq. 8,
    greedy forward selection on J = PI + BI + CI) picks round(keep_ratio * F) fields; the baseline tower is
    trained on them."""

    name = "reaction-afe"
    paper = PAPER
    family = "selector"
    use_afe = True
    Config = AFEConfig


class ReactionDTF(Method):
    """"Baseline + DTF" of REACTION Table 3 (Wu et al., AAAI 2026, section 4.2, eqs. 9-14): K MLP towers over
    shared embeddings trained jointly with spatial, relational and contrastive fusion losses; one tower (the
    best on validation AUC by default) is served alone."""

    name = "reaction-dtf"
    paper = PAPER
    family = "model"
    use_afe: ClassVar[bool] = False
    Config = DTFConfig

    def fusion_loss_fn(self):
        c = self.config

        def loss(model: TowerCohort, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            maps, logits = model.run_towers(X)
            ce = F.binary_cross_entropy_with_logits(logits, y[:, :1].expand_as(logits), reduction="none")
            total = ce.mean(dim=0).sum()                               # sum_k L_CE(y, y_hat_k)
            K = model.num_towers
            for terms in model.fusion_terms(maps, c.m1, c.m2, c.tau).values():
                # eq. 14 puts a pair's fusion terms into both towers' losses; tower k averages over its K-1
                # partners, so sum_k L_{S_k} = sum_k CE_k + 2/(K-1) * sum_pairs fusion (K = 2: L_S1 + L_S2).
                fusion = c.alpha * terms["srf"] + c.beta * terms["rff"] + c.gamma * terms["contra"]
                total = total + 2.0 / (K - 1) * fusion
            return total
        return loss

    def fit(self, data: Any, ctx: "RunContext") -> FitResult:
        c = self.config
        afe, fields, cols = _select_fields(data, ctx, c if self.use_afe else None)
        cohort = TowerCohort(fields, c.embedding_dim, c.towers, c.n_positions, c.dropout, c.batch_norm)
        if len(cols) != len(data.fields):
            cohort.use_columns(cols)
        cohort = cohort.to(ctx.device)
        if c.monitor == "mean":
            predict = lambda m, X: m(X)                                 # noqa: E731 -- mean of the towers' logits
        else:
            k_mon = int(c.monitor)
            predict = lambda m, X: m.tower_logits(X)[:, k_mon]          # noqa: E731
        with ctx.stage("train"):
            res = ctx.train(cohort, data, c, name="dtf", loss_fn=self.fusion_loss_fn(), predict_fn=predict)
        valid = ctx.tensors(data, "valid")
        all_logits = predict_logits(cohort, valid.X, lambda m, X: m.tower_logits(X))  # (N, K)
        y = valid.y[:, 0].cpu().numpy()
        aucs = [roc_auc(y, all_logits[:, k]) for k in range(cohort.num_towers)]
        served = int(np.nanargmax(aucs)) if c.serve == "best" else int(c.serve)
        extra = {"tower_valid_auc": aucs, "served_tower": served, "towers": [list(t) for t in c.towers],
                 "monitor": c.monitor, "monitor_valid_auc": res.best_valid_auc,
                 "ensemble_valid_auc": roc_auc(y, all_logits.mean(axis=1))}
        if afe is not None:
            extra.update(_afe_extra(afe, data))
        companions = {f"tower{k}": cohort.tower(k) for k in range(cohort.num_towers)} | {"ensemble": cohort}
        return FitResult(model=cohort.tower(served), extra=extra, companions=companions, **_afe_outputs(afe, data))


class Reaction(ReactionDTF):
    """REACTION (Wu et al., AAAI 2026): Adaptive Feature Extraction (eq. 8) selects the fields, Dynamic Tower
    Fusion (eqs. 9-14) trains K towers over their embeddings, and a single tower is served."""

    name = "reaction"
    use_afe = True
    Config = ReactionConfig


METHODS: list[type[Method]] = [ReactionBaseline, ReactionER, ReactionKD, ReactionDTF, ReactionAFE, Reaction]
