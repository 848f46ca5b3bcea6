"""Tiny in-memory datasets with a planted signal, for unit tests of models and methods (CPU, seconds).

``tiny_dataset`` returns an object with the same interface as :class:`leanrec.data.EncodedDataset`
(fields, labels, splits, train/valid/test, ground_truth, cache_key), without touching disk.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leanrec.data.dataset import FieldInfo, Split, SplitAccess


@dataclass
class TinyDataset(SplitAccess):
    """An in-memory stand-in for EncodedDataset (same attributes, built from the data layer's own types)."""

    name: str
    fields: list[FieldInfo]
    labels: list[str]
    splits: dict[str, Split]
    ground_truth: dict[str, Any] | None = None
    cache_key: str = "in-memory"
    card: Any = field(default=None)


def tiny_dataset(n: int = 3000, *, n_informative: int = 3, n_noise: int = 3, vocab: int = 8,
                 n_labels: int = 1, seed: int = 0, interaction: bool = True) -> TinyDataset:
    """Fields f0..: informative (additive per-value effects), optionally an interacting pair (XOR of parities,
    no marginal signal), then noise. Label(s) drawn from a logistic model; 8:1:1 split."""
    rng = np.random.default_rng(seed)
    names, cols, logit = [], [], np.zeros(n)
    gt: dict[str, list[str]] = {"informative": [], "interaction": [], "noise": [], "redundant": []}
    for i in range(n_informative):
        x = rng.integers(0, vocab, n)
        effect = rng.normal(0, 1.5, vocab)
        logit += effect[x]
        names.append(f"inf{i}"), cols.append(x), gt["informative"].append(f"inf{i}")
    if interaction:
        a, b = rng.integers(0, vocab, n), rng.integers(0, vocab, n)
        logit += 2.5 * np.where((a % 2) ^ (b % 2), 1.0, -1.0)
        for nm, x in (("int_a", a), ("int_b", b)):
            names.append(nm), cols.append(x), gt["interaction"].append(nm)
    for i in range(n_noise):
        names.append(f"noise{i}"), cols.append(rng.integers(0, vocab, n)), gt["noise"].append(f"noise{i}")
    X = np.stack(cols, axis=1).astype(np.int32)
    labels = [(rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)]
    for j in range(1, n_labels):  # e.g. conversion: needs a click and depends on the first field
        p = 1 / (1 + np.exp(-(logit / 2 + (X[:, 0] % 2) * 1.5 - 1)))
        labels.append(labels[0] * (rng.random(n) < p).astype(np.float32))
    y = np.stack(labels, axis=1)
    group = rng.integers(0, 50, n).astype(np.int64)
    cut1, cut2 = int(0.8 * n), int(0.9 * n)
    splits = {name: Split(X[s], y[s], group[s]) for name, s in
              (("train", slice(0, cut1)), ("valid", slice(cut1, cut2)), ("test", slice(cut2, n)))}
    fields = [FieldInfo(nm, "categorical", vocab, vocab) for nm in names]
    return TinyDataset("tiny", fields, [f"label{j}" for j in range(n_labels)], splits, gt)
