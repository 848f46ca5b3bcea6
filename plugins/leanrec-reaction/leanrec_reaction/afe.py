"""Adaptive Feature Extraction (AFE), REACTION section 4.1, eq. 8.

Greedy sequential forward selection over fields. At each step the candidate X_m maximising

    J(X_m) = PI + BI + CI
    PI = 1/|L| sum_i I(X_m; l_i)
    BI = 1/|L| sum_i sum_{j != i} I(X_m; l_j | l_i)
    CI = 1/(|L| |S|) sum_i sum_{X_j in S} I(X_m; l_i | X_j)        (0 while S is empty)

joins the selected set S. Every information term is computed once, up front, by the Rust statistics engine
(``leanrec.stats``: plug-in estimator, nats) on the train split's codes; the greedy loop then only touches
(F,)-vectors: PI and BI do not depend on S, and CI's sum over S is kept as a running (F,) sum, so each step
costs O(F) -- linear in the number of fields, as the paper claims.

Optional look-ahead (ours, off by default): a field informative only through an interaction (e.g. the XOR of
two fields) has PI = 0 and CI = 0 until its partner is in S, so under eq. 8 it ties with noise. With
``lookahead=True`` J gains

    LI = max_{X_j not in S, j != m} [ I(X_m; l | X_j) - I(X_m; l) ]_+      (mean over labels)

the synergy of X_m with its best not-yet-selected partner, read from the same pair statistics (no new pass
over the data; O(F^2) per step).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from leanrec.selection import keep_count


@dataclass
class AFEStatistics:
    """The low-order information terms AFE needs (all in nats).

    ``mi`` (F, L): I(X_m; l_i).  ``label_cmi`` (L, L, F): [i, j, m] = I(X_m; l_j | l_i).
    ``pair_cmi`` (L, F, F): [i, m, j] = I(X_m; l_i | X_j).
    """

    mi: np.ndarray
    label_cmi: np.ndarray
    pair_cmi: np.ndarray

    def __post_init__(self) -> None:
        self.mi = np.asarray(self.mi, dtype=np.float64)
        self.label_cmi = np.asarray(self.label_cmi, dtype=np.float64)
        self.pair_cmi = np.asarray(self.pair_cmi, dtype=np.float64)
        F, L = self.mi.shape
        if self.label_cmi.shape != (L, L, F) or self.pair_cmi.shape != (L, F, F):
            raise ValueError(f"inconsistent AFE statistics: mi {self.mi.shape}, label_cmi {self.label_cmi.shape}"
                             f" (expected {(L, L, F)}), pair_cmi {self.pair_cmi.shape} (expected {(L, F, F)})")


ESTIMATORS = ("plugin", "miller-madow", "shuffle")
SHUFFLES = 2   # label permutations averaged by the "shuffle" estimator


def afe_statistics(codes: np.ndarray, labels: np.ndarray, estimator: str = "plugin") -> AFEStatistics:
    """One call each to the statistics engine over int codes (N, F) and binary labels (N, L).

    ``estimator="shuffle"`` (ours): every plug-in term minus its mean over SHUFFLES row permutations of the
    labels (fixed seed). Permuted labels are independent of the fields but keep their joint distribution, so
    each permuted term is the plug-in bias of that term at the field's (and the conditioning field's) actual
    cardinalities -- the bias that makes high-cardinality noise outrank informative fields.
    """
    from leanrec import stats

    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    codes = np.ascontiguousarray(codes)
    labels = np.asarray(labels)
    labels = np.ascontiguousarray(labels.reshape(len(labels), -1).astype(np.int32))
    engine = "plugin" if estimator == "shuffle" else estimator
    measures = (stats.field_label_mi, stats.label_conditional_mi, stats.pairwise_label_cmi)
    terms = [m(codes, labels, estimator=engine) for m in measures]
    if estimator == "shuffle":
        terms = [t - stats.permutation_null(m, codes, labels, shuffles=SHUFFLES, estimator=engine)
                 for t, m in zip(terms, measures)]
    return AFEStatistics(*terms)


@dataclass
class AFEResult:
    """The full greedy order over all fields, each step's J and its parts, and the selected prefix."""

    order: list[int]                  # every field, in the order greedy selection would add it
    J: list[float]                    # J of the field added at each step (its value at that step)
    PI: list[float]
    BI: list[float]
    CI: list[float]
    LI: list[float]                   # look-ahead synergy term (all 0 unless lookahead=True)
    selected: list[int]               # the chosen prefix of `order`
    stop_reason: str                  # "k" (reached k fields) or "min_gain" (best J fell below the threshold)
    k: int
    min_gain: float
    field_names: list[str] = field(default_factory=list)
    lookahead: bool = False           # whether J included LI

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary for FitResult.extra (field names where known, else indices)."""
        names = self.field_names or [str(i) for i in range(len(self.order))]
        steps = [{"step": s + 1, "field": names[m], "index": m, "J": self.J[s], "PI": self.PI[s],
                  "BI": self.BI[s], "CI": self.CI[s], "LI": self.LI[s], "selected": s < len(self.selected)}
                 for s, m in enumerate(self.order)]
        return {"order": [names[m] for m in self.order], "selected": [names[m] for m in self.selected],
                "k": self.k, "min_gain": self.min_gain, "stop_reason": self.stop_reason,
                "lookahead": self.lookahead, "steps": steps}


def greedy_select(st: AFEStatistics, k: int, min_gain: float = 0.0,
                  field_names: Sequence[str] = (), lookahead: bool = False) -> AFEResult:
    """Greedy forward selection maximising J (eq. 8; + LI with `lookahead`, see the module docstring). The
    greedy order is run over all F fields (O(F) per step) so the record/plot shows every field; the selection
    is its first k fields, cut earlier at the first step whose best J is below `min_gain`."""
    F, L = st.mi.shape
    if not 1 <= k <= F:
        raise ValueError(f"k must be in [1, {F}], got {k}")
    pi = st.mi.mean(axis=1)                                          # (F,)
    off_diag = ~np.eye(L, dtype=bool)
    bi = st.label_cmi[off_diag].sum(axis=0) / L                     # sum over i != j -> (F,)
    ci_pair = st.pair_cmi.mean(axis=0)                               # (F, F): [m, j], mean over labels
    ci_sum = np.zeros(F)
    remaining = np.ones(F, dtype=bool)
    synergy = np.clip(ci_pair - pi[:, None], 0.0, None)             # [m, j]: I(X_m; l | X_j) - I(X_m; l)
    np.fill_diagonal(synergy, 0.0)
    order: list[int] = []
    Js, PIs, BIs, CIs, LIs = [], [], [], [], []
    for step in range(F):
        ci = ci_sum / step if step else np.zeros(F)
        li = np.where(remaining[None, :], synergy, 0.0).max(axis=1) if lookahead else np.zeros(F)
        J = np.where(remaining, pi + bi + ci + li, -np.inf)
        m = int(np.argmax(J))                                        # ties -> lowest column index
        order.append(m)
        Js.append(float(J[m])), PIs.append(float(pi[m])), BIs.append(float(bi[m])), CIs.append(float(ci[m]))
        LIs.append(float(li[m]))
        remaining[m] = False
        ci_sum += ci_pair[:, m]
    n_sel, reason = k, "k"
    below = [s for s in range(k) if Js[s] < min_gain]
    if below:
        n_sel, reason = max(1, below[0]), "min_gain"                 # always keep at least one field
    return AFEResult(order, Js, PIs, BIs, CIs, LIs, order[:n_sel], reason, k, min_gain, list(field_names),
                     lookahead)


def afe_select(codes: np.ndarray, labels: np.ndarray, keep_ratio: float, min_gain: float = 0.0,
               field_names: Sequence[str] = (), estimator: str = "plugin", lookahead: bool = False) -> AFEResult:
    """AFE on a split's codes (N, F) and labels (N, L): statistics from leanrec.stats, then greedy selection."""
    st = afe_statistics(codes, labels, estimator)
    return greedy_select(st, keep_count(st.mi.shape[0], keep_ratio), min_gain, field_names, lookahead)


def plot_afe(result: AFEResult | dict[str, Any], path: str | Path, title: str = "AFE selection") -> Path:
    """PNG of the greedy order: stacked PI/BI/CI bars per step (J = their sum), the cut marked.

    `result` is an AFEResult or its ``to_dict()`` (e.g. ``record["extra"]["afe"]`` from a run record).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = result.to_dict() if isinstance(result, AFEResult) else result
    steps = d["steps"]
    x = np.arange(len(steps))
    parts = {p: np.array([s.get(p, 0.0) for s in steps]) for p in ("PI", "BI", "CI", "LI")}
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(steps) + 2), 4))
    bottom = np.zeros(len(steps))
    for (name, vals), color in zip(parts.items(), ("#4c72b0", "#dd8452", "#55a868", "#8172b3")):
        ax.bar(x, vals, bottom=bottom, color=color, label=name)
        bottom += vals
    ax.plot(x, [s["J"] for s in steps], "k.-", lw=1, label="J")
    n_sel = sum(s["selected"] for s in steps)
    ax.axvline(n_sel - 0.5, color="red", ls="--", lw=1, label=f"cut (k={n_sel}, {d['stop_reason']})")
    ax.set_xticks(x)
    ax.set_xticklabels([s["field"] for s in steps], rotation=90, fontsize=7)
    ax.set_xlabel("field, in greedy selection order")
    ax.set_ylabel("J at the step it was added (nats)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
