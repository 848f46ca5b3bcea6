"""Ranking and calibration metrics computed by the harness (sklearn is only a test oracle, not a dependency)."""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties get average ranks). NaN if one class."""
    y = np.asarray(y).ravel().astype(bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=np.float64).ravel())
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y: np.ndarray, prob: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities (clipped to [eps, 1 - eps])."""
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.clip(np.asarray(prob, dtype=np.float64).ravel(), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def group_auc(y: np.ndarray, score: np.ndarray, group: np.ndarray) -> float:
    """gAUC: per-group AUC weighted by group size, over groups that hold both classes. Vectorised by sort."""
    y = np.asarray(y).ravel().astype(np.float64)
    score = np.asarray(score, dtype=np.float64).ravel()
    group = np.asarray(group).ravel()
    order = np.lexsort((score, group))
    g, s, t = group[order], score[order], y[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    sizes = np.diff(np.r_[starts, g.size])
    gid = np.repeat(np.arange(starts.size), sizes)
    # average ranks within each group: rank over (group, score) then subtract group start
    ranks = rankdata(np.c_[gid, s].view([("g", np.float64), ("s", np.float64)]).ravel(), method="average")
    ranks = ranks - np.repeat(starts, sizes)
    n_pos = np.bincount(gid, weights=t)
    n_neg = sizes - n_pos
    rank_sum = np.bincount(gid, weights=ranks * t)
    valid = (n_pos > 0) & (n_neg > 0)
    if not valid.any():
        return float("nan")
    auc = (rank_sum[valid] - n_pos[valid] * (n_pos[valid] + 1) / 2) / (n_pos[valid] * n_neg[valid])
    return float(np.average(auc, weights=sizes[valid]))


def _midranks(x: np.ndarray) -> np.ndarray:
    return rankdata(x, method="average")


def delong_components(y: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's structural components (V10 per positive, V01 per negative) in O(n log n) from
    midranks (Sun & Xu, IEEE SPL 2014)."""
    y = np.asarray(y).ravel().astype(bool)
    s = np.asarray(score, dtype=np.float64).ravel()
    pos, neg = s[y], s[~y]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        raise ValueError("DeLong needs both classes")
    tz = _midranks(np.concatenate([pos, neg]))
    tx, ty = _midranks(pos), _midranks(neg)
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (tz[:m] - tx) / n           # share of negatives each positive beats (ties count half)
    v01 = 1.0 - (tz[m:] - ty) / m     # share of positives that beat each negative
    return float(auc), v10, v01


def delong_variance(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(AUC, its DeLong variance) for one score vector; variance NaN when a class has a single example."""
    auc, v10, v01 = delong_components(y, score)
    m, n = v10.size, v01.size
    if m < 2 or n < 2:
        return auc, float("nan")
    return auc, float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)


def auc_interval(y: np.ndarray, score: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """AUC with its DeLong standard error and a normal `level` interval (clipped to [0, 1]), plus the class
    counts that bound how finely the split can tell two models apart."""
    from scipy.stats import norm

    y = np.asarray(y).ravel().astype(bool)
    auc, var = delong_variance(y, score)
    se = float(np.sqrt(var)) if np.isfinite(var) else float("nan")
    z = float(norm.ppf(0.5 + level / 2))
    return {"auc": auc, "se": se, "lo": max(0.0, auc - z * se), "hi": min(1.0, auc + z * se),
            "n_pos": int(y.sum()), "n_neg": int((~y).sum())}


def delong_paired_test(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> tuple[float, float]:
    """Two-sided DeLong test that two models scored on the same rows have equal AUC: (AUC_a - AUC_b, p)."""
    from scipy.stats import norm

    a, a10, a01 = delong_components(y, score_a)
    b, b10, b01 = delong_components(y, score_b)
    m, n = a10.size, a01.size
    s10 = np.cov(np.vstack([a10, b10]), ddof=1)
    s01 = np.cov(np.vstack([a01, b01]), ddof=1)
    cov = s10 / m + s01 / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = a - b
    if var <= 0:
        return diff, 1.0 if diff == 0 else 0.0
    return diff, float(2 * norm.sf(abs(diff) / np.sqrt(var)))
