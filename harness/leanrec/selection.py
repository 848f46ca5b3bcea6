"""The feature-selection protocol (after ERASE, Jia et al., KDD 2024: "ERASE: Benchmarking Feature Selection
Methods for Deep Recommender Systems"): a selector ranks the dataset's fields by importance, the harness
retrains a chosen backbone on the top-k fields only, and results are compared over k (keep ratios).

* :class:`SelectorMethod` -- base class of every selector plugin: implement ``rank(data, ctx)``; ``fit`` times
  the ranking as stage "select", keeps the top-k fields, retrains the backbone on them (stage "retrain") and
  returns a serving model that physically holds only the kept fields' embeddings.
* :func:`ranking_quality` / :func:`ranking_auc` -- score a ranking against a dataset's planted ground truth.
* :func:`selection_rows` / :func:`write_selection_table` -- run records -> table of AUC by keep ratio per
  selector and dataset (CSV + Markdown) and a PNG of AUC against k per dataset.
* :func:`selection_table_command` -- a typer-free function the CLI mounts as ``leanrec selection-table``.

See docs/selection.md for the protocol and every selector's reading of its paper.
"""
from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from leanrec.errors import ConfigError
from leanrec.methods import BackboneChoiceConfig, BackboneMethod, FitResult, Method, field_specs
from leanrec.records import atomic_write_bytes, atomic_write_text, file_slug, iter_records

if TYPE_CHECKING:
    from leanrec.context import RunContext
    from leanrec.data import EncodedDataset


@dataclass
class SelectorConfig(BackboneChoiceConfig):
    """Protocol settings shared by every selector.

    The training keys inherited from MethodConfig (lr, epochs, batch_size, ...) govern the selector's own
    search/pretraining; the retrain uses the backbone's config (its paper defaults + ``backbone_config``,
    with this config's ``embedding_dim``).
    """

    keep_ratio: float = 0.5      # share of fields kept (rounded, at least 1) ...
    k: int = 0                   # ... unless k > 0: keep exactly k fields

    def validate(self) -> None:
        super().validate()
        if not 0 < self.keep_ratio <= 1:
            raise ConfigError(f"keep_ratio must be in (0, 1], got {self.keep_ratio}")
        if self.k < 0:
            raise ConfigError(f"k must be >= 0 (0 = use keep_ratio), got {self.k}")


NEAR_UNIFORM_ENTROPY = 0.95   # mean normalised entropy at or above which a search is reported as not having chosen


def search_diagnostics(probs: Any) -> dict[str, float | bool]:
    """How far an architecture search moved from its uniform start, from per-field choice probabilities
    (F, K): the largest probability per field (uniform: 1/K) and the entropy normalised by log K (uniform: 1),
    averaged over fields; near_uniform when the mean normalised entropy is >= NEAR_UNIFORM_ENTROPY."""
    import numpy as np

    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-300, 1.0)
    k = p.shape[1]
    entropy = -(p * np.log(p)).sum(axis=1) / np.log(k)
    return {"max_prob_mean": float(p.max(axis=1).mean()), "max_prob_min": float(p.max(axis=1).min()),
            "uniform_max_prob": 1.0 / k, "entropy_mean": float(entropy.mean()), "entropy_max": float(entropy.max()),
            "near_uniform": bool(entropy.mean() >= NEAR_UNIFORM_ENTROPY)}


def keep_count(n_fields: int, keep_ratio: float, k: int = 0) -> int:
    """How many fields to keep -- the one rule every method uses: k when k > 0 (at most n_fields), else
    keep_ratio * n_fields rounded half up (0.5 x 25 = 12.5 -> 13), at least 1."""
    if k > 0:
        return min(k, n_fields)
    return max(1, min(n_fields, math.floor(keep_ratio * n_fields + 0.5 + 1e-9)))


def order_fields(scores: Mapping[str, float], names: Sequence[str]) -> list[str]:
    """Field names by decreasing score; ties (and NaN, ranked last) keep dataset column order."""
    missing = [n for n in names if n not in scores]
    if missing:
        raise ValueError(f"selector returned no score for fields {missing}")
    def key(i: int) -> tuple[float, int]:
        s = float(scores[names[i]])
        return (math.inf if math.isnan(s) else -s, i)
    return [names[i] for i in sorted(range(len(names)), key=key)]


class SelectorMethod(Method):
    """Base of every field selector. Subclasses implement :meth:`rank` (higher score = more important).

    ``fit`` = rank (stage "select") -> keep the top-k fields -> train a fresh backbone over those fields only
    (``build_model(kept specs).use_columns(kept columns)``, stage "retrain"). The serving model reads the full
    dataset X and holds only the kept fields' embeddings.
    """

    family = "selector"
    Config = SelectorConfig
    config: SelectorConfig

    def rank(self, data: "EncodedDataset", ctx: "RunContext") -> dict[str, float]:
        """Importance score per field name (higher = more important). Called inside ``ctx.stage("select")``."""
        raise NotImplementedError(f"selector {self.name!r} does not implement rank()")

    def backbone(self) -> BackboneMethod:
        """The configured backbone method (builds untrained models; its config drives the retrain)."""
        return self.config.build_backbone()

    def n_keep(self, data: "EncodedDataset") -> int:
        return keep_count(len(data.fields), self.config.keep_ratio, self.config.k)

    def fit(self, data: "EncodedDataset", ctx: "RunContext") -> FitResult:
        backbone = self.backbone()
        with ctx.stage("select"):
            scores = {k: float(v) for k, v in self.rank(data, ctx).items()}
        names = [f.name for f in data.fields]
        ranking = order_fields(scores, names)
        k = self.n_keep(data)
        model, kept = retrain_on(backbone, data, ranking[:k], ctx)
        return FitResult(
            model=model, selected_fields=kept, field_scores=scores,
            extra={"ranking": ranking, "k": k, "n_fields": len(names), "keep_ratio": k / len(names),
                   "selector": self.name, "backbone": self.config.backbone},
        )


def retrain_on(backbone: BackboneMethod, data: "EncodedDataset", fields: Iterable[str], ctx: "RunContext",
               name: str = "retrain") -> tuple[Any, list[str]]:
    """Train a fresh backbone model over `fields` only (stage "retrain"); returns (model, kept names in column
    order). The model embeds only those fields but takes the full dataset X."""
    names = [f.name for f in data.fields]
    wanted = set(fields)
    unknown = wanted - set(names)
    if unknown:
        raise ConfigError(f"unknown fields {sorted(unknown)}; dataset fields: {names}")
    idx = [i for i, n in enumerate(names) if n in wanted]
    specs = field_specs(data)
    with ctx.stage(name):
        model = backbone.build_model([specs[i] for i in idx]).use_columns(idx).to(ctx.device)
        ctx.train(model, data, backbone.config, name=name)
    return model, [names[i] for i in idx]


# ---- scoring a ranking against ground truth ----------------------------------------------------------------
RELEVANT_ROLES: tuple[str, ...] = ("informative", "interaction")


def _relevant(ground_truth: Mapping[str, Any], roles: Sequence[str]) -> set[str]:
    unknown = [r for r in roles if r not in ground_truth]
    if unknown:
        raise ValueError(f"ground truth has no role(s) {unknown}; it has {sorted(ground_truth)}")
    return {f for r in roles for f in ground_truth[r]}


def ranking_quality(ranking: Sequence[str], ground_truth: Mapping[str, Any], k: int,
                    relevant: Sequence[str] = RELEVANT_ROLES) -> dict[str, float]:
    """Precision and recall at k of a ranking, where the relevant fields are the ground truth's planted
    `relevant` roles (default: informative + interaction; redundant near-copies and noise are not relevant)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rel = _relevant(ground_truth, relevant)
    hits = len(set(ranking[:k]) & rel)
    return {"precision": hits / min(k, len(ranking)) if ranking else 0.0,
            "recall": hits / len(rel) if rel else math.nan}


def ranking_auc(ranking: Sequence[str], positives: Iterable[str], negatives: Iterable[str]) -> float:
    """Probability that a random positive field is ranked above a random negative one (0.5 = chance,
    1 = every positive above every negative)."""
    pos_rank = {f: i for i, f in enumerate(ranking)}
    pos = [pos_rank[f] for f in positives]
    neg = [pos_rank[f] for f in negatives]
    if not pos or not neg:
        raise ValueError("need at least one positive and one negative field")
    wins = sum((p < n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


# ---- table over k -------------------------------------------------------------------------------------------
@dataclass
class SelectionRow:
    """One (dataset, selector series, keep ratio) cell, aggregated over seeds."""

    dataset: str
    series: str                  # selector variant without keep_ratio/k, e.g. "mi" or "lasso[backbone=deepfm]"
    keep_ratio: float            # fields kept / fields in the dataset (1.0 for all-field backbone runs)
    n_fields: float
    seeds: list[int]
    auc: list[float]
    params: float
    failed: int = 0

    @property
    def auc_mean(self) -> float:
        return float(np.mean(self.auc)) if self.auc else math.nan

    @property
    def auc_std(self) -> float:
        return float(np.std(self.auc, ddof=1)) if len(self.auc) > 1 else (0.0 if self.auc else math.nan)


_K_KEYS = ("keep_ratio", "k")


def _series_name(record: Mapping[str, Any]) -> str:
    from leanrec.records import variant_name

    overrides = {k: v for k, v in (record.get("overrides") or {}).items() if k not in _K_KEYS}
    return variant_name(record["method"], overrides)


def selection_rows(records: Iterable[Mapping[str, Any]], include_backbones: bool = True) -> list[SelectionRow]:
    """Selector records (family "selector") grouped by (dataset, series, keep ratio); with include_backbones,
    plain backbone records (family "backbone") join as the all-fields reference at keep ratio 1.0."""
    groups: dict[tuple[str, str, float], list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        family = r.get("family")
        if family == "selector":
            ok_extra = r.get("extra") or {}
            if "keep_ratio" in ok_extra:
                ratio = float(ok_extra["keep_ratio"])
            else:  # failed run: recompute from the config (needs the field count, unknown) -> use the request
                cfg = r.get("config") or {}
                ratio = float(cfg.get("keep_ratio", math.nan)) if not cfg.get("k") else math.nan
            groups[(r["dataset"], _series_name(r), round(ratio, 4))].append(r)
        elif family == "backbone" and include_backbones:
            groups[(r["dataset"], r["variant"] + " (all fields)", 1.0)].append(r)
    rows = []
    for (dataset, series, ratio), recs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        ok = sorted((r for r in recs if r.get("status") == "ok"), key=lambda r: r["seed"])
        n_fields = [len((r.get("selection") or {}).get("fields") or []) or (r.get("extra") or {}).get("k", math.nan)
                    for r in ok]
        params = [r["metrics"]["params"]["total"] for r in ok]
        rows.append(SelectionRow(dataset, series, ratio,
                                 float(np.mean(n_fields)) if n_fields else math.nan,
                                 [r["seed"] for r in ok], [r["metrics"]["auc"] for r in ok],
                                 float(np.mean(params)) if params else math.nan, len(recs) - len(ok)))
    return rows


def selection_csv(rows: Sequence[SelectionRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["dataset", "selector", "keep_ratio", "n_fields", "n_seeds", "auc_mean", "auc_std", "params",
                "failed_runs"])
    for r in rows:
        w.writerow([r.dataset, r.series, r.keep_ratio, r.n_fields, len(r.seeds), r.auc_mean, r.auc_std,
                    r.params, r.failed])
    return buf.getvalue()


def selection_markdown(rows: Sequence[SelectionRow]) -> str:
    """Per dataset: one line per selector, one column per keep ratio, cells 'AUC mean ± std'."""
    out = ["# Feature selection: test AUC by keep ratio (mean ± std over seeds)\n"]
    by_ds: dict[str, list[SelectionRow]] = defaultdict(list)
    for r in rows:
        by_ds[r.dataset].append(r)
    for dataset, rs in by_ds.items():
        ratios = sorted({r.keep_ratio for r in rs if not math.isnan(r.keep_ratio)})
        series = sorted({r.series for r in rs})
        cell = {(r.series, r.keep_ratio): r for r in rs}
        out.append(f"## {dataset}\n")
        out.append("| selector | " + " | ".join(f"keep {x:.2f}" for x in ratios) + " |")
        out.append("|---|" + "---|" * len(ratios))
        for s in series:
            cells = []
            for x in ratios:
                r = cell.get((s, x))
                if r is None or not r.auc:
                    cells.append("-" if r is None else f"failed ({r.failed})")
                else:
                    cells.append(f"{r.auc_mean:.4f} ± {r.auc_std:.4f} (n={len(r.seeds)})")
            out.append(f"| `{s}` | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def plot_selection(rows: Sequence[SelectionRow], path: Path, title: str) -> bool:
    """PNG of test AUC against keep ratio, one line per selector (error bars = std over seeds). Returns
    False (and writes nothing) when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.auc and not math.isnan(r.keep_ratio)]
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(8, 5.5))
    by_series: dict[str, list[SelectionRow]] = defaultdict(list)
    for r in rows:
        by_series[r.series].append(r)
    for i, (series, rs) in enumerate(sorted(by_series.items())):
        rs.sort(key=lambda r: r.keep_ratio)
        style = dict(fmt="--s", color="black") if series.endswith("(all fields)") else dict(fmt="-o")
        ax.errorbar([r.keep_ratio for r in rs], [r.auc_mean for r in rs], yerr=[r.auc_std for r in rs],
                    capsize=3, label=series, **style)
    ax.set_xlabel("keep ratio (fields kept / all fields)")
    ax.set_ylabel("test AUC (mean ± std over seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return True


def write_selection_table(results_dir: Path | str, out_dir: Path | str | None = None, *,
                          plots: bool = True, only: Sequence[str] = (), datasets: Sequence[str] = ()) -> list[Path]:
    """Read the run records under results_dir (filtered like the leaderboard: variant and dataset globs);
    write selection.csv, selection.md and one selection_auc_vs_k_<dataset>.png per dataset into out_dir
    (default results_dir). Returns the paths."""
    from leanrec.leaderboard import select_records

    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir
    rows = selection_rows(select_records(iter_records(results_dir), only, datasets))
    written = [out_dir / "selection.csv", out_dir / "selection.md"]
    atomic_write_text(written[0], selection_csv(rows))
    atomic_write_text(written[1], selection_markdown(rows))
    if plots:
        for dataset in sorted({r.dataset for r in rows}):
            path = out_dir / f"selection_auc_vs_k_{file_slug(dataset)}.png"
            if plot_selection([r for r in rows if r.dataset == dataset], path, f"{dataset}: AUC against k"):
                written.append(path)
    return written


def selection_table_command(results_dir: str = "results", out_dir: str | None = None, plots: bool = True,
                            only: Sequence[str] = (), datasets: Sequence[str] = ()) -> str:
    """CLI hook for ``leanrec selection-table``: writes the table over k and returns a one-line summary per
    written file (the CLI prints it)."""
    paths = write_selection_table(results_dir, out_dir, plots=plots, only=only, datasets=datasets)
    return "\n".join(f"wrote {p}" for p in paths)
