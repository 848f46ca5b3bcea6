"""Feature selection against the synthetic generator's planted ground truth (issue 21).

For every method whose run records on a synthetic dataset name the fields they kept (`selection.fields`:
the selectors, REACTION's AFE, Light-FMP's gates, i-Razor's non-zero dims), compares the kept fields with the
planted roles of leanrec.data.synthetic: signal = informative ∪ interaction; redundant near-copies and noise
are not signal. Per variant (keep ratios are separate variants), mean ± std over seeds of

* precision = |kept ∩ signal| / |kept| and recall = |kept ∩ signal| / |signal|;
* how many fields of each role were kept, and the redundant fields kept next to their source (wasted slots);
* score AUC: P(score of a signal field > score of a noise field) from `selection.field_scores`, ties 1/2
  (redundant fields left out; 0.5 = chance), when the method scores fields;
* i-Razor: mean embedding dim given to signal and to noise fields;
* the record's test AUC, for context.

Plain backbone records (family "backbone", e.g. `dnn`) on the same data join as the all-fields reference.

The ground truth comes from the generator's plan for the options the records name (`data_overrides`), not from
the cache, so no data is built. Writes selection_truth.md, selection_truth.csv and one
selection_truth_<dataset>.png per dataset.

    .venv/bin/python results/selection_truth.py [RESULTS_DIR] [--dataset LABEL ...] [--out DIR]

RESULTS_DIR defaults to results/; --dataset to every synthetic dataset with records; --out to
RESULTS_DIR/tables/truth.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from leanrec.errors import LeanrecError
from leanrec.leaderboard import near_uniform_search
from leanrec.records import atomic_write_bytes, atomic_write_text, file_slug, iter_records

ROOT = Path(__file__).resolve().parent
SIGNAL_ROLES = ("informative", "interaction")
ROLES = ("informative", "interaction", "redundant", "noise")


def planted_truth(dataset: str, data_overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The ground truth of a synthetic dataset (card name `dataset`, or a label `name[...]`) under the data
    overrides a record names; LeanrecError when the card is not synthetic."""
    from leanrec.data import synthetic
    from leanrec.data.dataset import resolve_card, resolve_options

    card = resolve_card(dataset.split("[")[0])
    _, scfg = resolve_options(card, json.loads(json.dumps(data_overrides)))  # deep copy: resolve pops keys
    if scfg is None:
        raise LeanrecError(f"dataset {dataset!r} is not synthetic: it has no planted ground truth")
    return synthetic.ground_truth(scfg)


def score_auc(scores: Mapping[str, float], positives: Iterable[str], negatives: Iterable[str]) -> float:
    """P(score of a positive field > score of a negative one), ties counting 1/2 (so a method whose scores
    never moved gets 0.5); NaN when either side is empty or a field has no score."""
    pos, neg = list(positives), list(negatives)
    if not pos or not neg or any(f not in scores for f in pos + neg):
        return math.nan
    wins = sum((scores[p] > scores[n]) + 0.5 * (scores[p] == scores[n]) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def truth_metrics(selection: Mapping[str, Any], truth: Mapping[str, Any]) -> dict[str, float]:
    """Precision/recall of the kept fields against the signal roles, the count kept of each role, redundant
    fields kept together with their source, the score AUC (signal vs noise) and, when the method gave field
    dims, the mean dim of signal and noise fields (a field not kept has dim 0)."""
    kept = set(selection.get("fields") or [])
    role_of = {f: role for role in ROLES for f in truth[role]}
    unknown = sorted(kept - set(role_of))
    if unknown:
        raise LeanrecError(f"kept fields {unknown} are not fields of the synthetic dataset "
                           f"({len(role_of)} fields C1..C{len(role_of)})")
    signal = {f for role in SIGNAL_ROLES for f in truth[role]}
    hits = len(kept & signal)
    out: dict[str, float] = {
        "kept": len(kept),
        "keep_ratio": len(kept) / len(role_of),
        "precision": hits / len(kept) if kept else math.nan,
        "recall": hits / len(signal) if signal else math.nan,
        **{f"kept_{role}": len(kept & set(truth[role])) for role in ROLES},
        "wasted_redundant": sum(r in kept and s in kept for r, s in truth["redundant_of"].items()),
        "score_auc": score_auc(selection.get("field_scores") or {}, sorted(signal), truth["noise"]),
    }
    dims = selection.get("field_dims")
    for name, fields in (("dim_signal", sorted(signal)), ("dim_noise", truth["noise"])):
        out[name] = statistics.mean(dims.get(f, 0) for f in fields) if dims and fields else math.nan
    return out


@dataclass
class TruthRow:
    """One (dataset, variant): the per-seed metrics of its ok records, its failed-run count and the runs left out
    because their search ended near uniform (it did not choose: the fields it kept are not the method's)."""

    dataset: str
    variant: str
    family: str
    seeds: list[int] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    failed: int = 0
    undecided: int = 0

    def mean(self, key: str) -> float:
        vals = [m[key] for m in self.metrics if not math.isnan(m[key])]
        return statistics.mean(vals) if vals else math.nan

    def std(self, key: str) -> float:
        vals = [m[key] for m in self.metrics if not math.isnan(m[key])]
        return statistics.stdev(vals) if len(vals) > 1 else (0.0 if vals else math.nan)


COLUMNS = ("kept", "keep_ratio", "precision", "recall", "kept_informative", "kept_interaction", "kept_redundant",
           "kept_noise", "wasted_redundant", "score_auc", "dim_signal", "dim_noise", "test_auc")


def truth_rows(records: Iterable[Mapping[str, Any]], datasets: Sequence[str] = ()) -> tuple[
        list[TruthRow], dict[str, dict[str, Any]]]:
    """Rows for every variant whose records carry `selection.fields` on the synthetic `datasets` (default:
    every dataset whose card is synthetic), and each dataset's ground truth."""
    rows: dict[tuple[str, str], TruthRow] = {}
    truths: dict[str, dict[str, Any] | None] = {}
    for r in records:
        if datasets and r["dataset"] not in datasets:
            continue
        sel = r.get("selection") or {}
        ok = r.get("status") == "ok"
        backbone = r.get("family") == "backbone"
        if ok and sel.get("fields") is None and not backbone:
            continue   # a model that names no kept fields
        if r["dataset"] not in truths:
            try:
                truths[r["dataset"]] = planted_truth(r["dataset"], r.get("data_overrides") or {})
            except LeanrecError:
                if datasets:   # asked for by name: say why it has no truth
                    raise
                truths[r["dataset"]] = None   # a real dataset (or a card no longer found): no planted truth
        if truths[r["dataset"]] is None:
            continue
        variant = r["variant"] + (" (all fields)" if backbone else "")
        row = rows.setdefault((r["dataset"], variant), TruthRow(r["dataset"], variant, r.get("family", "")))
        if not ok:
            row.failed += 1
            continue
        if near_uniform_search(r):
            row.undecided += 1
            continue
        if backbone:   # the all-fields reference: every field kept at the backbone's dim
            sel = {"fields": [f for role in ROLES for f in truths[r["dataset"]][role]]}
        m = truth_metrics(sel, truths[r["dataset"]])
        m["test_auc"] = float(r["metrics"]["auc"])
        row.seeds.append(r["seed"])
        row.metrics.append(m)
    return ([rows[k] for k in sorted(rows, key=lambda k: (k[0], rows[k].family, k[1]))],
            {d: t for d, t in sorted(truths.items()) if t is not None})


def truth_csv(rows: Sequence[TruthRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["dataset", "variant", "family", "n_seeds", "failed_runs", "near_uniform_runs"]
               + [f"{c}_{s}" for c in COLUMNS for s in ("mean", "std")])
    for r in rows:
        w.writerow([r.dataset, r.variant, r.family, len(r.seeds), r.failed, r.undecided]
                   + [v for c in COLUMNS for v in (r.mean(c), r.std(c))])
    return buf.getvalue()


def _pm(row: TruthRow, key: str, digits: int = 2) -> str:
    m = row.mean(key)
    if math.isnan(m):
        return "—"
    return f"{m:.{digits}f}" if len(row.metrics) < 2 else f"{m:.{digits}f} ± {row.std(key):.{digits}f}"


def _n(row: TruthRow, key: str) -> str:
    m = row.mean(key)
    return "—" if math.isnan(m) else f"{m:.1f}"


def truth_markdown(rows: Sequence[TruthRow], truths: Mapping[str, Mapping[str, Any]]) -> str:
    out = ["# Feature selection against the planted ground truth", "",
           "Generated by `.venv/bin/python results/selection_truth.py` from the run records "
           "(`results/run_tables.sh truth`). Signal = informative ∪ interaction fields. Precision and recall of "
           "the kept fields against the signal, mean ± std over seeds; *kept* = mean fields kept of each role "
           "(inf / int / red / noise); *wasted* = redundant fields kept next to their source; *score AUC* = "
           "P(a signal field scores above a noise field), ties ½, from the method's field scores (0.5 = chance); "
           "*dims* = i-Razor's mean embedding dim on signal / noise fields; test AUC of the model each run served.",
           ""]
    for dataset, truth in truths.items():
        F = sum(len(truth[role]) for role in ROLES)
        signal = [f for role in SIGNAL_ROLES for f in truth[role]]
        oracle = TruthRow(dataset, "planted signal (oracle)", "")
        oracle.metrics.append({**truth_metrics({"fields": signal}, truth), "test_auc": math.nan})
        redundant = ", ".join(f"{r}≈{s}" for r, s in truth["redundant_of"].items())
        out += [f"## {dataset}", "",
                f"{F} fields: informative {', '.join(truth['informative'])}; interaction "
                f"{', '.join(truth['interaction']) or 'none'}; redundant {redundant or 'none'}; "
                f"{len(truth['noise'])} noise. Keeping k fields at random gives precision {len(signal) / F:.2f} "
                f"and recall k/{F}.", "",
                "| variant | family | seeds | kept (ratio) | precision | recall | kept inf / int / red / noise | "
                "wasted | score AUC | dims signal / noise | test AUC |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in [oracle] + [r for r in rows if r.dataset == dataset]:
            roles = " / ".join(_n(r, f"kept_{role}") for role in ROLES)
            dims = "—" if math.isnan(r.mean("dim_signal")) else f"{r.mean('dim_signal'):.1f} / {r.mean('dim_noise'):.1f}"
            seeds = (f"{len(r.seeds)}" + (f" ({r.failed} failed)" if r.failed else "")
                     + (f" ({r.undecided} near-uniform searches left out)" if r.undecided else "")
                     if r is not oracle else "—")
            out.append(f"| `{r.variant}` | {r.family or '—'} | {seeds} | {_n(r, 'kept')} ({r.mean('keep_ratio'):.2f}) | "
                       f"{_pm(r, 'precision')} | {_pm(r, 'recall')} | {roles} | {_n(r, 'wasted_redundant')} | "
                       f"{_pm(r, 'score_auc')} | {dims} | {_pm(r, 'test_auc', 4)} |")
        out.append("")
    return "\n".join(out)


def plot_truth(rows: Sequence[TruthRow], path: Path, title: str) -> bool:
    """Precision, recall and score AUC per variant (bars, std as error bars) beside its test AUC. False (and
    nothing written) when no row has a seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.metrics]
    if not rows:
        return False
    y = list(range(len(rows)))[::-1]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 1.5 + 0.32 * len(rows)), sharey=True,
                                  gridspec_kw={"width_ratios": [2, 1]})
    for i, (key, label) in enumerate((("precision", "precision"), ("recall", "recall"),
                                      ("score_auc", "score AUC (signal vs noise)"))):
        h = 0.27
        ax.barh([v + (1 - i) * h for v in y], [0 if math.isnan(r.mean(key)) else r.mean(key) for r in rows], h,
                xerr=[0 if math.isnan(r.std(key)) else r.std(key) for r in rows], capsize=2, label=label)
    ax.set_yticks(y, [r.variant for r in rows], fontsize=7)
    ax.set_xlim(0, 1.05)
    ax.axvline(0.5, color="grey", lw=0.5, ls=":")
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, frameon=False)
    fig.suptitle(title, fontsize=9)
    ax2.errorbar([r.mean("test_auc") for r in rows], y, xerr=[r.std("test_auc") for r in rows], fmt="o", capsize=2)
    ax2.set_xlabel("test AUC (mean ± std)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return True


def write_truth(results_dir: Path, out_dir: Path, datasets: Sequence[str] = (), plots: bool = True) -> list[Path]:
    """Read results_dir/runs, write selection_truth.{md,csv} (+ one PNG per dataset) into out_dir."""
    if not (Path(results_dir) / "runs").is_dir():
        raise LeanrecError(f"{results_dir} holds no runs/ directory: run `leanrec run` first")
    rows, truths = truth_rows(iter_records(results_dir), datasets)
    if not rows:
        raise LeanrecError(f"no selection records on {list(datasets) or 'a synthetic dataset'} under {results_dir}/runs")
    written = [out_dir / "selection_truth.md", out_dir / "selection_truth.csv"]
    atomic_write_text(written[0], truth_markdown(rows, truths))
    atomic_write_text(written[1], truth_csv(rows))
    if plots:
        for d in truths:
            path = out_dir / f"selection_truth_{file_slug(d)}.png"
            if plot_truth([r for r in rows if r.dataset == d], path, f"{d}: kept fields vs planted signal"):
                written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results_dir", nargs="?", type=Path, default=ROOT)
    p.add_argument("--dataset", action="append", default=[], help="dataset label as in the records (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="output directory (default RESULTS_DIR/tables/truth)")
    p.add_argument("--no-plots", dest="plots", action="store_false")
    a = p.parse_args(argv)
    written = write_truth(a.results_dir, a.out or a.results_dir / "tables" / "truth", a.dataset, a.plots)
    for path in written:
        print(f"wrote {path}")
    return written


if __name__ == "__main__":
    try:
        main()
    except LeanrecError as exc:
        raise SystemExit(f"error: {exc}")
