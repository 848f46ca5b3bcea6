"""The four papers' headline claims, each measured from the run records: `leanrec claims` writes CLAIMS.md.

A :class:`Claim` (the registry is :mod:`leanrec.claims_registry`) is one statement of a paper: where it is
(table/figure), what it says, the paper's numbers, and either the checks that are its leanrec counterpart or
the reason there is none. A :class:`Check` is one query over the records: on one dataset, side A (a method
spec and a metric) against side B, with the direction the paper claims, e.g. ``reaction > finalmlp`` on AUC
or ``lightfmp-xdeepfm < xdeepfm`` on parameters. Every number comes from the records under
``<results>/runs``; nothing else is read, so regenerating from the same records gives the same file.

The verdict rule is :data:`VERDICT_RULE` (written into CLAIMS.md's header)."""
from __future__ import annotations

import functools
import math
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np
import typer
from scipy import stats as sps

from leanrec.errors import LeanrecError
from leanrec.leaderboard import differences_p_value, near_uniform_search, table_name
from leanrec.plots import png_bytes
from leanrec.protocol import PROTOCOL_VERSION
from leanrec.records import atomic_write_bytes, atomic_write_text, file_slug, iter_records

ALPHA = 0.05   # significance level of every check
MIN_SEEDS = 3  # shared seeds a check needs before it can be reproduced or contradicted

REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"
NOT_RUN, NOT_TESTABLE = "not run yet", "not testable here"
VERDICTS = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_RUN, NOT_TESTABLE)
OPS = (">", "<", ">=", "<=", "==")

VERDICT_RULE = f"""\
**One check** compares side A with side B on the seeds both share (same seed = same split and initialisation).
Per seed Δ = A − B; *p* is the two-sided paired t-test of `leanrec.leaderboard.differences_p_value` (the
leaderboard's test); the *95% CI* is the paired-t interval of the mean Δ. A check needs at least {MIN_SEEDS}
shared seeds to be anything but inconclusive.

* `A > B` / `A < B` (the paper claims a strict difference): **reproduced** when the mean Δ has the claimed sign
  and p < {ALPHA}; **contradicted** when it has the opposite sign and p < {ALPHA}; otherwise **inconclusive**
  (within noise).
* `A ≥ B − m` / `A ≤ B + m` (not worse by more than a margin m, e.g. the papers' 0.001 AUC): **reproduced** when
  the whole CI lies on the claimed side of −m (resp. +m); **contradicted** when the whole CI lies beyond it;
  otherwise inconclusive.
* `A = B ± m` (equal within m): **reproduced** when the CI lies inside (−m, m); **contradicted** when it lies
  entirely outside [−m, m]; otherwise inconclusive.
* A against a number c instead of a side B (the paper's own figure, e.g. "92% of weights are near zero"): per
  seed Δ = A − c, *p* is the one-sample t-test of Δ, and the rules above apply unchanged. A side may also be a
  pair of runs of the same seed, e.g. a method's AUC gain over its control, or how alike two runs rank the
  fields; Δ is then formed from those per-seed values in the same way.
* A check may name a condition its runs must meet to test the claim at all (e.g. that training moved the
  weights it measures); unmet, a check that would be reproduced or contradicted is **inconclusive**, with both.
* **not run yet**: one side has no records (the check is defined; its `leanrec run` line is given).

Records of the current training protocol (version {PROTOCOL_VERSION}) are used when both sides have them;
otherwise records of an older protocol that both sides have, and the *protocol* column says so (`1 (older)`).

**One claim**: **not testable here** when it has no checks (the reason is given); **not run yet** when none
of its checks has records; **reproduced** when every check with records is reproduced; **contradicted** when at
least one is contradicted and none is reproduced; otherwise **inconclusive** (the counts are shown)."""


# ---- metrics: one number per record -------------------------------------------------------------------------
def _extra(key: str) -> Callable[[dict], Optional[float]]:
    return lambda r: (r.get("extra") or {}).get(key)


def _sparsity(layer: Optional[int]) -> Callable[[dict], Optional[float]]:
    def get(r: dict) -> Optional[float]:
        s = (r.get("extra") or {}).get("filter_sparsity_per_layer")
        if not s:
            return None
        return float(np.mean(s)) if layer is None else (s[layer] if layer < len(s) else None)
    return get


def _worst_tower_auc(r: dict) -> Optional[float]:
    """The lowest test AUC among a multi-tower model's towers (metrics.companions 'tower<k>', scored by the harness)."""
    towers = [m["auc"] for name, m in (r["metrics"].get("companions") or {}).items() if name.startswith("tower")]
    return min(towers) if towers else None


def _fields(r: dict) -> Optional[float]:
    if near_uniform_search(r):   # the search did not choose: its kept fields are not the method's
        return None
    fields = (r.get("selection") or {}).get("fields")
    return float(len(fields)) if fields else None


@dataclass(frozen=True)
class Metric:
    """A number read from each record, how it is shown, and whether CLAIMS.md's forest plot shows it."""

    label: str
    get: Callable[[dict], Optional[float]]
    fmt: str = "auc"      # "auc" (4 decimals), "si" (1.23M), "s" (seconds), "ratio" (3 decimals)


METRICS: dict[str, Metric] = {
    "auc": Metric("test AUC", lambda r: r["metrics"]["auc"]),
    "logloss": Metric("test logloss", lambda r: r["metrics"]["logloss"]),
    "params": Metric("parameters (serving model)", lambda r: r["metrics"]["params"]["total"], "si"),
    "emb_params": Metric("embedding parameters", lambda r: r["metrics"]["params"]["embedding"], "si"),
    "backbone_params": Metric("backbone parameters (no embeddings)",
                              lambda r: r["metrics"]["params"]["backbone"], "si"),
    "flops": Metric("FLOPs per sample", lambda r: r["metrics"]["flops_per_sample"], "si"),
    "latency_b1": Metric("latency at batch 1, µs/sample",
                         lambda r: 1e6 * r["metrics"]["latency_s_per_sample"]["batch_1"], "s"),
    "latency_b4096": Metric("latency at batch 4096, µs/sample",
                            lambda r: 1e6 * r["metrics"]["latency_s_per_sample"]["batch_4096"], "s"),
    "time": Metric("total training time, s, all stages", lambda r: r["total_time"], "s"),
    "PT": Metric("pretraining time (s)", _extra("PT"), "s"),
    "CT": Metric("continued-training time (s)", _extra("CT"), "s"),
    "fields": Metric("fields kept", _fields, "si"),
    "worst_tower_auc": Metric("test AUC of the worst tower served alone", _worst_tower_auc),
    "ensemble_auc": Metric("test AUC of the towers' ensemble (mean logit)",
                           lambda r: r["metrics"]["companions"]["ensemble"]["auc"]),
    "auc_retained": Metric("test AUC after pruning / before (metrics.companions.unpruned)",
                           lambda r: r["metrics"]["auc"] / r["metrics"]["companions"]["unpruned"]["auc"], "ratio"),
    "near_zero_share": Metric("share of hidden dense weights with |w| < 1e-3 (trained, unpruned)",
                              lambda r: r["extra"]["dense_weights"]["near_zero_share"], "ratio"),
    "relative_change": Metric("how far training moved the hidden dense weights, ||W − W₀|| / ||W₀||",
                              lambda r: r["extra"]["dense_weights"]["relative_change"], "ratio"),
    "top_power_share": Metric("share of the first hidden layer's weight power in its top 4% input dimensions",
                              lambda r: r["extra"]["dense_weights"]["top_power_share_first"], "ratio"),
    "view_cosine": Metric("mean |cosine| between different views' projection matrices W^proj, over layers",
                          lambda r: r["extra"]["view_diversity"]["mean_abs_cosine"], "ratio"),
    "update_cosine": Metric("mean |cosine| between different views' updates W^proj − W₀ (what training added), "
                            "over layers", lambda r: r["extra"]["view_diversity"]["update_mean_abs_cosine"], "ratio"),
    "view_relative_change": Metric("how far training moved the views' projections, ||W − W₀|| / ||W₀||",
                                   lambda r: r["extra"]["view_diversity"]["relative_change"], "ratio"),
    "sparsity": Metric("filter sparsity (share of exact zeros, mean over layers)", _sparsity(None), "ratio"),
    "sparsity_l1": Metric("filter sparsity of layer 1", _sparsity(0), "ratio"),
    "sparsity_l2": Metric("filter sparsity of layer 2", _sparsity(1), "ratio"),
}


def _gate_rank_tau(a: dict, b: dict) -> Optional[float]:
    """Kendall's tau-b between two runs' field rankings by their masking variable (Light-FMP's extra.log_alpha),
    over the fields both score."""
    la, lb = a["extra"]["log_alpha"], b["extra"]["log_alpha"]
    common = sorted(set(la) & set(lb))
    if len(common) < 2:
        return None
    tau = sps.kendalltau([la[f] for f in common], [lb[f] for f in common]).statistic
    return None if math.isnan(tau) else float(tau)


@dataclass(frozen=True)
class PairMetric:
    """A number read from a pair of records of the same seed (a check's run and its reference run)."""

    label: str
    get: Callable[[dict, dict], Optional[float]]
    fmt: str = "auc"


# metrics of a pair of records (a check's A run and its `ref` run of the same seed): label, value, format
PAIR_METRICS: dict[str, PairMetric] = {
    "auc_gain": PairMetric("test AUC gain over the reference run of the same seed", lambda a, b: a["metrics"]["auc"]
                       - b["metrics"]["auc"]),
    "gate_rank_tau": PairMetric("Kendall's tau-b of the two runs' field rankings by the masking variable log α",
                            _gate_rank_tau, "ratio"),
}


def pair_metric_value(metric: str, a: dict, b: dict) -> Optional[float]:
    """A pair metric of two records, or None when they do not hold what it needs."""
    try:
        return PAIR_METRICS[metric].get(a, b)
    except (KeyError, TypeError, IndexError, ValueError, ZeroDivisionError):
        return None


def metric_value(metric: str, record: dict) -> Optional[float]:
    """A record's value of a metric, or None when the record does not hold it (an older schema, another method)."""
    try:
        return METRICS[metric].get(record)
    except (KeyError, TypeError, IndexError, ValueError, ZeroDivisionError):
        return None


# ---- the registry's types -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """One query over the records: on each of `datasets`, side A (`a`, a method spec as given to `leanrec run
    -m`, and `metric`) against side B (`b`, `b_metric`, default the same metric) or, when `b` is a number,
    against that number (the paper's own figure: a one-sample test of A − b), claimed relation `op`:
    '>' / '<' (strict), '>=' / '<=' (not worse by more than `margin`), '==' (equal within `margin`).
    With `ref`, `metric` is one of PAIR_METRICS and A's value on a seed compares A's run with ref's run of that
    seed (e.g. how alike two runs rank the fields); B is then a number, or B's run against `b_ref`'s (e.g. the
    gain of one cohort over its control against the gain of another over its own).
    `requires` = (metric, '>=' or '<=', value): a condition on A's runs (their mean) without which the check
    cannot test the claim, e.g. that training moved the weights at all; unmet, the verdict is inconclusive.
    `paper` maps a dataset to the paper's Δ (A − B) on it, where the paper reports one. `section`: the
    results/run_tables.sh section that runs both sides, where it is not the one their dataset and variants
    say (see `SECTION_SPECS`)."""

    a: str
    op: str
    b: str | float
    datasets: tuple[str, ...]
    metric: str = "auc"
    b_metric: Optional[str] = None
    margin: float = 0.0
    paper: dict[str, float] = field(default_factory=dict)
    note: str = ""
    section: str = ""
    ref: str = ""
    b_ref: str = ""
    requires: Optional[tuple[str, str, float]] = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"check {self.a} {self.op} {self.b}: op must be one of {OPS}")
        if self.ref and (self.metric not in PAIR_METRICS or self.constant == bool(self.b_ref)):
            raise ValueError(f"check {self.a} {self.op} {self.b}: with ref, the metric is one of "
                             f"{sorted(PAIR_METRICS)} and B a number or a spec with its own b_ref")
        if self.b_ref and not self.ref:
            raise ValueError(f"check {self.a} {self.op} {self.b}: b_ref needs ref")
        if self.requires and (self.requires[0] not in METRICS or self.requires[1] not in (">=", "<=")):
            raise ValueError(f"check {self.a} {self.op} {self.b}: requires is (metric, '>=' or '<=', value)")
        for m in () if self.ref else (self.metric, self.b_metric or self.metric):
            if m not in METRICS:
                raise ValueError(f"check {self.a} {self.op} {self.b}: unknown metric {m!r}")
        if self.op in (">=", "<=", "==") and self.margin <= 0:
            raise ValueError(f"check {self.a} {self.op} {self.b}: op {self.op} needs a margin > 0")
        if self.constant and self.b_metric is not None:
            raise ValueError(f"check {self.a} {self.op} {self.b}: a number has no metric (b_metric)")

    @property
    def constant(self) -> bool:
        """True when side B is a number, not a method."""
        return isinstance(self.b, (int, float))

    @property
    def specs(self) -> tuple[str, ...]:
        """The method specs the check reads records of (A, its ref, and B and its b_ref unless B is a number)."""
        return tuple(s for s in (self.a, self.ref, "" if self.constant else str(self.b), self.b_ref) if s)


@dataclass(frozen=True)
class Claim:
    """One headline claim of a paper: where (table/figure), what, the paper's numbers, and its leanrec
    counterpart (`checks`), or `untestable`: why there is none."""

    id: str
    paper: str
    where: str
    text: str
    numbers: str
    checks: tuple[Check, ...] = ()
    untestable: Optional[str] = None

    def __post_init__(self) -> None:
        if bool(self.checks) == bool(self.untestable):
            raise ValueError(f"claim {self.id}: give either checks or the reason it is untestable (not both)")


@dataclass(frozen=True)
class Curve:
    """A sweep or scaling curve drawn next to a claim (the papers' "curves only" figures): on `dataset`, each
    series' test AUC (mean ± std over seeds) against x. A point is (x, method spec); with `x_metric` the x of a
    point is that metric's mean over the point's records instead (e.g. backbone parameters). `reference`:
    (label, spec) drawn as a horizontal line with its ±std band (e.g. the unpruned backbone)."""

    claim: str
    dataset: str
    title: str
    x_label: str
    series: tuple[tuple[str, tuple[tuple[float, str], ...]], ...]
    reference: tuple[tuple[str, str], ...] = ()
    x_metric: Optional[str] = None
    log_x: bool = False

    def specs(self) -> list[str]:
        return [spec for _, points in self.series for _, spec in points] + [spec for _, spec in self.reference]


# ---- datasets: how to rerun, which run_tables.sh section made the records -----------------------------------
SEEDS, MAX_EPOCHS = 5, 10   # what results/run_tables.sh runs (unless a dataset says otherwise)


@dataclass(frozen=True)
class DatasetRun:
    args: str               # `leanrec run` arguments naming the data
    section: str            # results/run_tables.sh section that runs this dataset's tables
    max_batch_size: Optional[int] = None
    seeds: int = SEEDS
    max_epochs: int = MAX_EPOCHS


SYNTHETIC_1M = "synthetic[n_fields=30,n_rows=1000000]"   # the ground-truth study's log (run_tables.sh truth)
SYNTHETIC_5M = "synthetic[n_fields=30,n_rows=5000000]"   # the same generator, 5x the rows (SSR's scaling, S15)
# 1M rows whose signal is mostly a fixed random network over the informative fields (synthetic.teacher_width):
# room below the ceiling where the additive log has little (S15, S18)
SYNTHETIC_TEACHER = "synthetic[effect=0.3,n_fields=30,n_rows=1000000,teacher_width=128]"
SYNTHETIC_TEACHER_5M = "synthetic[effect=0.3,n_fields=30,n_rows=5000000,teacher_width=128]"   # 5x its rows


DATASETS: dict[str, DatasetRun] = {
    "criteo": DatasetRun("-d criteo", "criteo", 256),
    "avazu": DatasetRun("-d avazu", "avazu", 256),
    "movielens-100k": DatasetRun("-d movielens-100k", "movielens"),
    "frappe": DatasetRun("-d frappe", "frappe"),
    "criteo[cross_fields=true]": DatasetRun("-d criteo --data cross_fields=true", "fg-criteo", 256),
    "avazu[cross_fields=true]": DatasetRun("-d avazu --data cross_fields=true", "fg-rest", 256),
    "movielens-100k[cross_fields=true]": DatasetRun("-d movielens-100k --data cross_fields=true", "fg-rest"),
    "frappe[cross_fields=true]": DatasetRun("-d frappe --data cross_fields=true", "fg"),
    SYNTHETIC_1M: DatasetRun("-d synthetic --data synthetic.n_rows=1000000 --data synthetic.n_fields=30", "ssr-scale",
                             seeds=3, max_epochs=1),
    SYNTHETIC_5M: DatasetRun("-d synthetic --data synthetic.n_rows=5000000 --data synthetic.n_fields=30",
                             "ssr-scale-5m", seeds=3, max_epochs=1),
    SYNTHETIC_TEACHER: DatasetRun("-d synthetic --data synthetic.n_rows=1000000 --data synthetic.n_fields=30 "
                                  "--data synthetic.teacher_width=128 --data synthetic.effect=0.3",
                                  "ssr-scale-teacher", seeds=3, max_epochs=1),
    SYNTHETIC_TEACHER_5M: DatasetRun("-d synthetic --data synthetic.n_rows=5000000 --data synthetic.n_fields=30 "
                                     "--data synthetic.teacher_width=128 --data synthetic.effect=0.3",
                                     "ssr-scale-teacher-5m", seeds=3, max_epochs=1),
}
# variants that results/run_tables.sh runs in a section other than their dataset's: section -> dataset -> the
# `-m` specs as that section passes them (canonicalised when first looked up, see `section_of`)
_SSR_D_PAPER = ("ssr-d:filter=none", "ssr-d:filter=topk", "ssr-d:ics_alpha=0.01", "ssr-d:ics_alpha=0.5",
                "ssr-d:ics_gamma=false", "ssr-d:ics_iters=1", "ssr-d:ics_iters=2")
_SELECTORS_ADDED = ("adafs", "autofield", "lasso", "mvfs", "optfs", "pca")
# REACTION's DTF without the fusion losses (R4's and R11's controls): its 2 towers, and cohorts of 3 and 4
DTF_CONTROL = "reaction-dtf:alpha=0,beta=0,gamma=0"
DTF_CONTROL_3 = f"{DTF_CONTROL},towers=[[80,80,80],[240],[120,120,120]]"
DTF_CONTROL_4 = f"{DTF_CONTROL},towers=[[80,80,80],[240],[120,120,120],[60,60,60]]"
# REACTION's Fig. 1(c) sweep: shares of the DNN's dense-layer weights kept by magnitude pruning (R14's curve)
DENSE_KEEP = (0.05, 0.1, 0.2, 0.5)
# REACTION Table 4's rivals of AFE: each selector keeps AFE's share of fields (0.75) and retrains the same
# baseline tower (REACTION's, embedding 16)
AFE_RIVALS = tuple(f"{sel}:backbone=reaction-baseline,embedding_dim=16,keep_ratio=0.75"
                   for sel in ("lasso", "pca", "autofield"))
# S18's rivals of SSR-S on the 1M-row log at SSR-S's backbone sizes (b = 2, 4, 8, 16: 0.27M-2.1M parameters):
# RankMixer by its token width (8 tokens, 2 layers: 0.32M-2.17M), Wukong by the width of its FMB MLP and of its
# 3-layer top MLP (0.30M-2.13M); SSR's embedding dim 16 throughout
RANKMIXER_WIDTHS, WUKONG_WIDTHS = (48, 64, 96, 128), (128, 192, 400, 640)


def rankmixer_matched(width: int) -> str:
    """RankMixer with 8 tokens of `width` (2 layers), SSR's embedding dim (S18)."""
    return f"rankmixer:embedding_dim=16,token_dim={width}"


def wukong_matched(width: int) -> str:
    """Wukong with its FMB MLP [width] and top MLP [width] x 3, SSR's embedding dim (S18)."""
    return f"wukong:embedding_dim=16,fmb_hidden=[{width}],hidden=[{width},{width},{width}]"


SECTION_SPECS: dict[str, dict[str, tuple[str, ...]]] = {
    **{section: {log: (*map(rankmixer_matched, RANKMIXER_WIDTHS), *map(wukong_matched, WUKONG_WIDTHS))}
       for section, log in (("ssr-scale-rivals", SYNTHETIC_1M), ("ssr-scale-rivals-teacher", SYNTHETIC_TEACHER))},
    "ssr-views": {SYNTHETIC_1M: ("ssr-d:b=8,d_v=64",)},
    "ssr-scaling": {d: ("ssr-s:b=1", "ssr-s:b=2", "ssr-s:b=4", "ssr-s:b=8") for d in ("criteo", "avazu")},
    "criteo-extra": {"criteo": ("ssr-d", "irazor:backbone=deepfm", "irazor:backbone=ipnn", "irazor:backbone=xdeepfm")},
    "afe-options": {"criteo": ("reaction:estimator=shuffle,lookahead=true",
                               "reaction-afe:estimator=shuffle,lookahead=true")},
    "claims-criteo": {"criteo": (
        "dnn:embedding_dim=30", "dnn:hidden=[1024,1024,1024]", "irazor:candidates=[0,1,3,6,10,15,21,28]",
        "irazor:candidates=[0,4,8,12,16,20,24,28]", "lightfmp-wide-deep:weight_transfer=false",
        "lightfmp-xdeepfm:pretrain_rows=4000", "lightfmp-xdeepfm:pretrain_rows=500", "lightfmp-xdeepfm:prune_ratio=0.0",
        "lightfmp-xdeepfm:prune_ratio=0.25", "lightfmp-xdeepfm:prune_ratio=0.75", "reaction-afe:keep_ratio=0.5",
        "reaction-dtf:towers=[[80,80,80],[240],[120,120,120],[60,60,60]]",
        "reaction-dtf:towers=[[80,80,80],[240],[120,120,120]]", "ssr-d:b=1", *_SSR_D_PAPER, "ssr-s:filter=dropout")},
    "claims-avazu": {"avazu": (
        "irazor:backbone=deepfm", "irazor:backbone=ipnn", "irazor:backbone=xdeepfm", "dnn:embedding_dim=30",
        "dnn:hidden=[1024,1024,1024]", "irazor:candidates=[0,1,3,6,10,15,21,28]",
        "irazor:candidates=[0,4,8,12,16,20,24,28]", "lightfmp-wide-deep:weight_transfer=false",
        "reaction-afe:keep_ratio=0.5", "reaction-dtf:towers=[[80,80,80],[240],[120,120,120],[60,60,60]]",
        "reaction-dtf:towers=[[80,80,80],[240],[120,120,120]]", "ssr-d:b=1", "ssr-d:b=8,d_v=64",
        "ssr-s:filter=dropout", "fwfm", "wide-deep", "ipnn", "xdeepfm", "dcnv2", "autoint-plus", "fibinet",
        "finalmlp", "wukong", "rankmixer", "reaction-er", "reaction-kd", "reaction-dtf",
        "reaction-dtf:alpha=0,beta=0,gamma=0", "reaction-afe", "lightfmp-wide-deep", "lightfmp-ipnn",
        "lightfmp-xdeepfm", "lightfmp:weight_transfer=false", *_SELECTORS_ADDED),
        "avazu[cross_fields=true]": ("irazor:zero_dim=false", "irazor-argmax:zero_dim=false", "irazor:cpt=0.1",
                                     "irazor:cpt=0.5", "irazor:reg_lambda=0.01")},
    "claims-movielens": {"movielens-100k": (
        "dnn:embedding_dim=30", "lightfmp-wide-deep:weight_transfer=false", "lightfmp-xdeepfm:prune_ratio=0.0",
        "lightfmp-xdeepfm:prune_ratio=0.25", "lightfmp-xdeepfm:prune_ratio=0.75", "reaction-afe:keep_ratio=0.5",
        *_SELECTORS_ADDED)},
    "claims-ssr-d": {"avazu": ("ssr-d", *_SSR_D_PAPER), "frappe": ("ssr-d",), "movielens-100k": ("ssr-d",)},
    "claims-afe": {d: AFE_RIVALS for d in ("criteo", "avazu", "movielens-100k", "frappe")},
    "claims-dense": {**{d: tuple(f"magprune:keep={k}" for k in DENSE_KEEP) for d in ("criteo", "avazu")},
                     **{d: ("magprune:keep=0.1", "magprune:keep=0.2") for d in ("movielens-100k", "frappe")}},
    "claims-transfer": {d: tuple(f"irazor-transfer:backbone={bb}" for bb in ("deepfm", "xdeepfm", "ipnn"))
                        for d in ("criteo", "avazu")},
    "claims-irazor-fde": {"avazu": ("irazor-fde",), "criteo": ("irazor-fde",),
                          "avazu[cross_fields=true]": ("irazor-fde",), "criteo[cross_fields=true]": ("irazor-fde",)},
    "claims-dtf-control": {"criteo": (DTF_CONTROL_3, DTF_CONTROL_4),
                           "avazu": (DTF_CONTROL, DTF_CONTROL_3, DTF_CONTROL_4)},
    "claims-fg": {"criteo[cross_fields=true]": ("irazor:zero_dim=false", "irazor-argmax:zero_dim=false"),
                  "movielens-100k[cross_fields=true]": ("irazor:cpt=0.1", "irazor:cpt=0.5", "irazor:reg_lambda=0.01")},
}
_SECTION_OF: dict[tuple[str, str], str] = {}


def section_of(dataset: str, variant: str) -> str:
    """The results/run_tables.sh section that runs `variant` (canonical) on `dataset`."""
    if not _SECTION_OF:
        _SECTION_OF.update({(d, canonical_variant(spec)): section for section, by_dataset in SECTION_SPECS.items()
                            for d, specs in by_dataset.items() for spec in specs})
    found = _SECTION_OF.get((dataset, variant))
    return found or (DATASETS[dataset].section if dataset in DATASETS else "?")


def run_command(dataset: str, specs: Iterable[str]) -> str:
    """The `leanrec run` line that (re)produces a check's records, as results/run_tables.sh runs it."""
    d = DATASETS.get(dataset) or DatasetRun(f"-d {dataset}", "?")
    ms = " ".join(f"-m '{s}'" if any(c in s for c in "[],") else f"-m {s}" for s in dict.fromkeys(specs))
    bs = f" --max-batch-size {d.max_batch_size}" if d.max_batch_size else ""
    return f"leanrec run {d.args} {ms} --seeds {d.seeds} --max-epochs {d.max_epochs}{bs} --results-dir results"


# ---- measuring ----------------------------------------------------------------------------------------------
@dataclass
class Side:
    variant: str
    metric: str
    values: dict[int, float]           # seed -> metric value (ok records only)
    auc_ci95: tuple[float, float] | None = None  # mean DeLong interval over the seeds used


@dataclass
class Measured:
    """One check on one dataset, measured."""

    claim: Claim
    check: Check
    dataset: str
    a_variant: str
    b_variant: str
    verdict: str
    reason: str = ""
    ref_variant: str = ""              # the variant of A's reference run (checks with `ref`)
    b_ref_variant: str = ""            # the variant of B's reference run (checks with `b_ref`)
    protocol: Optional[int] = None
    seeds: list[int] = field(default_factory=list)
    a: Optional[Side] = None
    b: Optional[Side] = None
    delta: float = math.nan            # mean of A − B over shared seeds
    ci: tuple[float, float] = (math.nan, math.nan)
    p: float = math.nan
    sections: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)   # specs of sides with no records at all on this dataset

    @property
    def command(self) -> str:
        return run_command(self.dataset, self.check.specs)


def _stats(x: list[float], y: list[float]) -> tuple[float, tuple[float, float]]:
    """Mean of x − y and its paired-t 95% interval (a point when the differences do not vary)."""
    d = np.subtract(x, y)
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if len(d) > 1 else 0.0
    if len(d) < 2 or sd == 0.0:
        return mean, (mean, mean)
    half = float(sps.t.ppf(1 - ALPHA / 2, len(d) - 1)) * sd / math.sqrt(len(d))
    return mean, (mean - half, mean + half)


def verdict_of(op: str, margin: float, delta: float, ci: tuple[float, float], p: float, n: int) -> tuple[str, str]:
    """The verdict of one check from its paired statistics (the rule in this module's docstring)."""
    if n < MIN_SEEDS:
        return INCONCLUSIVE, f"{n} shared seed(s), fewer than {MIN_SEEDS}"
    lo, hi = ci
    if op in (">", "<"):
        sign = 1 if op == ">" else -1
        if not p < ALPHA:
            return INCONCLUSIVE, "within noise"
        return (REPRODUCED, "") if sign * delta > 0 else (CONTRADICTED, "opposite direction, p < 0.05")
    if op in (">=", "<="):
        # oriented so that larger is what the paper claims: A >= B - m  <=>  Δ >= -m ; A <= B + m  <=>  -Δ >= -m
        olo, ohi = (lo, hi) if op == ">=" else (-hi, -lo)
        if olo > -margin:
            return REPRODUCED, ""
        if ohi < -margin:
            return CONTRADICTED, f"worse by more than {margin:g}"
        return INCONCLUSIVE, f"interval crosses the margin {margin:g}"
    if -margin < lo and hi < margin:
        return REPRODUCED, ""
    if lo > margin or hi < -margin:
        return CONTRADICTED, f"differs by more than {margin:g}"
    return INCONCLUSIVE, f"interval crosses ±{margin:g}"


class Records:
    """The records of a results directory, grouped by (table, variant) like the leaderboard."""

    def __init__(self, records: Iterable[dict[str, Any]]):
        self.ok: dict[tuple[str, str], list[dict]] = defaultdict(list)
        self.protocols: dict[tuple[str, str], set[int]] = defaultdict(set)
        for r in records:
            if r["status"] == "ok":
                proto = r.get("protocol", 1)
                self.ok[(table_name(r["dataset"], proto), r["variant"])].append(r)
                self.protocols[(r["dataset"], r["variant"])].add(proto)

    def protocol_for(self, dataset: str, variants: Iterable[str]) -> Optional[int]:
        """The protocol whose records to use: the current one when every variant has records of it, else the
        newest older protocol where all do; None when some variant has none in common with the others."""
        common: Optional[set[int]] = None
        for v in variants:
            have = self.protocols.get((dataset, v), set())
            common = have if common is None else common & have
        if not common:
            return None
        return PROTOCOL_VERSION if PROTOCOL_VERSION in common else max(common)

    def side(self, dataset: str, protocol: int, variant: str, metric: str) -> Side:
        recs = self.ok[(table_name(dataset, protocol), variant)]
        values = {r["seed"]: float(v) for r in recs if (v := metric_value(metric, r)) is not None}
        cis = [r["metrics"]["auc_ci95"] for r in recs if metric == "auc" and r["metrics"].get("auc_ci95")]
        ci = (float(np.mean([c[0] for c in cis])), float(np.mean([c[1] for c in cis]))) if cis else None
        return Side(variant, metric, values, ci)

    def pair_side(self, dataset: str, protocol: int, variant: str, ref: str, metric: str) -> Side:
        """A side whose value on a seed is `metric` of that seed's `variant` record against its `ref` record."""
        refs = {r["seed"]: r for r in self.ok[(table_name(dataset, protocol), ref)]}
        values = {r["seed"]: float(v) for r in self.ok[(table_name(dataset, protocol), variant)]
                  if r["seed"] in refs and (v := pair_metric_value(metric, r, refs[r["seed"]])) is not None}
        return Side(variant, metric, values)


def canonical_variant(spec: str) -> str:
    """The variant name `leanrec run -m SPEC` writes records under (defaults dropped, values coerced)."""
    from leanrec.runner import parse_method

    return parse_method(spec).canonical().variant


def measure_check(claim: Claim, check: Check, dataset: str, recs: Records,
                  variant: Callable[[str], str] = canonical_variant) -> Measured:
    """Measure one check on one dataset from the records."""
    sides = {variant(spec): spec for spec in check.specs}
    va = variant(check.a)
    vb = f"{check.b:g}" if check.constant else variant(str(check.b))
    m = Measured(claim, check, dataset, va, vb, NOT_RUN, ref_variant=variant(check.ref) if check.ref else "",
                 b_ref_variant=variant(check.b_ref) if check.b_ref else "")
    m.sections = [check.section] if check.section else sorted({section_of(dataset, v) for v in sides})
    proto = recs.protocol_for(dataset, sides)
    if proto is None:
        missing = {v: spec for v, spec in sides.items() if not recs.protocols.get((dataset, v))}
        m.missing = list(missing.values())
        m.reason = ("no records of " + ", ".join(f"`{v}`" for v in missing)) if missing else \
            "the two sides have records of different protocols only"
        return m
    m.protocol = proto
    m.a = (recs.pair_side(dataset, proto, va, m.ref_variant, check.metric) if check.ref
           else recs.side(dataset, proto, va, check.metric))
    if check.constant:
        m.b = Side(vb, check.metric, {s: float(check.b) for s in m.a.values})
    elif check.b_ref:
        m.b = recs.pair_side(dataset, proto, vb, m.b_ref_variant, check.metric)
    else:
        m.b = recs.side(dataset, proto, vb, check.b_metric or check.metric)
    m.seeds = sorted(set(m.a.values) & set(m.b.values))
    if not m.seeds:
        m.verdict, m.reason = NOT_RUN, "no shared seeds with a value of the metric"
        return m
    x = [m.a.values[s] for s in m.seeds]
    y = [m.b.values[s] for s in m.seeds]
    m.delta, m.ci = _stats(x, y)
    m.p = differences_p_value(np.subtract(x, y))   # the paired t-test on the shared seeds (leaderboard's rule)
    m.verdict, m.reason = verdict_of(check.op, check.margin, m.delta, m.ci, m.p, len(m.seeds))
    if check.requires and m.verdict in (REPRODUCED, CONTRADICTED):
        metric, op, bound = check.requires
        got = recs.side(dataset, proto, va, metric).values
        have = [got[s] for s in m.seeds if s in got]
        mean = float(np.mean(have)) if have else math.nan
        if not (mean >= bound if op == ">=" else mean <= bound):   # nan (not recorded) fails too
            m.verdict, m.reason = INCONCLUSIVE, (f"would be {m.verdict}, but cannot test the claim here: "
                                                 f"{METRICS[metric].label} is {_num(mean, 'ratio')}, "
                                                 f"needs {op} {bound:g}")
    return m


def claim_verdict(claim: Claim, measured: list[Measured]) -> tuple[str, str]:
    """The verdict of a claim from its checks' verdicts (rule in the module docstring) and a count summary."""
    if claim.untestable:
        return NOT_TESTABLE, claim.untestable
    run = [m for m in measured if m.verdict != NOT_RUN]
    counts = {v: sum(m.verdict == v for m in measured) for v in (REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_RUN)}
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n) + f" (of {len(measured)} checks)"
    if not run:
        return NOT_RUN, summary
    if counts[REPRODUCED] == len(run):
        return REPRODUCED, summary
    if counts[CONTRADICTED] and not counts[REPRODUCED]:
        return CONTRADICTED, summary
    return INCONCLUSIVE, summary


def measure_all(claims: Iterable[Claim], records: "Records | Iterable[dict[str, Any]]",
                variant: Callable[[str], str] = canonical_variant) -> list[tuple[Claim, str, str, list[Measured]]]:
    """Every claim with its verdict, summary and measured checks (`records`: run records, or them grouped)."""
    recs = records if isinstance(records, Records) else Records(records)
    cached = functools.lru_cache(maxsize=None)(variant)
    out = []
    for c in claims:
        ms = [measure_check(c, chk, d, recs, cached) for chk in c.checks for d in chk.datasets]
        out.append((c, *claim_verdict(c, ms), ms))
    return out


# ---- curves ---------------------------------------------------------------------------------------------------
@dataclass
class CurvePoint:
    x: float
    variant: str
    mean: float
    std: float
    seeds: int


def curve_points(curve: Curve, recs: "Records", variant: Callable[[str], str] = canonical_variant
                 ) -> tuple[Optional[int], dict[str, list[CurvePoint]], dict[str, CurvePoint]]:
    """The protocol used and each series' points (and each reference) of `curve` from the records: test AUC mean
    and std over a variant's seeds, in the newest protocol at least two of its variants have records of;
    variants without records of it are left out (a curve never mixes protocols)."""
    have = [recs.protocols.get((curve.dataset, v), set()) for v in dict.fromkeys(map(variant, curve.specs()))]
    shared = [p for p in set().union(*have) if sum(p in h for h in have) >= 2]
    if not shared:
        return None, {}, {}
    proto = max(shared)

    def point(x: float, spec: str) -> Optional[CurvePoint]:
        v = variant(spec)
        if proto not in recs.protocols.get((curve.dataset, v), set()):
            return None
        auc = list(recs.side(curve.dataset, proto, v, "auc").values.values())
        if curve.x_metric is not None:
            xs = list(recs.side(curve.dataset, proto, v, curve.x_metric).values.values())
            x = float(np.mean(xs)) if xs else math.nan
        if not auc or math.isnan(x):
            return None
        return CurvePoint(x, v, float(np.mean(auc)), float(np.std(auc, ddof=1)) if len(auc) > 1 else 0.0, len(auc))

    series = {label: [p for x, spec in points if (p := point(x, spec)) is not None]
              for label, points in curve.series}
    refs = {label: p for label, spec in curve.reference if (p := point(math.inf, spec)) is not None}
    return proto, {k: v for k, v in series.items() if v}, refs


def curve_caption(dataset: str, series: dict[str, list[CurvePoint]], refs: dict[str, CurvePoint]) -> str:
    """The numbers of a curve's reference lines under it, and how far the curve's highest point is from each
    (on a synthetic log the ceiling says how much any model could still gain); "" without references."""
    if not refs:
        return ""
    top = max((p for points in series.values() for p in points), key=lambda p: p.mean)
    parts = [f"{label}: {p.mean:.4f} ± {p.std:.4f} ({p.seeds} seeds); the highest point, `{top.variant}` "
             f"{top.mean:.4f}, is {abs(p.mean - top.mean):.4f} {'below' if top.mean <= p.mean else 'above'} it"
             for label, p in refs.items()]
    return f"*Reference lines on {dataset}:* " + "; ".join(parts) + "."


def curve_file(curve: Curve) -> str:
    """Where CLAIMS.md links a curve (relative to its folder)."""
    return f"claims/curve_{curve.claim.lower()}_{file_slug(curve.dataset).lower()}.png"


def curve_plot(curve: Curve, proto: int, series: dict[str, list[CurvePoint]], refs: dict[str, CurvePoint],
               path: Path) -> None:
    """Draw one curve: each series' mean test AUC with ±std bars against x, references as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, points in series.items():
        points = sorted(points, key=lambda p: p.x)
        ax.errorbar([p.x for p in points], [p.mean for p in points], yerr=[p.std for p in points], fmt="o-",
                    capsize=3, ms=4, label=label)
    for i, (label, p) in enumerate(refs.items()):
        colour = f"C{len(series) + i}"
        ax.axhline(p.mean, ls="--", lw=1, color=colour, label=f"{label} ({p.mean:.4f})")
        ax.axhspan(p.mean - p.std, p.mean + p.std, color=colour, alpha=0.12)
    if curve.log_x:
        ax.set_xscale("log")
    seeds = sorted({p.seeds for pts in series.values() for p in pts} | {p.seeds for p in refs.values()})
    ax.set_xlabel(curve.x_label, fontsize=8)
    ax.set_ylabel(f"test AUC, mean ± std over seeds ({'/'.join(map(str, seeds))})", fontsize=8)
    head = textwrap.fill(f"{curve.claim} on {curve.dataset} (protocol {proto})", 80)   # long dataset labels wrap
    ax.set_title(f"{head}\n{curve.title}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write_bytes(path, png_bytes(fig, dpi=PLOT_DPI, metadata={"Software": None}))


# ---- heatmaps -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Heatmap:
    """Matrices a method records, drawn as heatmaps next to a claim (the papers' heatmap figures): on `dataset`,
    the mean over `spec`'s seeds (newest protocol) of each panel `panels` reads from a record, as (label,
    matrix) pairs (e.g. one matrix per layer); records without them are left out."""

    claim: str
    dataset: str
    spec: str
    title: str
    panels: Callable[[dict], list[tuple[str, list[list[float]]]]]

    def read(self, record: dict) -> Optional[list[tuple[str, np.ndarray]]]:
        """`record`'s panels, or None when it does not have them."""
        try:
            return [(label, np.asarray(m, dtype=float)) for label, m in self.panels(record)]
        except (KeyError, TypeError, IndexError):
            return None


def heatmap_panels(heatmap: Heatmap, recs: "Records", variant: Callable[[str], str] = canonical_variant
                   ) -> tuple[Optional[int], list[tuple[str, np.ndarray]], int]:
    """(protocol, each panel's mean matrix over the seeds that have it, number of seeds) from the records."""
    v = variant(heatmap.spec)
    protos = recs.protocols.get((heatmap.dataset, v))
    if not protos:
        return None, [], 0
    proto = max(protos)
    runs = [p for r in recs.ok[(table_name(heatmap.dataset, proto), v)] if (p := heatmap.read(r))]
    if not runs:
        return None, [], 0
    labels = [label for label, _ in runs[0]]
    return proto, [(label, np.mean([run[i][1] for run in runs], axis=0)) for i, label in enumerate(labels)], len(runs)


def heatmap_file(heatmap: Heatmap) -> str:
    """Where CLAIMS.md links a heatmap (relative to its folder)."""
    return f"claims/heatmap_{heatmap.claim.lower()}_{file_slug(heatmap.dataset).lower()}_{file_slug(heatmap.spec)}.png"


def heatmap_plot(heatmap: Heatmap, proto: int, panels: list[tuple[str, np.ndarray]], seeds: int, path: Path) -> None:
    """One heatmap per panel, side by side, on a shared colour scale from -1 to 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels) + 0.8, 3.4), squeeze=False)
    image = None
    for ax, (label, matrix) in zip(axes[0], panels):
        image = ax.imshow(matrix, vmin=-1.0, vmax=1.0, cmap="RdBu_r")
        off = matrix[~np.eye(len(matrix), dtype=bool)] if len(matrix) > 1 else np.zeros(1)
        ax.set_title(f"{label}\nmean |off-diagonal| {np.abs(off).mean():.3f}", fontsize=8)
        ax.tick_params(labelsize=6)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    fig.suptitle(f"{heatmap.claim} on {heatmap.dataset}: {heatmap.title}\n`{heatmap.spec}`, mean over {seeds} "
                 f"seed(s), protocol {proto}", fontsize=9)
    atomic_write_bytes(path, png_bytes(fig, dpi=PLOT_DPI, metadata={"Software": None}))


# ---- rendering ----------------------------------------------------------------------------------------------
def _num(x: float, fmt: str, signed: bool = False) -> str:
    if x is None or math.isnan(x):
        return "-"
    s = "+" if signed and x > 0 else ""
    if fmt == "auc":
        return f"{s}{x:.4f}"
    if fmt == "ratio":
        return f"{s}{x:.3f}"
    if fmt == "s":
        return f"{s}{x:.3g}"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{s}{x / scale:.2f}{unit}"
    return f"{s}{x:.0f}"


def _mean_std(side: Optional[Side], seeds: list[int], fmt: str) -> str:
    if side is None or not seeds:
        return "-"
    v = [side.values[s] for s in seeds]
    sd = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return f"{_num(float(np.mean(v)), fmt)} ± {_num(sd, fmt)}"


def relation(check: Check, a: str, b: str, ref: str = "", b_ref: str = "") -> str:
    """'`a` > `b` (test AUC)' in words for the table (`ref`, `b_ref`: the variants of a pair metric's reference
    runs)."""
    ma, mb = check.metric, check.b_metric or check.metric
    op = {">": ">", "<": "<", ">=": "≥", "<=": "≤", "==": "="}[check.op]
    tail = {">=": f" − {check.margin:g}", "<=": f" + {check.margin:g}", "==": f" ± {check.margin:g}"}.get(check.op, "")
    if check.ref:
        right = f"{ma}(`{b}`, `{b_ref}`)" if check.b_ref else b
        return f"{ma}(`{a}`, `{ref}`) {op} {right}{tail} ({PAIR_METRICS[ma].label})"
    left = f"`{a}`" + (f" {ma}" if mb != ma else "")
    right = b if check.constant else f"`{b}`" + (f" {mb}" if mb != ma else "")
    what = METRICS[ma].label if mb == ma else ""
    return f"{left} {op} {right}{tail}" + (f" ({what})" if what else "")


def paper_delta_position(paper: float, ci: tuple[float, float]) -> str:
    """Where the paper's Δ lies against a measured 95% interval: 'in CI', 'above CI' or 'below CI'."""
    lo, hi = ci
    return "above CI" if paper > hi else "below CI" if paper < lo else "in CI"


def can_place_paper_delta(m: "Measured") -> bool:
    """Whether a check's interval can place the paper's Δ: at least MIN_SEEDS seeds and an interval of some
    width (one seed, or a deterministic metric such as a parameter count, gives a point that places nothing)."""
    return len(m.seeds) >= MIN_SEEDS and not math.isnan(m.ci[0]) and m.ci[1] > m.ci[0]


def _paper_delta(paper: Optional[float], m: "Measured", fmt: str) -> str:
    if paper is None:
        return "-"
    if not can_place_paper_delta(m):
        return _num(paper, fmt, True)
    return f"{_num(paper, fmt, True)} ({paper_delta_position(paper, m.ci)})"


def _p(p: float) -> str:
    return "-" if math.isnan(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def _anchor(claim_id: str) -> str:
    return claim_id.lower()


def render(results: list[tuple[Claim, str, str, list[Measured]]], plots: dict[str, str],
           curves: Optional[dict[str, list[tuple[Curve | Heatmap, str, str]]]] = None) -> str:
    """CLAIMS.md's text; `plots`: a forest plot per paper, `curves`: (curve or heatmap, link, caption) per claim id."""
    from leanrec import claims_registry as reg

    out = ["# The four papers' claims, measured by leanrec", "",
           "Generated by `leanrec claims --results-dir results --out results/CLAIMS.md` (run by "
           "`results/run_tables.sh tables`) from the run records under `results/runs/` only; do not edit by hand. "
           "A test (`tests/test_claims.py`) regenerates it and compares.", "",
           "Each claim is one statement of a paper (abstract, main comparison tables, ablation tables, the figures "
           "their text relies on). Its leanrec counterpart is a set of **checks**: on one dataset, side A against "
           "side B on one metric, in the direction the paper claims. leanrec's datasets are small samples "
           "(Criteo and Avazu: first 10K rows; MovieLens-100K; Frappe 57K rows; the `[cross_fields=true]` versions "
           "add every pairwise cross field, the papers' FG data), not the papers' 40M-row logs: a claim about "
           "0.001 AUC on 4M test rows is often below what a ~1K-row test split resolves (see the DeLong "
           "intervals), and such a check ends **inconclusive**, not contradicted.", "",
           "## Verdict rule", ""]
    out += [VERDICT_RULE, ""]
    out += ["Columns: *seeds* = seeds both sides share; *A*, *B* = mean ± std over those seeds; *Δ (95% CI)* = mean "
            "of A − B per seed with its paired-t interval; *paper Δ* = the paper's A − B where it reports one, and "
            "where it lies against the measured interval (*in CI*: compatible with the paper's size of effect; "
            "*above* / *below CI*: the effect here differs from it beyond seed noise, whatever the verdict on its "
            f"sign; not placed with fewer than {MIN_SEEDS} seeds or a point interval); "
            "*p* = paired t-test (for a check against a number or between gains: the one-sample t-test of the "
            "per-seed Δ); *DeLong* = mean over seeds of each side's 95% DeLong interval of test AUC "
            "(records of protocol 2 on; `-` for older records); *protocol* = training protocol of the records "
            "used (docs/protocol.md; 1 = the epoch-based protocol, kept until the rerun replaces it); *rerun* = "
            "the `results/run_tables.sh` section that produced the records and the `leanrec run` line of the "
            "check.", ""]
    # summary
    out += ["## Summary", "", "| paper | claims | " + " | ".join(VERDICTS) + " | paper's Δ ruled out |",
            "|---|---|" + "---|" * (len(VERDICTS) + 1)]
    by_paper: dict[str, list] = defaultdict(list)
    for r in results:
        by_paper[r[0].paper].append(r)
    for paper, rs in by_paper.items():
        sized = [m for _, _, _, ms in rs for m in ms
                 if m.check.paper.get(m.dataset) is not None and can_place_paper_delta(m)]
        ruled_out = sum(paper_delta_position(m.check.paper[m.dataset], m.ci) != "in CI" for m in sized)
        out.append(f"| [{paper}](#{file_slug(paper).lower()}) | {len(rs)} | "
                   + " | ".join(str(sum(v == x for _, v, _, _ in rs)) for x in VERDICTS)
                   + f" | {ruled_out} of {len(sized)} checks |")
    out += ["", "*paper's Δ ruled out*: of the checks for which the paper reports a Δ and that have an interval "
            f"(at least {MIN_SEEDS} seeds, not a point), those whose 95% interval excludes it: on these samples the "
            "effect differs from the paper's beyond seed noise, in either direction (the papers ran the full logs).",
            ""]
    for paper, rs in by_paper.items():
        out += [f"## {paper}", "", reg.PAPER_TITLES.get(paper, ""), ""]
        if paper in plots:
            out += [f"![{paper}: measured Δ AUC of each check]({plots[paper]})", "",
                    "Forest plot: each check on test AUC, measured Δ (A − B) with its paired 95% interval, coloured "
                    "by verdict; × marks the paper's Δ where it reports one.", ""]
        out += ["| claim | where | verdict | checks |", "|---|---|---|---|"]
        for c, v, summ, _ in rs:
            out.append(f"| [{c.id}](#{_anchor(c.id)}) {c.text.split('. ')[0].rstrip('.')} | {c.where} | **{v}** | "
                       f"{summ if c.checks else '-'} |")
        out.append("")
        for c, v, summ, ms in rs:
            out += [f"### {c.id}", "", f"**{c.where}.** {c.text}", "", f"Paper: {c.numbers}", "",
                    f"Verdict: **{v}** — {summ}", ""]
            for curve, link, caption in (curves or {}).get(c.id, []):
                out += [f"![{c.id} on {curve.dataset}: {curve.title}]({link})", ""] + ([caption, ""] if caption else [])
            if not ms:
                continue
            out += ["| dataset | check | seeds | A | B | Δ (95% CI) | paper Δ | p | DeLong A / B | protocol | verdict "
                    "| rerun |", "|" + "---|" * 12]
            for m in ms:
                fmt = (PAIR_METRICS if m.check.ref else METRICS)[m.check.metric].fmt
                dl = "-"
                if m.a and m.b and m.a.auc_ci95 and m.b.auc_ci95:
                    dl = (f"[{m.a.auc_ci95[0]:.3f}, {m.a.auc_ci95[1]:.3f}] / "
                          f"[{m.b.auc_ci95[0]:.3f}, {m.b.auc_ci95[1]:.3f}]")
                delta = "-" if math.isnan(m.delta) else (
                    f"{_num(m.delta, fmt, True)} [{_num(m.ci[0], fmt, True)}, {_num(m.ci[1], fmt, True)}]")
                pd = m.check.paper.get(m.dataset)
                verdict = f"**{m.verdict}**" + (f" ({m.reason})" if m.reason else "")
                note = f" — {m.check.note}" if m.check.note else ""
                rerun = (f"`results/run_tables.sh {' '.join(m.sections)}`: " if m.verdict != NOT_RUN else "to run: ") + \
                    f"`{m.command}`"
                proto = "-" if m.protocol is None else (
                    str(m.protocol) if m.protocol == PROTOCOL_VERSION else f"{m.protocol} (older)")
                out.append(" | ".join([
                    f"| `{m.dataset}`",
                    relation(m.check, m.a_variant, m.b_variant, m.ref_variant, m.b_ref_variant) + note,
                    str(len(m.seeds)),
                    _mean_std(m.a, m.seeds, fmt),
                    _num(float(m.check.b), fmt) if m.check.constant else _mean_std(m.b, m.seeds, fmt), delta,
                    _paper_delta(pd, m, fmt), _p(m.p), dl,
                    proto, verdict, rerun + " |"]))
            out.append("")
    out += missing_runs(results)
    return "\n".join(out)


def missing_runs(results: list[tuple[Claim, str, str, list[Measured]]]) -> list[str]:
    """CLAIMS.md's last section: per dataset, the method variants some check needs that have no records, as one
    `leanrec run` line each (the experiments that would turn 'not run yet' into a verdict)."""
    need: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for c, _, _, ms in results:
        for m in ms:
            for spec in m.missing:
                need[m.dataset].setdefault(spec, [])
                if c.id not in need[m.dataset][spec]:
                    need[m.dataset][spec].append(c.id)
    if not need:
        return []
    out = ["## Runs that no record covers yet", "",
           "Method variants that some check needs and that have no record on that dataset (any protocol), with the "
           "claims waiting for them. One line per dataset runs them all; the results/run_tables.sh sections that "
           "run them (and resume) are named where there are some.",
           ""]
    for dataset in sorted(need):
        specs = need[dataset]
        waiting = sorted({i for ids in specs.values() for i in ids}, key=lambda i: (i[0], int(i[1:])))
        sections = sorted({section_of(dataset, canonical_variant(spec)) for spec in specs}
                          - {DATASETS[dataset].section if dataset in DATASETS else "?"})
        where = f" (`results/run_tables.sh {' '.join(sections)}`)" if sections else ""
        out += [f"* `{dataset}` ({', '.join(waiting)}): `{run_command(dataset, sorted(specs))}`{where}"]
    out.append("")
    return out


_COLOURS = {REPRODUCED: "tab:green", CONTRADICTED: "tab:red", INCONCLUSIVE: "tab:gray"}
PLOT_DPI = 110
PLOT_LIMIT = 0.05   # forest plots cut the Δ axis here (a collapsed seed can stretch an interval to ±1)


def _short(text: str, n: int = 56) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def forest_rows(measured: list[Measured]) -> list[Measured]:
    """The checks a paper's forest plot shows: those on test AUC (both sides) that have records."""
    return [m for m in measured if m.verdict != NOT_RUN and m.check.metric == "auc"
            and (m.check.b_metric or "auc") == "auc"]


def forest_plot(paper: str, rows: list[Measured], path: Path) -> None:
    """One paper's AUC checks: measured Δ with its paired 95% interval, coloured by verdict, × at the paper's Δ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ends = [abs(x) for m in rows for x in (*m.ci, m.delta, m.check.paper.get(m.dataset, 0.0))]
    lim = min(PLOT_LIMIT, 1.15 * max(ends)) or PLOT_LIMIT
    fig, ax = plt.subplots(figsize=(10, 0.28 * len(rows) + 1.4))
    for i, m in enumerate(rows):
        y = len(rows) - 1 - i
        colour = _COLOURS.get(m.verdict, "black")
        lo, mid, hi = (max(-lim, min(lim, v)) for v in (m.ci[0], m.delta, m.ci[1]))
        ax.errorbar(mid, y, xerr=[[mid - lo], [hi - mid]], fmt="o", ms=4, capsize=2, color=colour)
        for end, marker in ((m.ci[0], "<"), (m.ci[1], ">")):
            if abs(end) > lim:   # interval runs off the axis: an arrowhead at the edge
                ax.plot(math.copysign(lim, end), y, marker, color=colour, ms=6, clip_on=False)
        pd = m.check.paper.get(m.dataset)
        if pd is not None:
            ax.plot(pd, y, "x", color="black", ms=5)
    labels = [_short(f"{m.claim.id} {m.dataset}: {m.a_variant} − {m.b_variant}") for m in rows]
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels[::-1], fontsize=6)
    ax.set_xlim(-lim, lim)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel(f"Δ test AUC (A − B): mean over shared seeds with paired 95% CI; × = paper's Δ\n"
                  f"(axis cut at ±{lim:.3g}; an arrowhead at the edge: the interval runs on)", fontsize=8)
    ax.set_title(f"{paper}: claims on test AUC (green reproduced, red contradicted, grey inconclusive)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    atomic_write_bytes(path, png_bytes(fig, dpi=PLOT_DPI, metadata={"Software": None}))


def write_claims(results_dir: Path, out: Path, *, plots: bool = True,
                 claims: Optional[Iterable[Claim]] = None, curves: Optional[Iterable[Curve]] = None,
                 heatmaps: Optional[Iterable[Heatmap]] = None,
                 variant: Callable[[str], str] = canonical_variant) -> str:
    """Measure every claim from results_dir's records, write `out` (Markdown) and, with plots, one forest plot
    per paper and the registry's sweep and scaling curves and heatmaps under `<out's folder>/claims/`. Returns
    the Markdown."""
    from leanrec.claims_registry import CLAIMS

    results_dir, out = Path(results_dir), Path(out)
    if not (results_dir / "runs").is_dir():
        raise LeanrecError(f"{results_dir}: no runs/ folder with run records (run `leanrec run` first)")
    recs = Records(iter_records(results_dir))
    variant = functools.lru_cache(maxsize=None)(variant)   # specs parsed once, for the claims and the curves
    results = measure_all(CLAIMS if claims is None else claims, recs, variant)
    plot_links: dict[str, str] = {}   # linked whether or not this call draws them, so the text never depends on it
    by_paper: dict[str, list[Measured]] = defaultdict(list)
    for c, _, _, ms in results:
        by_paper[c.paper].extend(ms)
    for paper, ms in by_paper.items():
        rows = forest_rows(ms)
        if rows:
            plot_links[paper] = name = f"claims/forest_{file_slug(paper).lower()}.png"
            if plots:
                forest_plot(paper, rows, out.parent / name)
    from leanrec.claims_registry import CURVES

    # figures per claim id: (curve or heatmap, link, caption)
    curve_links: dict[str, list[tuple[Curve | Heatmap, str, str]]] = defaultdict(list)
    for curve in CURVES if curves is None else curves:
        proto, series, refs = curve_points(curve, recs, variant)
        if proto is None or sum(len(points) for points in series.values()) < 2:
            continue   # a curve needs two points; linked or not by the records alone, never by `plots`
        curve_links[curve.claim].append((curve, curve_file(curve), curve_caption(curve.dataset, series, refs)))
        if plots:
            curve_plot(curve, proto, series, refs, out.parent / curve_file(curve))
    from leanrec.claims_registry import HEATMAPS

    for heatmap in HEATMAPS if heatmaps is None else heatmaps:
        proto, panels, seeds = heatmap_panels(heatmap, recs, variant)
        if proto is None:
            continue
        curve_links[heatmap.claim].append((heatmap, heatmap_file(heatmap), ""))
        if plots:
            heatmap_plot(heatmap, proto, panels, seeds, out.parent / heatmap_file(heatmap))
    md = render(results, plot_links, curve_links)
    atomic_write_text(out, md + "\n")
    return md


def claims_command(
    results_dir: str = typer.Option("leanrec-results", "--results-dir", help="Directory holding runs/."),
    out: Optional[str] = typer.Option(None, "--out", help="Markdown file to write (default: <results-dir>/CLAIMS.md)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Forest plots under <out folder>/claims/."),
) -> None:
    """Each headline claim of the four papers, its measured counterpart from the run records, and a verdict."""
    target = Path(out) if out else Path(results_dir) / "CLAIMS.md"
    md = write_claims(Path(results_dir), target, plots=plots)
    n = md.count("\n### ")
    summary = md.split("## Summary\n", 1)[1].split("\n## ", 1)[0].strip()   # the per-paper verdict table
    typer.echo(f"{summary}\n\n{target}: {n} claims")
