"""Measurement of a serving model by the harness: quality, size, compute and latency. Methods never report
their own leaderboard numbers."""
from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from leanrec.batches import first_label
from leanrec.metrics import auc_interval, group_auc, log_loss, roc_auc
from leanrec.trainer import Tensors, predict_logits


def quality(model: nn.Module, split: Tensors, group: np.ndarray | None = None) -> dict[str, Any]:
    """Test AUC with its DeLong 95% interval, logloss and (when a group field exists) gAUC of the first label."""
    logits = predict_logits(model, split.X)
    y = first_label(split)
    out: dict[str, Any] = {"auc": roc_auc(y, logits), "logloss": log_loss(y, 1.0 / (1.0 + np.exp(-logits)))}
    if 0 < y.sum() < y.size:
        ci = auc_interval(y, logits)
        out.update(auc_se=ci["se"], auc_ci95=[ci["lo"], ci["hi"]], test_pos=ci["n_pos"], test_neg=ci["n_neg"])
    if group is not None:
        out["gauc"] = group_auc(y, logits, group)
    return out


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameters of the serving model, split into embedding tables and everything else (the backbone)."""
    emb = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    seen: set[int] = set()
    counts = {"embedding": 0, "backbone": 0}
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        counts["embedding" if id(p) in emb else "backbone"] += p.numel()
    counts["total"] = counts["embedding"] + counts["backbone"]
    return counts


def flops_per_sample(model: nn.Module, X: torch.Tensor) -> float:
    """FLOPs per sample from torch's FLOP counter (matmuls, convolutions; gathers count as 0)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(X)
    return counter.get_total_flops() / X.shape[0]


def latency(model: nn.Module, X: torch.Tensor, batch_size: int, repeats: int = 20, warmup: int = 3) -> float:
    """Median seconds per sample of a forward pass at `batch_size` (after warm-up)."""
    reps = int(np.ceil(batch_size / X.shape[0]))
    xb = X.repeat(reps, 1)[:batch_size] if reps > 1 else X[:batch_size]
    sync = (lambda: torch.cuda.synchronize(xb.device)) if xb.is_cuda else (lambda: None)   # the model's device
    times = []
    model.eval()
    with torch.no_grad():
        for i in range(warmup + repeats):
            sync()
            t0 = time.perf_counter()
            model(xb)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return statistics.median(times) / batch_size


def measure(model: nn.Module, test: Tensors, group: np.ndarray | None = None, *,
            latency_repeats: int = 20) -> dict[str, Any]:
    """Every leaderboard measurement of the serving model on the test split."""
    metrics: dict[str, Any] = quality(model, test, group)
    metrics["params"] = count_parameters(model)
    sample = test.X[:256]
    metrics["flops_per_sample"] = flops_per_sample(model, sample)
    metrics["latency_s_per_sample"] = {
        "batch_1": latency(model, sample, 1, latency_repeats),
        "batch_4096": latency(model, sample, 4096, max(3, latency_repeats // 4)),
    }
    return metrics
