"""Weight sparsity of a trained model's dense layers: one-shot magnitude pruning and the statistics of
"implicit sparsity" (how many learned weights are near zero, how concentrated the weight power is).

* :func:`dense_layers` -- the model's dense (``nn.Linear``) layers, in module order; embeddings are not dense.
* :func:`magnitude_prune_` -- keep the largest-magnitude share of the dense-layer weights (per layer, as Han
  et al., NeurIPS 2015, or with one global threshold; without fine-tuning), zero the rest in place; biases stay.
* :func:`recalibrate_batch_norm_` -- re-estimate batch-norm running statistics after pruning (they were
  collected for the unpruned weights; left stale they would add their own error to the pruning's).
* :func:`dense_weight_stats` -- SSR's Figure 1 statistics of the hidden layers: the share of weights with
  |w| < 1e-3 and, per layer, the share of weight power (sum of squared weights over each input dimension) held
  by the top 4% of input dimensions, and the share of input dimensions that hold 80% of it.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def dense_layers(model: nn.Module) -> list[nn.Linear]:
    """Every ``nn.Linear`` of `model` in module order (MLP towers, cross layers, output heads)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def hidden_layers(model: nn.Module) -> list[nn.Linear]:
    """The dense layers that produce a hidden representation (more than one output unit; not a logit head)."""
    return [m for m in dense_layers(model) if m.out_features > 1]


PRUNING_SCOPES = ("layer", "global")


def _top_mask(magnitudes: torch.Tensor, keep: float) -> torch.Tensor:
    """Boolean mask of the ``ceil(keep * n)`` (at least 1) largest of `magnitudes` (flat); ties at the threshold
    are kept in order (a stable sort), so exactly that many are True."""
    n_keep = max(1, math.ceil(keep * magnitudes.numel() - 1e-9))   # 1e-9: 0.56 x 25 is 14, not 15
    order = torch.sort(magnitudes, descending=True, stable=True).indices
    mask = torch.zeros(magnitudes.numel(), dtype=torch.bool, device=magnitudes.device)
    mask[order[:n_keep]] = True
    return mask


@torch.no_grad()
def magnitude_prune_(model: nn.Module, keep: float, scope: str = "layer") -> dict[str, Any]:
    """Zero all but the largest-magnitude share `keep` of `model`'s dense-layer weights, in place.

    ``scope="layer"`` (default; Han et al. set a threshold per layer): each layer keeps ``ceil(keep * n)`` of its
    own n weights, so no layer is emptied. ``scope="global"``: one threshold over all N weights keeps
    ``ceil(keep * N)`` -- it can empty a layer whose weights are small (a logit head), leaving a constant model.
    Ties at a threshold are kept in module order, so exactly that many survive. Returns how many were kept, of
    how many, and each layer's kept share.
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    if scope not in PRUNING_SCOPES:
        raise ValueError(f"scope must be one of {PRUNING_SCOPES}, got {scope!r}")
    layers = dense_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no dense (nn.Linear) layer to prune")
    magnitudes = [m.weight.detach().abs().flatten().double() for m in layers]
    if scope == "global":
        flat = _top_mask(torch.cat(magnitudes), keep)
        masks, start = [], 0
        for w in magnitudes:
            masks.append(flat[start:start + w.numel()])
            start += w.numel()
    else:
        masks = [_top_mask(w, keep) for w in magnitudes]
    per_layer = []
    for m, mask in zip(layers, masks):
        m.weight.mul_(mask.view_as(m.weight).to(m.weight.device))
        per_layer.append(float(mask.double().mean()))
    return {"kept": int(sum(int(mask.sum()) for mask in masks)), "total": int(sum(w.numel() for w in magnitudes)),
            "keep": keep, "scope": scope, "layer_kept_share": per_layer}


@torch.no_grad()
def recalibrate_batch_norm_(model: nn.Module, X: Any, batch_size: int, max_batches: int = 200) -> int:
    """Reset every batch-norm layer's running mean and variance and re-estimate them as plain averages over up
    to `max_batches` batches of the rows `X` (anything sliceable into model inputs), the rest of the model in
    eval mode (no dropout, so no random numbers are drawn). Returns the number of batch-norm layers; 0 leaves
    the model untouched. The model is left in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    model.eval()
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None   # cumulative average over the batches seen
        m.train()
    n = len(X)
    for start in range(0, min(n, batch_size * max_batches), batch_size):
        model(X[start:start + batch_size])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()
    return len(norms)


def _power_concentration(weight: torch.Tensor, top_share: float, power_share: float) -> tuple[float, float]:
    """(share of the layer's weight power held by its top `top_share` input dimensions, smallest share of
    input dimensions that hold `power_share` of it); power of input dimension j = sum_i w_ij^2."""
    power = weight.detach().double().pow(2).sum(dim=0).sort(descending=True).values
    total = float(power.sum())
    if total == 0.0:
        return math.nan, math.nan
    n_in = power.numel()
    top = float(power[: max(1, math.ceil(top_share * n_in))].sum()) / total
    cum = torch.cumsum(power, 0) / total
    dims = int(torch.searchsorted(cum, torch.tensor(power_share, dtype=cum.dtype)).item()) + 1
    return top, min(dims, n_in) / n_in


@torch.no_grad()
def dense_weight_stats(model: nn.Module, near_zero: float = 1e-3, top_share: float = 0.04,
                       power_share: float = 0.8, init: nn.Module | None = None) -> dict[str, Any]:
    """SSR's Figure 1 statistics over `model`'s hidden dense layers (:func:`hidden_layers`):

    * ``near_zero_share``: share of all their weights with |w| < `near_zero` (the paper: 92% below 1e-3);
    * per layer, ``top_power_share``: share of the weight power held by the top `top_share` (4%) of its input
      dimensions (the paper: 80%), and ``dims_for_power``: the smallest share of input dimensions holding
      `power_share` (80%) of it; the first hidden layer in module order is reported on its own (for the DNN
      and REACTION's towers the one reading the embeddings; not so for every architecture, e.g. DCNv2's cross
      layers come first) and the layers' means beside it;
    * with `init` (the same model before training), ``relative_change``: ||W - W_0|| / ||W_0|| over the hidden
      layers (Frobenius), how far training moved them from their initialisation -- near 0, the statistics above
      describe the initialiser more than what was learned.
    """
    layers = hidden_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no hidden dense layer")
    weights = [m.weight.detach() for m in layers]
    n = sum(w.numel() for w in weights)
    small = sum(int((w.abs() < near_zero).sum()) for w in weights)
    conc = [_power_concentration(w, top_share, power_share) for w in weights]
    change = None
    if init is not None:
        w0 = [m.weight.detach() for m in hidden_layers(init)]
        if [w.shape for w in w0] != [w.shape for w in weights]:
            raise ValueError("init does not have the model's hidden layers")
        moved = sum(float((w - v).double().pow(2).sum()) for w, v in zip(weights, w0))
        change = math.sqrt(moved / sum(float(v.double().pow(2).sum()) for v in w0))
    return {"relative_change": change, "near_zero": near_zero, "near_zero_share": small / n, "weights": n,
            "top_share": top_share, "power_share": power_share,
            "top_power_share": [c[0] for c in conc], "dims_for_power": [c[1] for c in conc],
            "top_power_share_first": conc[0][0], "dims_for_power_first": conc[0][1],
            "top_power_share_mean": sum(c[0] for c in conc) / len(conc),
            "dims_for_power_mean": sum(c[1] for c in conc) / len(conc)}
