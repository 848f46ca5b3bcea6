"""Learned (gating) selectors: AutoField, AdaFS, OptFS, LPFS, MvFS.

Each trains the backbone over all fields with a gate that multiplies every field's representation
(``model.interact(model.scale_fields(model.embed(X), weights))``), reads one importance score per field off
the trained gate, and hands the ranking to the protocol (retrain on the top-k). AdaFS and MvFS gate per
sample during training and inference, so they also exist as single-stage methods (``adafs-e2e``,
``mvfs-e2e``) whose serving model is the gated network itself. Reference settings: ERASE (Jia et al.,
KDD 2024) code, see /work/shared/METHODS.md and docs/selection.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from leanrec.errors import ConfigError
from leanrec.methods import FitResult, field_specs
from leanrec.nn import MLP, CTRModel, FieldEmbedding, Features
from leanrec.selection import SelectorConfig, SelectorMethod, order_fields
from leanrec.trainer import bce_loss, make_adam

if TYPE_CHECKING:
    from leanrec.context import RunContext
    from leanrec.data import EncodedDataset


class Gate(nn.Module):
    """Maps per-field features (and the raw codes) to (possibly transformed features, weights (F,) or (B, F))."""

    def forward(self, feats: Features, X: torch.Tensor) -> tuple[Features, torch.Tensor]:
        raise NotImplementedError

    def penalty(self) -> torch.Tensor | float:
        """Regulariser added to the loss of the batch just gated (0 by default)."""
        return 0.0


class GatedModel(nn.Module):
    """A backbone whose per-field representations are multiplied by a gate's weights. Takes the full dataset X."""

    def __init__(self, model: CTRModel, gate: Gate):
        super().__init__()
        self.model, self.gate = model, gate

    def weights(self, X: torch.Tensor) -> torch.Tensor:
        return self.gate(self.model.embed(X), X)[1]

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        feats, w = self.gate(self.model.embed(X), X)
        return self.model.interact(self.model.scale_fields(feats, w))


def gated_loss(model: GatedModel, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return bce_loss(model, X, y) + model.gate.penalty()


@torch.no_grad()
def mean_weights(gated: GatedModel, X: torch.Tensor, batch_size: int = 16384) -> torch.Tensor:
    """Mean gate weight per field over the rows of X, in eval mode -> (F,)."""
    was = gated.training
    gated.eval()
    total, n = None, 0
    for i in range(0, X.shape[0], batch_size):
        w = gated.weights(X[i:i + batch_size])
        w = w.expand(min(batch_size, X.shape[0] - i), -1) if w.dim() == 1 else w
        total = w.sum(0) if total is None else total + w.sum(0)
        n += w.shape[0]
    gated.train(was)
    return total / max(n, 1)


@dataclass
class GateConfig(SelectorConfig):
    """Search settings of learned selectors (ERASE reference: batch 4096, Adam 1e-3)."""

    batch_size: int = 4096


class GatedSelector(SelectorMethod):
    """Shared search loop: build the backbone over all fields, wrap it with ``make_gate``, train (stage
    "select" via the protocol), score fields with ``field_scores``."""

    Config = GateConfig

    def make_gate(self, model: CTRModel, data: "EncodedDataset") -> Gate:
        raise NotImplementedError

    def on_step(self, gated: GatedModel, step: int, total_steps: int, ctx: "RunContext",
                data: "EncodedDataset", optimizer: torch.optim.Optimizer) -> None:
        """Schedules (temperatures, proximal steps, architecture updates) after each optimiser step."""

    def optimizer(self, gated: GatedModel) -> torch.optim.Optimizer:
        return make_adam(gated, self.config)

    def field_scores(self, gated: GatedModel, data: "EncodedDataset", ctx: "RunContext") -> torch.Tensor:
        """Default: mean gate weight over the validation rows."""
        return mean_weights(gated, ctx.tensors(data, "valid").X)

    def search(self, data: "EncodedDataset", ctx: "RunContext") -> GatedModel:
        model = self.backbone().build_model(field_specs(data))
        gated = GatedModel(model, self.make_gate(model, data)).to(ctx.device)
        total_steps = ctx.schedule(len(data.train.X), self.config).total_steps
        opt = self.optimizer(gated)
        ctx.train(gated, data, self.config, name="search", loss_fn=gated_loss, optimizer=opt,
                  on_step=lambda step: self.on_step(gated, step, total_steps, ctx, data, opt))
        self._gated = gated
        return gated

    def rank(self, data: "EncodedDataset", ctx: "RunContext") -> dict[str, float]:
        gated = self.search(data, ctx)
        scores = self.field_scores(gated, data, ctx).detach().cpu().tolist()
        return {f.name: float(s) for f, s in zip(data.fields, scores)}


def _uniform_emb(model: CTRModel, who: str) -> tuple[int, int]:
    if not model.embedding.uniform:
        raise ConfigError(f"{who} needs a backbone with one embedding dim for all fields")
    return model.num_fields, model.embedding.dims[0]


# ---- AutoField ------------------------------------------------------------------------------------------------
class AutoFieldGate(Gate):
    def __init__(self, n_fields: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.full((n_fields, 2), 0.5))   # logits of (drop, keep), as the ERASE code
        self.tau = 1.0

    def forward(self, feats: Features, X: torch.Tensor) -> tuple[Features, torch.Tensor]:
        if self.training:
            w = nn.functional.gumbel_softmax(self.alpha, tau=self.tau, hard=False, dim=-1)[:, 1]
        else:
            w = torch.softmax(self.alpha, dim=-1)[:, 1]
        return feats, w


class AutoField(GatedSelector):
    """AutoField (Wang et al., "AutoField: Automating Feature Selection in Deep Recommender Systems", WWW 2022).

    Two logits (drop, keep) per field, Gumbel-softmax keep weight with temperature 1 -> 0.01 (-5e-5 per step);
    DARTS-style (first-order) bi-level optimisation: the model on training batches (the logits held constant:
    no gradient, not in its optimiser or its gradient clipping), the gate logits with their own Adam (``arch_lr``)
    on a random validation batch (``arch_batch_size`` rows, 0 = ``batch_size``) every ``update_frequency``
    steps, the gradient taken w.r.t. the logits only. Score: softmax keep probability (ranks as the ERASE code's
    raw keep logit, since both logits get equal and opposite gradients from the same init).
    """

    name = "autofield"
    paper = "Wang et al., AutoField: Automating Feature Selection in Deep Recommender Systems, WWW 2022"

    @dataclass
    class Config(GateConfig):
        tau_start: float = 1.0
        tau_min: float = 0.01
        tau_decay: float = 5e-5      # subtracted per step
        update_frequency: int = 10   # gate update on a validation batch every this many steps
        arch_lr: float = 1e-3
        arch_batch_size: int = 0     # rows of the validation batch of a gate update (0 = batch_size, as ERASE)

        def validate(self) -> None:
            super().validate()
            if self.update_frequency < 1 or self.arch_batch_size < 0 or self.arch_lr <= 0:
                raise ConfigError("autofield needs update_frequency >= 1, arch_batch_size >= 0, arch_lr > 0")
            if not 0 < self.tau_min <= self.tau_start or self.tau_decay < 0:
                raise ConfigError("autofield needs 0 < tau_min <= tau_start and tau_decay >= 0")

    def make_gate(self, model: CTRModel, data: "EncodedDataset") -> Gate:
        gate = AutoFieldGate(model.num_fields)
        gate.tau = self.config.tau_start
        return gate

    def optimizer(self, gated: GatedModel) -> torch.optim.Optimizer:
        alpha = gated.gate.alpha
        self._arch_opt = torch.optim.Adam([alpha], lr=self.config.arch_lr)
        # The logits are constants of the model's training steps (first-order DARTS): frozen, they are left out
        # of the model optimiser, get no gradient from training batches, and do not enter its gradient clipping.
        alpha.requires_grad_(False)
        return make_adam(gated, self.config)

    def on_step(self, gated, step, total_steps, ctx, data, optimizer) -> None:
        cfg = self.config
        gated.gate.tau = max(cfg.tau_min, cfg.tau_start - cfg.tau_decay * step)
        if step % cfg.update_frequency == 0:
            valid = ctx.tensors(data, "valid")
            n = min(cfg.arch_batch_size or cfg.batch_size, len(valid))
            idx = torch.randint(len(valid), (n,), device=valid.X.device)
            alpha = gated.gate.alpha
            alpha.requires_grad_(True)
            try:
                loss = bce_loss(gated, valid.X[idx], valid.y[idx])   # train mode: Gumbel-softmax weights
                # Gradient w.r.t. the logits only: the model's weights are not touched by the validation batch.
                (alpha.grad,) = torch.autograd.grad(loss, [alpha])
            finally:
                alpha.requires_grad_(False)
            self._arch_opt.step()
            alpha.grad = None

    def field_scores(self, gated, data, ctx) -> torch.Tensor:
        return torch.softmax(gated.gate.alpha.detach(), dim=-1)[:, 1]


# ---- AdaFS -----------------------------------------------------------------------------------------------------
class AdaFSGate(Gate):
    """BatchNorm over the embedding dim, controller MLP (F*d -> hidden -> F), softmax over fields; optional
    per-sample hard top-k (AdaFS-hard)."""

    def __init__(self, n_fields: int, dim: int, hidden: int, hard_k: int = 0):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim, affine=False)
        self.controller = MLP(n_fields * dim, [hidden], n_fields)
        self.hard_k = hard_k

    def forward(self, feats: Features, X: torch.Tensor) -> tuple[Features, torch.Tensor]:
        emb = self.bn(feats.emb.transpose(1, 2)).transpose(1, 2)
        w = torch.softmax(self.controller(emb.flatten(1)), dim=-1)
        if self.hard_k:
            top = w.topk(self.hard_k, dim=-1).indices
            w = w * torch.zeros_like(w).scatter_(1, top, 1.0)
        return Features(emb, feats.linear), w


class AdaFS(GatedSelector):
    """AdaFS (Lin et al., "AdaFS: Adaptive Feature Selection in Deep Recommender System", KDD 2022).

    Controller: BatchNorm over the embedding dim, MLP (F*d -> 16 -> F), softmax over fields, weights multiply
    the normalised embeddings per sample; trained jointly with the backbone (one-level, as the ERASE code's
    "normal" mode). Ranking score: mean controller weight over the validation rows. ``hard_k > 0`` keeps only
    each sample's top-``hard_k`` weights (AdaFS-hard); 0 = AdaFS-soft.
    """

    name = "adafs"
    paper = "Lin et al., AdaFS: Adaptive Feature Selection in Deep Recommender System, KDD 2022"

    @dataclass
    class Config(GateConfig):
        hidden: int = 16
        hard_k: int = 0

    def make_gate(self, model: CTRModel, data: "EncodedDataset") -> Gate:
        F, d = _uniform_emb(model, "AdaFS")
        if self.config.hard_k > F:
            raise ConfigError(f"hard_k={self.config.hard_k} exceeds the {F} fields")
        return AdaFSGate(F, d, self.config.hidden, self.config.hard_k)


# ---- OptFS -----------------------------------------------------------------------------------------------------
class OptFSGate(Gate):
    """A gate per feature value: g = sigmoid(temp * m[x]) / sigmoid(m0), m init m0 (continuous sparsification)."""

    def __init__(self, fields, init: float, l1: float):
        super().__init__()
        self.mask = FieldEmbedding(fields, 1)
        nn.init.constant_(self.mask.tables[0].weight, init)
        self.scale, self.temp, self.l1 = 1.0 / (1.0 / (1.0 + math.exp(-init))), 1.0, l1
        self._last: torch.Tensor | None = None

    def forward(self, feats: Features, X: torch.Tensor) -> tuple[Features, torch.Tensor]:
        g = torch.sigmoid(self.temp * self.mask(X).squeeze(-1))
        self._last = g
        return feats, g * self.scale

    def penalty(self) -> torch.Tensor | float:
        # L1 on the open gates of this batch: the expected number of features a row keeps.
        return self.l1 * self._last.sum(1).mean() if self._last is not None and self.l1 > 0 else 0.0


class OptFS(GatedSelector):
    """OptFS (Lyu et al., "Optimizing Feature Set for Click-Through Rate Prediction", WWW 2023).

    One gate per feature value, learning by continuation: g = sigmoid(temp * m) / sigmoid(m0), m0 = 0.5,
    temperature raised geometrically from 1 to ``gamma`` (ERASE code: 2000) over the search, plus an L1
    penalty ``l1`` on the gates of each batch. Field score (value-level gates aggregated to fields, as the
    field-level protocol needs): share of the field's validation occurrences whose value keeps an open gate
    at the final temperature.
    """

    name = "optfs"
    paper = "Lyu et al., Optimizing Feature Set for Click-Through Rate Prediction, WWW 2023"

    @dataclass
    class Config(GateConfig):
        gamma: float = 2000.0
        mask_init: float = 0.5
        l1: float = 1e-3

    def make_gate(self, model: CTRModel, data: "EncodedDataset") -> Gate:
        return OptFSGate(model.fields, self.config.mask_init, self.config.l1)

    def on_step(self, gated, step, total_steps, ctx, data, optimizer) -> None:
        gated.gate.temp = self.config.gamma ** min(1.0, step / max(total_steps, 1))

    def field_scores(self, gated, data, ctx) -> torch.Tensor:
        gated.gate.temp = self.config.gamma
        with torch.no_grad():
            X = ctx.tensors(data, "valid").X
            logits = gated.gate.mask(X).squeeze(-1)
            share_open = torch.sigmoid(gated.gate.temp * logits).mean(0)
            # At the final temperature most gates saturate to exactly 0 or 1, so fields often tie on the share;
            # the mean mask logit (how far inside the open region the field's values sit) breaks those ties
            # without changing the order of fields whose shares differ.
            tie_break = torch.tanh(logits.mean(0)) * 1e-6
            return share_open + tie_break


# ---- LPFS ------------------------------------------------------------------------------------------------------
class LPFSGate(Gate):
    def __init__(self, n_fields: int, eps: float):
        super().__init__()
        self.x = nn.Parameter(torch.ones(n_fields))
        self.eps = eps

    def forward(self, feats: Features, X: torch.Tensor) -> tuple[Features, torch.Tensor]:
        return feats, self.x * self.x / (self.x * self.x + self.eps)


class LPFS(GatedSelector):
    """LPFS (Guo et al., "LPFS: Learnable Polarizing Feature Selection for Click-Through Rate Prediction",
    arXiv 2206.00267, 2022).

    Field gate x^2 / (x^2 + eps) with x init 1 and eps from 0.1 decaying x0.9978 every 100 steps (the gate
    polarises to 0/1), proximal L1 on x after every optimiser step (soft-threshold by lr * ``l1``). Score:
    the gate at the final eps.
    """

    name = "lpfs"
    paper = "Guo et al., LPFS: Learnable Polarizing Feature Selection for Click-Through Rate Prediction, 2022"

    @dataclass
    class Config(GateConfig):
        eps: float = 0.1
        eps_decay: float = 0.9978
        eps_every: int = 100
        l1: float = 0.5

    def make_gate(self, model: CTRModel, data: "EncodedDataset") -> Gate:
        return LPFSGate(model.num_fields, self.config.eps)

    def on_step(self, gated, step, total_steps, ctx, data, optimizer) -> None:
        cfg = self.config
        gate = gated.gate
        if step % cfg.eps_every == 0:
            gate.eps *= cfg.eps_decay
        lr = optimizer.param_groups[0]["lr"]
        with torch.no_grad():
            gate.x.copy_(torch.sign(gate.x) * torch.clamp(gate.x.abs() - lr * cfg.l1, min=0.0))

    def field_scores(self, gated, data, ctx) -> torch.Tensor:
        x = gated.gate.x.detach()
        return x * x / (x * x + gated.gate.eps)


# ---- MvFS ------------------------------------------------------------------------------------------------------
class MvFSGate(Gate):
    """K views softmax(Linear(F*d -> F)) computed as one Linear(F*d -> K*F); a gating Linear(K*F -> K) with
    softmax over views; I = sum_k r_k C_k; s = 0.5 (1 + tanh(t (I - l)))."""

    def __init__(self, n_fields: int, dim: int, views: int, threshold: float):
        super().__init__()
        self.F, self.K = n_fields, views
        self.views = nn.Linear(n_fields * dim, views * n_fields)
        self.gating = nn.Linear(views * n_fields, views)
        self.threshold, self.t = threshold, 1.0

    def importance(self, feats: Features) -> torch.Tensor:
        C = torch.softmax(self.views(feats.emb.flatten(1)).view(-1, self.K, self.F), dim=-1)   # (B, K, F)
        r = torch.softmax(self.gating(C.flatten(1)), dim=-1)                                   # (B, K)
        return (r.unsqueeze(-1) * C).sum(1)                                                     # (B, F)

    def forward(self, feats: Features, X: torch.Tensor) -> tuple[Features, torch.Tensor]:
        s = 0.5 * (1 + torch.tanh(max(self.t, 5.0) * (self.importance(feats) - self.threshold)))
        return feats, s


class MvFS(GatedSelector):
    """MvFS (Lee et al., "MvFS: Multi-view Feature Selection for Recommender System", CIKM 2023).

    K = 6 sub-networks (views) each giving softmax(Linear(F*d -> F)) field importances, a gating network
    weighting the views, I = sum_k r_k C_k, and the soft selection s = 0.5 (1 + tanh(t (I - 0.2))) that
    multiplies each field's embedding per sample; t grows by 0.001 per step and is used as max(t, 5) (ERASE
    code). Ranking score: mean s over the validation rows.
    """

    name = "mvfs"
    paper = "Lee et al., MvFS: Multi-view Feature Selection for Recommender System, CIKM 2023"

    @dataclass
    class Config(GateConfig):
        views: int = 6
        threshold: float = 0.2
        t_step: float = 0.001

    def make_gate(self, model: CTRModel, data: "EncodedDataset") -> Gate:
        F, d = _uniform_emb(model, "MvFS")
        return MvFSGate(F, d, self.config.views, self.config.threshold)

    def on_step(self, gated, step, total_steps, ctx, data, optimizer) -> None:
        gated.gate.t = 1.0 + self.config.t_step * step


# ---- single-stage (end-to-end) variants ------------------------------------------------------------------------
class _EndToEnd:
    """Mixin: the gated search network is itself the serving model (no retrain). It keeps every field's
    embedding, since the per-sample gate may open any field."""

    def fit(self, data: "EncodedDataset", ctx: "RunContext") -> FitResult:
        with ctx.stage("train"):
            gated = self.search(data, ctx)
        scores = {f.name: float(s) for f, s in zip(data.fields, self.field_scores(gated, data, ctx).tolist())}
        names = [f.name for f in data.fields]
        return FitResult(model=gated, selected_fields=names, field_scores=scores,
                         extra={"ranking": order_fields(scores, names), "end_to_end": True,
                                "k": len(names), "n_fields": len(names), "keep_ratio": 1.0,
                                "selector": self.name, "backbone": self.config.backbone})


class AdaFSE2E(_EndToEnd, AdaFS):
    """AdaFS end to end (Lin et al., KDD 2022): the controller-gated backbone serves directly."""

    name = "adafs-e2e"


class MvFSE2E(_EndToEnd, MvFS):
    """MvFS end to end (Lee et al., CIKM 2023): the multi-view-gated backbone serves directly."""

    name = "mvfs-e2e"
