"""The harness trainer: minibatches by slicing device tensors, Adam, validation every N steps with early stopping,
learning-rate decay on plateaus and best-weights restore (the protocol of :mod:`leanrec.protocol`), gradient
clipping and NaN detection."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from leanrec import distributed
from leanrec.batches import batch_source, first_label, row_chunks
from leanrec.errors import LeanrecError
from leanrec.methods import MethodConfig
from leanrec.metrics import roc_auc
from leanrec.optim import (OptimizerChain, clip_grad_norm, embedding_optimizer_name, flush_deferred, make_optimizer,
                           use_sparse_gradients)
from leanrec.protocol import Budget, plan

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
PredictFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]


class TrainingDiverged(LeanrecError):
    """The loss became NaN or infinite; the run is recorded as failed."""


@dataclass
class Tensors:
    """One split on the training device: X int32 (N, F), y float32 (N, L)."""

    X: torch.Tensor
    y: torch.Tensor

    @classmethod
    def from_numpy(cls, X: np.ndarray, y: np.ndarray, device: torch.device) -> "Tensors":
        # Copy read-only memory maps into memory: random minibatch gathers would page them in anyway, and
        # torch refuses to wrap non-writable arrays safely.
        X = np.array(X, dtype=np.int32, order="C", copy=not getattr(X, "flags", None) or not X.flags.writeable)
        y = np.array(np.asarray(y, dtype=np.float32).reshape(len(y), -1), order="C")
        return cls(torch.from_numpy(X).to(device), torch.from_numpy(y).to(device))

    def __len__(self) -> int:
        return self.X.shape[0]


@dataclass
class TrainResult:
    """What one trainer call did: the best validation AUC and the step it came from, steps and epochs run,
    why it stopped ("early" or "budget"), the schedule it followed and every validation."""

    best_valid_auc: float
    best_step: int
    steps: int
    epochs_run: float
    stopped: str
    schedule: dict[str, int] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    embedding_optimizer: str = "adam"   # what trained the tables ("auto" resolved; leanrec.optim)

    @property
    def best_epoch(self) -> float:
        """The (fractional) epoch of the best validation."""
        per_epoch = self.schedule.get("steps_per_epoch") or 1
        return self.best_step / per_epoch

    def summary(self) -> dict[str, Any]:
        """The record's view of this call (history included: it is a few numbers per validation)."""
        return {"best_valid_auc": self.best_valid_auc, "best_step": self.best_step, "steps": self.steps,
                "epochs_run": round(self.epochs_run, 3), "stopped": self.stopped, "schedule": self.schedule,
                "embedding_optimizer": self.embedding_optimizer, "history": self.history}


def bce_loss(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Default loss: binary cross-entropy of model(X) against the first label."""
    return nn.functional.binary_cross_entropy_with_logits(model(X).reshape(-1), y[:, 0])


def default_predict(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    return model(X).reshape(-1)


@torch.no_grad()
def predict_logits(model: nn.Module, X: torch.Tensor, predict_fn: PredictFn = default_predict,
                   batch_size: int = 16384) -> np.ndarray:
    """Logits for every row of X, in eval mode, in large batches."""
    was_training = model.training
    model.eval()
    out = [predict_fn(model, xb).float() for xb in row_chunks(X, batch_size)]
    model.train(was_training)
    return torch.cat(out).cpu().numpy() if out else np.zeros(0, dtype=np.float32)


def validation_auc(model: nn.Module, valid: Any, predict_fn: PredictFn = default_predict,
                   sync: "distributed.GradientSync | None" = None) -> float:
    """AUC of the first label on `valid` (Tensors or a streamed split); under torch.distributed every rank
    scores its shard and all ranks get the AUC of the gathered scores (the same number on every rank)."""
    if sync is None:
        return roc_auc(first_label(valid), predict_logits(model, valid.X, predict_fn))
    return roc_auc(first_label(valid), sync.gather_logits(valid.X, lambda X: predict_logits(model, X, predict_fn)))


def make_adam(model: nn.Module, cfg: MethodConfig,
              extra_groups: Sequence[dict[str, Any]] = ()) -> torch.optim.Optimizer | OptimizerChain:
    """The harness's optimizer (see :func:`leanrec.optim.make_optimizer`): Adam with cfg.embedding_l2 on the
    embedding tables and cfg.weight_decay elsewhere, the tables updated row-wise when cfg.embedding_optimizer
    says so; `extra_groups` are parameter groups of their own (e.g. a gate's learning rate)."""
    return make_optimizer(model, cfg, extra_groups)


def train_model(
    model: nn.Module,
    train: Tensors,
    valid: Tensors,
    cfg: MethodConfig,
    *,
    budget: Budget | None = None,
    loss_fn: LossFn = bce_loss,
    predict_fn: PredictFn = default_predict,
    optimizer: torch.optim.Optimizer | None = None,
    on_step: Callable[[int], None] | None = None,
    keep: str = "best",
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
    on_eval: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train `model` in place under the protocol of :mod:`leanrec.protocol` and return what happened.

    Optimizer steps over reshuffled epochs until the schedule's total; validation AUC at ``min_steps``, every
    ``eval_every`` steps after it and at the last step. A validation without improvement multiplies the LR by
    ``cfg.lr_decay``; ``cfg.patience`` of them in a row stop training. ``keep="best"`` restores the weights of
    the best validation (never one inside ``min_steps``), ``keep="last"`` keeps the final weights and never
    stops early. `on_step(step)` runs after every optimizer step (schedules such as temperature annealing);
    `progress(done, total, message)` once per step; `on_eval(step, valid_auc)` after every validation (an
    exception it raises, e.g. a tuner's pruning signal, ends training and propagates).
    """
    if keep not in ("best", "last"):
        raise ValueError(f"keep must be 'best' or 'last', got {keep!r}")
    optimizer = optimizer or make_adam(model, cfg)
    use_sparse_gradients(model, optimizer, True)
    try:
        return _train(model, train, valid, cfg, optimizer, budget, loss_fn, predict_fn, on_step, keep, seed, progress,
                      on_eval)
    finally:
        use_sparse_gradients(model, optimizer, False)


def _train(model: nn.Module, train: Tensors, valid: Tensors, cfg: MethodConfig, optimizer: Any,
           budget: Budget | None, loss_fn: LossFn, predict_fn: PredictFn, on_step: Callable[[int], None] | None,
           keep: str, seed: int, progress: Callable[[int, int, str], None] | None,
           on_eval: Callable[[int, float], None] | None = None) -> TrainResult:
    sched = plan(len(train), cfg, budget)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    source = batch_source(train, sched.batch_size, sched.steps_per_epoch)   # this rank's batches (leanrec.batches)
    sync = distributed.GradientSync(model, optimizer) if distributed.is_distributed() else None
    best_auc, best_step, best_state, bad_evals, step = -math.inf, -1, None, 0, 0
    history: list[dict] = []
    stopped = "budget"
    model.train()
    total = torch.zeros((), device=source.device)
    since_eval = 0
    while step < sched.total_steps and stopped == "budget":
        for X, y in source.epoch(gen):   # leaving the loop early closes it (and a streamed source's thread)
            loss = loss_fn(model, X, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if sync is not None:
                sync.average_gradients()
            if cfg.grad_clip > 0:
                clip_grad_norm(model.parameters(), cfg.grad_clip)
            optimizer.step()
            total += loss.detach()
            step += 1
            since_eval += 1
            if on_step is not None:
                on_step(step)
            if progress is not None:
                progress(step, sched.total_steps, f"step {step}/{sched.total_steps}")
            if not sched.is_eval_step(step):
                continue
            mean_loss = float(total if sync is None else sync.mean_over_ranks(total)) / since_eval
            if not math.isfinite(mean_loss):
                raise TrainingDiverged(f"training loss is {mean_loss} before step {step} (lr={cfg.lr})")
            flush_deferred(optimizer)   # deferred row updates applied before the weights are read or the lr changes
            auc = validation_auc(model, valid, predict_fn, sync)
            history.append({"step": step, "epoch": round(step / sched.steps_per_epoch, 3), "train_loss": mean_loss,
                            "valid_auc": auc, "lr": optimizer.param_groups[0]["lr"]})
            if on_eval is not None:
                on_eval(step, auc)
            total.zero_()
            since_eval = 0
            if keep == "last":
                best_auc, best_step = auc, step
            elif auc > best_auc:
                best_auc, best_step, bad_evals = auc, step, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad_evals += 1
                for group in optimizer.param_groups:
                    group["lr"] = max(group["lr"] * cfg.lr_decay, 1e-6)
                if bad_evals >= sched.patience:
                    stopped = "early"
            if stopped == "early" or step >= sched.total_steps:
                break
    if progress is not None:
        progress(sched.total_steps, sched.total_steps, "done")
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(best_auc, best_step, step, step / sched.steps_per_epoch, stopped, sched.to_dict(), history,
                       embedding_optimizer_name(optimizer))
