"""Leaderboard: run records -> one table per dataset (mean ± std over seeds, rank, deltas, paired t-tests,
efficiency columns), written as CSV and Markdown, plus a PNG of AUC against parameters with the Pareto front.

Records of an older training protocol (:mod:`leanrec.protocol`) are ranked in a table of their own, never
with current ones. Every row says whether it is distinguishable from the best (paired t-test over seeds, or
DeLong intervals with one seed), and every table says how small a difference its test split can resolve.
Rows are flagged when a stage trained for fewer than the protocol's minimum of steps or a search ended near
its starting point (``extra["search"]["near_uniform"]``). Rows whose config is the best of a `leanrec tune`
study under the same budget are marked tuned, with the study's trial budget and time (its side file under
``<results>/tuning/``, never part of a run's identity)."""
from __future__ import annotations

import csv
import fnmatch
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from scipy import stats as sps

from leanrec.plots import auc_vs_params, pareto_front  # noqa: F401  (pareto_front: re-exported)
from leanrec.protocol import DEFAULT_MIN_STEPS, PROTOCOL_VERSION
from leanrec.errors import LeanrecError
from leanrec.records import atomic_write_text, file_slug, iter_records

REFERENCE = "dnn"  # deltas and time ratios are against this method's row when present
ALPHA = 0.05       # significance level of "distinguishable from the best"
Z95 = 1.959963984540054


@dataclass
class Row:
    dataset: str
    variant: str
    family: str
    is_baseline: bool
    seeds: list[int]
    failed: int
    auc: list[float]
    logloss: list[float]
    gauc: list[float]
    params: float
    emb_params: float
    backbone_params: float
    flops: float
    lat1_us: float
    lat4096_us: float
    train_s: float
    fields: float
    dims: float
    backbone: str = ""           # config["backbone"] of methods built on a zoo backbone (Light-FMP, selectors, ...)
    protocol: int = PROTOCOL_VERSION
    auc_se: list[float] = field(default_factory=list)   # DeLong standard error of each run's test AUC
    test_pos: int = 0
    test_neg: int = 0
    min_stage_steps: float = math.nan  # fewest optimizer steps any training stage of any seed took
    early_best: int = 0          # runs whose kept weights come from inside the first DEFAULT_MIN_STEPS steps
    uniform_search: int = 0      # runs whose search ended near its start (extra["search"]["near_uniform"])
    tuned_trials: int = 0        # > 0: the best config of a `leanrec tune` study of this many trials per method
    tuning_s: float = math.nan   # the study's trial time (seconds, all trials)
    rank: int = 0
    tie_with_best: bool = False  # not distinguishable from the best row
    delta_auc: float = math.nan
    time_ratio: float = math.nan
    p_value: float = math.nan
    vs: str = ""
    # against the row of the method's own backbone (e.g. lightfmp-ipnn vs ipnn): the papers' "TT ratio"
    bb_delta_auc: float = math.nan
    bb_p_value: float = math.nan
    bb_time_ratio: float = math.nan

    @property
    def reference(self) -> bool:
        """A known bound, not a method (family ``reference``, e.g. a synthetic log's ``oracle``): listed, never
        ranked or compared."""
        return self.family == "reference"

    def mean(self, key: str) -> float:
        v = getattr(self, key)
        return float(np.mean(v)) if v else math.nan

    def std(self, key: str) -> float:
        v = getattr(self, key)
        return float(np.std(v, ddof=1)) if len(v) > 1 else (0.0 if v else math.nan)


def _mean(values: Iterable[float]) -> float:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else math.nan


def table_name(dataset: str, protocol: int) -> str:
    """The table a record is ranked in: its dataset, or 'dataset (protocol N)' for an older protocol."""
    return dataset if protocol == PROTOCOL_VERSION else f"{dataset} (protocol {protocol})"


def _training_facts(rec: dict[str, Any]) -> tuple[float, bool]:
    """(fewest steps of any stage, whether any stage kept weights from inside the first DEFAULT_MIN_STEPS)."""
    stages = [t for t in (rec.get("training") or {}).values() if isinstance(t, dict)]
    steps = [t.get("steps", 0) for t in stages]
    early = False
    for t in stages:
        if "best_step" in t:
            best = t["best_step"]
        else:  # protocol 1 recorded epochs: best epoch x steps per epoch
            per_epoch = t.get("steps", 0) / max(t.get("epochs_run") or 1, 1)
            best = t.get("best_epoch", 0) * per_epoch
        early |= 0 <= best < DEFAULT_MIN_STEPS
    return (min(steps) if steps else math.nan), early


def load_tuning(results_dir: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """`leanrec tune` summaries under results_dir/tuning by (dataset label, best variant)."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for path in sorted((Path(results_dir) / "tuning").glob("*/*.json")):
        try:
            summary = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LeanrecError(f"{path}: not a valid tuning summary ({exc}); delete it and rerun `leanrec tune`") from None
        if "best" in summary:
            out.setdefault((summary["dataset"], summary["best"]["variant"]), []).append(summary)
    return out


def _tuning_of(recs: list[dict[str, Any]], tuning: dict[tuple[str, str], list[dict[str, Any]]]) -> dict | None:
    """The study whose best config these records ran, under the same budget and protocol (largest first)."""
    r = recs[0]
    studies = [s for s in tuning.get((r["dataset"], r["variant"]), [])
               if s.get("budget") == r.get("budget") and s.get("protocol") == r.get("protocol")]
    return max(studies, key=lambda s: s["trials_counted"], default=None)


def near_uniform_search(rec: dict[str, Any]) -> bool:
    """Whether a record's architecture search ended near its uniform start (``extra["search"]["near_uniform"]``,
    :func:`leanrec.selection.search_diagnostics`): the search did not choose, so the fields and dims it kept are
    not the method's choice and are not reported as such."""
    return bool(((rec.get("extra") or {}).get("search") or {}).get("near_uniform"))


def build_rows(records: Iterable[dict[str, Any]],
               tuning: dict[tuple[str, str], list[dict[str, Any]]] | None = None) -> dict[str, list[Row]]:
    """Aggregate records into leaderboard rows per dataset (and protocol), ranked by mean test AUC; rows
    whose config won a study in `tuning` (:func:`load_tuning`) are marked tuned."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        groups[(table_name(r["dataset"], r.get("protocol", 1)), r["variant"])].append(r)
    tables: dict[str, list[Row]] = defaultdict(list)
    for (dataset, variant), recs in sorted(groups.items()):
        ok = sorted((r for r in recs if r["status"] == "ok"), key=lambda r: r["seed"])
        study = _tuning_of(recs, tuning or {})
        m = [r["metrics"] for r in ok]
        # a search that ended near its uniform start did not choose: its fields / dims are not the method's
        sel = [r.get("selection") or {} for r in ok if not near_uniform_search(r)]
        tables[dataset].append(Row(
            dataset=dataset, variant=variant, family=recs[0].get("family", ""),
            is_baseline=bool(recs[0].get("is_baseline")), seeds=[r["seed"] for r in ok],
            failed=len(recs) - len(ok),
            auc=[x["auc"] for x in m], logloss=[x["logloss"] for x in m],
            gauc=[x["gauc"] for x in m if "gauc" in x],
            params=_mean(x["params"]["total"] for x in m), emb_params=_mean(x["params"]["embedding"] for x in m),
            backbone_params=_mean(x["params"]["backbone"] for x in m), flops=_mean(x["flops_per_sample"] for x in m),
            lat1_us=_mean(1e6 * x["latency_s_per_sample"]["batch_1"] for x in m),
            lat4096_us=_mean(1e6 * x["latency_s_per_sample"]["batch_4096"] for x in m),
            train_s=_mean(r["total_time"] for r in ok),
            fields=_mean(len(s["fields"]) for s in sel if s.get("fields")),
            dims=_mean(sum(s["field_dims"].values()) for s in sel if s.get("field_dims")),
            backbone=str((recs[0].get("config") or {}).get("backbone") or ""),
            protocol=recs[0].get("protocol", 1),
            auc_se=[x["auc_se"] for x in m if x.get("auc_se") is not None],
            test_pos=max((x.get("test_pos", 0) for x in m), default=0),
            test_neg=max((x.get("test_neg", 0) for x in m), default=0),
            min_stage_steps=min((_training_facts(r)[0] for r in ok), default=math.nan),
            early_best=sum(_training_facts(r)[1] for r in ok),
            uniform_search=sum(near_uniform_search(r) for r in ok),
            tuned_trials=study["trials_counted"] if study else 0,
            tuning_s=study["trial_seconds"] if study else math.nan,
        ))
    for rows in tables.values():
        _annotate(rows)
    return dict(tables)


def _annotate(rows: list[Row]) -> None:
    """Rank the rows (reference rows last, unranked: rank 0) and fill in every comparison between them."""
    refs = sorted((r for r in rows if r.reference), key=lambda r: -r.mean("auc") if r.auc else math.inf)
    rows[:] = sorted((r for r in rows if not r.reference),
                     key=lambda r: (-r.mean("auc") if r.auc else math.inf, r.variant))
    for i, r in enumerate(rows, 1):
        r.rank = i
    # the plain `dnn` row, else the first dnn variant (e.g. `dnn[hidden=[128,128]]` in the quick demo)
    dnn_rows = [r for r in rows if r.auc and r.variant.split("[")[0] == REFERENCE]
    ref = next((r for r in dnn_rows if r.variant == REFERENCE), dnn_rows[0] if dnn_rows else None)
    baselines = [r for r in rows if r.is_baseline and r.auc]
    best = max(baselines, key=lambda r: r.mean("auc"), default=None)
    for r in rows:
        if ref is not None and r.auc:
            r.delta_auc = r.mean("auc") - ref.mean("auc")
            r.time_ratio = r.train_s / ref.train_s if ref.train_s else math.nan
        if best is not None and r is not best and r.auc:
            r.vs, r.p_value = best.variant, paired_p_value(best, r)
    top = rows[0] if rows and rows[0].auc else None
    for r in rows:
        r.tie_with_best = top is not None and r.auc and (r is top or not distinguishable(top, r))
    by_variant = {r.variant: r for r in rows if r.auc}
    for r in rows:
        own = by_variant.get(r.backbone)
        if own is not None and own is not r and r.auc:
            r.bb_delta_auc = r.mean("auc") - own.mean("auc")
            r.bb_p_value = paired_p_value(own, r)
            r.bb_time_ratio = r.train_s / own.train_s if own.train_s else math.nan
    for r in refs:
        if ref is not None and r.auc:
            r.delta_auc = r.mean("auc") - ref.mean("auc")
    rows.extend(refs)


def ranked(rows: Sequence[Row]) -> list[Row]:
    """The rows that are ranked (every row but the reference rows), in rank order."""
    return [r for r in rows if not r.reference]


def display_order(rows: Sequence[Row]) -> list[Row]:
    """How a table lists its rows: the reference rows (ceilings) first, then the ranked rows in rank order."""
    return [*(r for r in rows if r.reference), *ranked(rows)]


def ceiling_note(rows: Sequence[Row]) -> str:
    """What a table's reference rows say about its ranked rows: the best row's gap to each bound (paired over
    the seeds both have), as sentences, or "" when the table has no reference row."""
    top = next((r for r in ranked(rows) if r.auc), None)
    notes = []
    for c in (r for r in rows if r.reference and r.auc):
        line = (f"Ceiling `{c.variant}` (a reference row: the most a model can reach on this split): "
                f"{_fmt(c.mean('auc'))} ± {_fmt(c.std('auc'))}")
        if top is not None:
            gaps = np.subtract(*shared_seed_aucs(c, top))
            if len(gaps):
                line += (f"; #1 `{top.variant}` is {_fmt(float(np.mean(gaps)))} below it (mean over {len(gaps)} "
                         f"shared seed{'s' if len(gaps) > 1 else ''}), what is left to learn on this log")
        notes.append(line + ".")
    return " ".join(notes)


def shared_seed_aucs(a: Row, b: Row) -> tuple[list[float], list[float]]:
    """Test AUCs of rows a and b on the seeds both have, in seed order (same seed = same split and init)."""
    common = sorted(set(a.seeds) & set(b.seeds))
    return [a.auc[a.seeds.index(s)] for s in common], [b.auc[b.seeds.index(s)] for s in common]


def paired_p_value(a: Row, b: Row) -> float:
    """Two-sided paired t-test of test AUC on the seeds both rows share (same seed = same split and init)."""
    x, y = shared_seed_aucs(a, b)
    if len(x) < 2:
        return math.nan
    return differences_p_value(np.subtract(x, y))


def differences_p_value(diff: "np.ndarray | list[float]") -> float:
    """Two-sided one-sample t-test that per-seed differences have mean 0 (the paired t-test of their two
    sides); nan for fewer than 2, and 1 or 0 when they do not vary (t is then 0 or infinite)."""
    diff = np.asarray(diff, dtype=np.float64)
    if len(diff) < 2:
        return math.nan
    if np.allclose(diff, diff[0], rtol=0, atol=1e-15):
        return 1.0 if abs(diff[0]) <= 1e-15 else 0.0
    return float(sps.ttest_1samp(diff, 0.0).pvalue)


def distinguishable(a: Row, b: Row) -> bool:
    """Whether rows a and b differ beyond noise: a paired t-test over shared seeds (p < ALPHA) when there are
    two or more, else DeLong intervals of the single runs (|difference| > 1.96 x the SE of the difference,
    treating the two runs as independent: conservative for models scored on the same rows)."""
    p = paired_p_value(a, b)
    if not math.isnan(p):
        return p < ALPHA
    if a.auc_se and b.auc_se:
        se = math.sqrt(float(np.mean(a.auc_se)) ** 2 + float(np.mean(b.auc_se)) ** 2)
        return abs(a.mean("auc") - b.mean("auc")) > Z95 * se
    return True


def resolution(rows: list[Row]) -> tuple[float, float]:
    """(typical DeLong SE of one run's test AUC, smallest AUC difference one test split can resolve =
    1.96 x sqrt(2) x SE) for a table; NaN when no record has an interval."""
    se = [x for r in rows for x in r.auc_se]
    if not se:
        return math.nan, math.nan
    typical = float(np.median(se))
    return typical, Z95 * math.sqrt(2) * typical


COLUMNS = ["rank", "variant", "family", "seeds", "auc", "logloss", "gauc", "delta_auc", "p_value", "vs",
           "params", "emb_params", "backbone_params", "flops", "lat1_us", "lat4096_us", "train_s", "time_ratio",
           "fields", "dims", "backbone", "bb_delta_auc", "bb_p_value", "bb_time_ratio", "failed"]


def _fmt(x: float, digits: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _si(x: float) -> str:
    if math.isnan(x):
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:.0f}"


def to_csv(tables: dict[str, list[Row]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["dataset", "rank", "variant", "family", "n_seeds", "auc_mean", "auc_std", "logloss_mean",
                "logloss_std", "gauc_mean", "delta_auc_vs_dnn", "p_value", "vs_baseline", "params", "emb_params",
                "backbone_params", "flops_per_sample", "latency_b1_us", "latency_b4096_us_per_sample",
                "train_time_s", "train_time_ratio_vs_dnn", "fields", "total_dims", "backbone",
                "delta_auc_vs_backbone", "p_value_vs_backbone", "train_time_ratio_vs_backbone", "failed_runs",
                "protocol", "auc_se_mean", "tie_with_best", "min_stage_steps", "runs_best_inside_min_steps",
                "runs_search_near_uniform", "test_pos", "test_neg", "tuned_trials", "tuning_seconds"])
    for dataset, rows in tables.items():
        for r in rows:
            w.writerow([dataset, r.rank, r.variant, r.family, len(r.seeds), r.mean("auc"), r.std("auc"),
                        r.mean("logloss"), r.std("logloss"), r.mean("gauc"), r.delta_auc, r.p_value, r.vs,
                        r.params, r.emb_params, r.backbone_params, r.flops, r.lat1_us, r.lat4096_us, r.train_s,
                        r.time_ratio, r.fields, r.dims, r.backbone, r.bb_delta_auc, r.bb_p_value, r.bb_time_ratio,
                        r.failed, r.protocol, _mean(r.auc_se), r.tie_with_best, r.min_stage_steps, r.early_best,
                        r.uniform_search, r.test_pos, r.test_neg, r.tuned_trials, r.tuning_s])
    return buf.getvalue()


def to_markdown(tables: dict[str, list[Row]]) -> str:
    out = []
    for dataset, rows in tables.items():
        has_gauc = any(r.gauc for r in rows)
        has_own = any(not math.isnan(r.bb_delta_auc) for r in rows)
        has_sel = any(not math.isnan(r.fields) for r in rows)  # methods that keep fields / choose dims
        out.append(f"## {dataset}\n")
        se, mdd = resolution(rows)
        if rows and rows[0].protocol != PROTOCOL_VERSION:
            short = sum(1 for r in rows if r.min_stage_steps < DEFAULT_MIN_STEPS)
            out.append(f"> **Earlier protocol (version {rows[0].protocol}):** budgets counted epochs, with no "
                       f"minimum of optimizer steps; {short} of {len(rows)} rows have a stage shorter than "
                       f"{DEFAULT_MIN_STEPS} steps. Not comparable with current-protocol tables; rerun to replace.\n")
        head = ["#", "method", "AUC (mean ± std)", "logloss"] + (["gAUC"] if has_gauc else []) + [
            "Δ AUC vs dnn", "p vs best baseline", "params (emb / backbone)"] + (
            ["fields / dims"] if has_sel else []) + ["FLOPs/sample",
            "latency b1 (µs)", "latency b4096 (µs/sample)", "train s", "time × dnn"] + (
            ["Δ AUC vs own backbone (p)", "time × own backbone"] if has_own else []) + ["seeds"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for r in display_order(rows):
            cells = ["ceiling" if r.reference else str(r.rank) + (" ≈" if r.tie_with_best and r.rank > 1 else ""),
                     f"`{r.variant}`" + (" (baseline)" if r.is_baseline else "") + _flags(r),
                     f"{_fmt(r.mean('auc'))} ± {_fmt(r.std('auc'))}", _fmt(r.mean("logloss"))]
            if has_gauc:
                cells.append(_fmt(r.mean("gauc")))
            cells += [
                ("+" if r.delta_auc > 0 else "") + _fmt(r.delta_auc), _fmt(r.p_value, 3),
                f"{_si(r.params)} ({_si(r.emb_params)} / {_si(r.backbone_params)})"]
            if has_sel:
                cells.append("-" if math.isnan(r.fields) else f"{_fmt(r.fields, 1)} / {_fmt(r.dims, 1)}")
            cells += [_si(r.flops), _fmt(r.lat1_us, 1), _fmt(r.lat4096_us, 3), _fmt(r.train_s, 1),
                      _fmt(r.time_ratio, 2)]
            if has_own:
                cells += ["-" if math.isnan(r.bb_delta_auc) else
                          f"{'+' if r.bb_delta_auc > 0 else ''}{_fmt(r.bb_delta_auc)} ({_fmt(r.bb_p_value, 3)}, "
                          f"`{r.backbone}`)", _fmt(r.bb_time_ratio, 2)]
            cells.append(f"{len(r.seeds)}" + (f" ({r.failed} failed)" if r.failed else ""))
            out.append("| " + " | ".join(cells) + " |")
        ties = [r for r in rows if r.tie_with_best and r.rank > 1]
        order = ranked(rows)
        if order and order[0].auc:
            out.append(f"\n≈: not distinguishable from #1 `{order[0].variant}` (paired t-test over seeds, p ≥ {ALPHA}; "
                       f"DeLong intervals for single runs): {len(ties)} row(s).")
        ceiling = ceiling_note(rows)
        if ceiling:
            out.append(ceiling)
        if not math.isnan(mdd):
            gaps = [a.mean("auc") - b.mean("auc") for a, b in zip(order, order[1:]) if a.auc and b.auc]
            small = sum(g < mdd for g in gaps)
            out.append(f"Test split: {rows[0].test_pos:,} positives / {rows[0].test_neg:,} negatives; one run's AUC has "
                       f"a DeLong SE of about {se:.4f}, so one split cannot resolve differences below about "
                       f"{mdd:.4f} (1.96·√2·SE); {small} of {len(gaps)} gaps between neighbouring ranks are smaller."
                       + (" Averages over seeds narrow this only as far as the seeds' splits differ." if small else ""))
        tuned = [r for r in rows if r.tuned_trials]
        if tuned:
            out.append(f"✦ tuned: the best of a `leanrec tune` study (Optuna TPE on the validation split, "
                       f"{'/'.join(sorted({str(r.tuned_trials) for r in tuned}))} trials per method; the time is all "
                       "trials'), then run over its seeds like any row; a tuned config equal to the defaults is the "
                       "default row. See docs/tune.md.")
        flagged = [r for r in rows if _warnings(r)]
        if flagged:
            out.append(f"⚠ steps: a training stage ran fewer than {DEFAULT_MIN_STEPS} optimizer steps or kept weights from "
                       "inside them; ⚠ search: the architecture search ended near uniform (it did not select).")
        best = next((r.vs for r in rows if r.vs), None)
        if best:
            out.append(f"\np: two-sided paired t-test of test AUC against the best baseline `{best}` on shared seeds.")
        if has_own:
            out.append("Own backbone: the row of the backbone the method is built on (its `backbone` key) with its "
                       "registered defaults; time × own backbone is the papers' training-time (TT) ratio, wall "
                       "clock including every stage (pretraining, selection, retraining).")
        if has_sel:
            out.append("fields / dims: fields the method kept and the sum of their embedding dims (means over seeds; "
                       "'-' for methods that keep every field at the default dim).")
        out.append("FLOPs: torch's FLOP counter on the serving model (matrix products only: embedding gathers and "
                   "element-wise ops count 0). Latency: median forward time per sample. Params count only what "
                   "the serving model keeps.\n")
        out.append("")
    return "\n".join(out)


def _flags(r: Row) -> str:
    """Marks and warnings shown next to a variant's name."""
    tuned = f" ✦ tuned ({r.tuned_trials} trials, {_fmt(r.tuning_s / 60, 1)} min)" if r.tuned_trials else ""
    return tuned + _warnings(r)


def _warnings(r: Row) -> str:
    """Warnings about how a row's runs trained."""
    out = ""
    if r.min_stage_steps < DEFAULT_MIN_STEPS or r.early_best:
        out += f" ⚠ steps ({_fmt(r.min_stage_steps, 0)} min)"
    if r.uniform_search:
        out += f" ⚠ search ({r.uniform_search}/{len(r.seeds)} near uniform)"
    return out


def select_records(records: Iterable[dict[str, Any]], only: Sequence[str] = (),
                   datasets: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
    """Records whose variant matches any glob in `only` and whose dataset matches any glob in `datasets`
    (an empty filter keeps everything), e.g. only=["dnn", "lightfmp*"] for one paper's table."""
    def match(value: str, patterns: Sequence[str]) -> bool:
        # exact names first: variant names contain brackets, which globs read as character classes
        return not patterns or any(value == p or fnmatch.fnmatchcase(value, p) for p in patterns)

    for r in records:
        if match(r["variant"], only) and match(r["dataset"], datasets):
            yield r


def tuned_records(records: Iterable[dict[str, Any]],
                  tuning: dict[tuple[str, str], list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """The records of tuned configs and of the configs their studies started from (the defaults they are
    compared with), e.g. for a table of tuned against default rows."""
    from leanrec.records import variant_name

    keep = set(tuning)
    for studies in tuning.values():
        keep.update((s["dataset"], variant_name(s["method"], s.get("fixed") or {})) for s in studies)
    return (r for r in records if (r["dataset"], r["variant"]) in keep)


def write_leaderboard(results_dir: Path, out_dir: Path | None = None, *, plots: bool = True,
                      only: Sequence[str] = (), datasets: Sequence[str] = (),
                      title: str = "leanrec leaderboard", tuned: bool = False) -> tuple[dict, str]:
    """Build the leaderboard from results_dir's records (optionally filtered, see select_records; `tuned`:
    only tuned configs and their defaults, see tuned_records); write leaderboard.{csv,md} (+ PNGs) to out_dir."""
    results_dir = Path(results_dir)
    out_dir = Path(out_dir or results_dir)
    tuning = load_tuning(results_dir)
    records = select_records(iter_records(results_dir), only, datasets)
    tables = build_rows(tuned_records(records, tuning) if tuned else records, tuning)
    md = f"# {title}\n\n" + to_markdown(tables)
    atomic_write_text(out_dir / "leaderboard.csv", to_csv(tables))
    atomic_write_text(out_dir / "leaderboard.md", md)
    if plots:
        for dataset, rows in tables.items():
            auc_vs_params(rows, out_dir / f"auc_vs_params_{file_slug(dataset)}.png", f"{dataset}: AUC vs parameters")
    return tables, md
