"""The harness trainer: minibatches by slicing device tensors, Adam, early stopping on validation AUC with
learning-rate decay on plateaus, best-weights restore, gradient clipping and NaN detection."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from leanrec.errors import LeanrecError
from leanrec.methods import MethodConfig
from leanrec.metrics import roc_auc

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
    best_valid_auc: float
    best_epoch: int
    epochs_run: int
    steps: int
    history: list[dict] = field(default_factory=list)


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
    out = [predict_fn(model, X[i:i + batch_size]).float() for i in range(0, X.shape[0], batch_size)]
    model.train(was_training)
    return torch.cat(out).cpu().numpy() if out else np.zeros(0, dtype=np.float32)


def make_adam(model: nn.Module, cfg: MethodConfig) -> torch.optim.Optimizer:
    """Adam with separate L2 for embedding tables (cfg.embedding_l2) and the rest (cfg.weight_decay).

    The fused kernel (one pass per parameter instead of a chain of elementwise ops) is used where torch
    has one: float parameters on CPU or CUDA.
    """
    emb_ids = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if id(p) in emb_ids], "weight_decay": cfg.embedding_l2},
        {"params": [p for p in params if id(p) not in emb_ids], "weight_decay": cfg.weight_decay},
    ]
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam([g for g in groups if g["params"]], lr=cfg.lr, fused=fused or None)


def train_model(
    model: nn.Module,
    train: Tensors,
    valid: Tensors,
    cfg: MethodConfig,
    *,
    loss_fn: LossFn = bce_loss,
    predict_fn: PredictFn = default_predict,
    optimizer: torch.optim.Optimizer | None = None,
    on_step: Callable[[int], None] | None = None,
    max_epochs: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> TrainResult:
    """Train `model` in place and restore the weights of the best validation-AUC epoch.

    Stops after `cfg.patience` epochs without improvement; on each plateau the LR is multiplied by
    `cfg.lr_decay`. `on_step(step)` runs after every optimiser step (for schedules such as temperature
    annealing). `progress(done, total, message)` is called once per batch.
    """
    optimizer = optimizer or make_adam(model, cfg)
    epochs = min(cfg.epochs, max_epochs) if max_epochs else cfg.epochs
    gen = torch.Generator(device="cpu").manual_seed(seed)
    n, bs = len(train), cfg.batch_size
    batches = math.ceil(n / bs)
    best_auc, best_epoch, best_state, bad_epochs, step = -math.inf, -1, None, 0, 0
    history: list[dict] = []
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen).to(train.X.device)
        total = torch.zeros((), device=train.X.device)
        for b in range(batches):
            idx = perm[b * bs:(b + 1) * bs]
            loss = loss_fn(model, train.X[idx], train.y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            total += loss.detach()
            step += 1
            if on_step is not None:
                on_step(step)
            if progress is not None:
                progress(epoch * batches + b + 1, epochs * batches, f"epoch {epoch + 1}/{epochs}")
        mean_loss = float(total) / max(batches, 1)
        if not math.isfinite(mean_loss):
            raise TrainingDiverged(f"training loss is {mean_loss} in epoch {epoch + 1} (lr={cfg.lr})")
        auc = roc_auc(valid.y[:, 0].cpu().numpy(), predict_logits(model, valid.X, predict_fn))
        history.append({"epoch": epoch + 1, "train_loss": mean_loss, "valid_auc": auc,
                        "lr": optimizer.param_groups[0]["lr"]})
        if auc > best_auc:
            best_auc, best_epoch, bad_epochs = auc, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
            for group in optimizer.param_groups:
                group["lr"] = max(group["lr"] * cfg.lr_decay, 1e-6)
            if bad_epochs >= cfg.patience:
                break
    if progress is not None:
        progress(epochs * batches, epochs * batches, "done")
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(best_auc, best_epoch, len(history), step, history)
