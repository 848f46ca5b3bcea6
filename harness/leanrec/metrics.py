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
