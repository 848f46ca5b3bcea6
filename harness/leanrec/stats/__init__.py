"""leanrec.stats: information statistics over CTR logs, computed by the Rust engine (leanrec._native).

Measures on in-memory codes (nats; estimator="plugin" | "miller-madow"):
    entropy, mutual_info, conditional_mutual_info, chi2, value_counts, independence_bias,
    field_label_mi, label_conditional_mi, pairwise_label_cmi, pairwise_mi, permutation_null
Streaming over files (bounded memory, mergeable shards):
    compute, compute_distributed, TableAccumulator, StatsReport
See docs/stats.md for formulas, approximations and the serialisation format.
"""
from __future__ import annotations

from leanrec.stats.engine import TableAccumulator, compute, compute_distributed, parse_size
from leanrec.stats.measures import (
    chi2,
    conditional_mutual_info,
    entropy,
    field_label_mi,
    independence_bias,
    label_conditional_mi,
    mutual_info,
    pairwise_label_cmi,
    pairwise_mi,
    permutation_null,
    value_counts,
)
from leanrec.stats.report import StatsReport

__all__ = [
    "entropy", "mutual_info", "conditional_mutual_info", "chi2", "value_counts", "independence_bias",
    "field_label_mi", "label_conditional_mi", "pairwise_label_cmi", "pairwise_mi",
    "permutation_null", "compute", "compute_distributed", "TableAccumulator", "StatsReport", "parse_size",
]
