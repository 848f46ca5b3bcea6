"""The sparsifying operators of SSR-D: Iterative Competitive Sparse (ICS, Algorithm 1 of the SSR paper) and the
Top-k straight-through baseline of its ablation (Table 4). Both act on the last dim, independently per view."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def ics(z: torch.Tensor, alpha: torch.Tensor, gamma: torch.Tensor | None = None, *,
        trace: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Iterative Competitive Sparse (Algorithm 1) over the last dim of `z` (..., b, d).

    x0 = ReLU(z); for t < T: x = ReLU(x - alpha_t * mean(x)) (the mean over the view's d dims); y = gamma * x.
    `alpha` is (b, T) (one rate per view and iteration, as in the official code) or (T,); `gamma` is (b, d),
    (d,) or None (the "w/o gamma" setting of Table 5). When `trace` is a list, every state x^(t)
    (t = 0..T, before rescaling) is appended to it, for tests and analysis.
    """
    x = F.relu(z)
    if trace is not None:
        trace.append(x)
    for t in range(alpha.shape[-1]):  # T is a small constant (5): a loop over iterations, not over views
        mu = x.mean(dim=-1, keepdim=True)
        x = F.relu(x - alpha[..., t:t + 1] * mu)
        if trace is not None:
            trace.append(x)
    return x if gamma is None else gamma * x


def topk_ste(z: torch.Tensor, keep: int) -> torch.Tensor:
    """Hard Top-k over the last dim of ReLU(z) with a straight-through gradient (the ablation's "Top-k (STE)").

    Forward: ReLU(z) with all but its `keep` largest entries per view set to exactly zero. Backward: the
    gradient of ReLU(z), as if no entry had been removed (the estimator's gradient mismatch).
    """
    x = F.relu(z)
    kth = x.topk(keep, dim=-1).values[..., -1:]
    hard = x * (x >= kth)
    return x + (hard - x).detach()
