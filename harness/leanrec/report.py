"""`leanrec report`: the leaderboard as one self-contained static HTML page (no server, no network).

Built from the run records under ``<results>/runs`` with the leaderboard's own functions: a tab per dataset, in
each the AUC-vs-parameters plot (inline base64 PNG) and one sortable table per view (all methods, then the
per-paper views of ``results/tables/``, ranked within the view as ``leanrec leaderboard --only`` ranks them).
Every row links to its run records by relative paths, so the page works wherever the results folder is
copied together with it. CSS and JavaScript are inline.

The page reads its state from the URL fragment, e.g. ``report.html#dataset=criteo&view=ssr&sort=params&dir=asc``
(also how the browser test drives it).
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import typer

from leanrec.errors import LeanrecError
from leanrec.records import atomic_write_text, file_slug, iter_records, record_path

if TYPE_CHECKING:
    from leanrec.leaderboard import Row


@dataclass(frozen=True)
class View:
    """A per-paper view: the variants matching `patterns` (globs, as `leanrec leaderboard --only`)."""

    name: str
    title: str
    patterns: tuple[str, ...]


_BASELINES = ("lr fm fwfm dnn wide-deep deepfm ipnn xdeepfm dcnv2 autoint-plus fibinet finalmlp wukong "
              "rankmixer").split()
# The per-paper views of results/tables/ (the same globs as results/run_tables.sh's `tables` section).
VIEWS: tuple[View, ...] = (
    View("baselines", "Baseline zoo (issue 6)", tuple(_BASELINES)),
    View("reaction", "REACTION variants, paper Table 3 (issue 8)", ("reaction*", "dnn")),
    View("lightfmp", "Light-FMP on each backbone, with and without (issue 9)",
         ("dnn", "deepfm", "wide-deep", "ipnn", "xdeepfm", "lightfmp*")),
    View("ssr", "SSR vs dense backbones (issue 10)", ("dnn", "dcnv2", "rankmixer", "wukong", "ssr-*")),
    View("irazor", "i-Razor vs fixed dims and argmax, plain and FG data (issue 11)", ("dnn", "irazor*")),
    View("selection", "Feature selectors, DNN retrained on the top fields (issue 7)",
         ("dnn", "mi", "chi2", "variance", "lasso", "pca", "autofield", "adafs", "optfs", "lpfs", "mvfs", "mi[*",
          "lasso[*", "lpfs[*", "adafs-e2e", "mvfs-e2e")),
)


@dataclass(frozen=True)
class Column:
    key: str
    head: str
    title: str = ""


def _nan(x: float) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _fmt(x: float, digits: int = 4) -> str:
    from leanrec.leaderboard import _fmt as fmt  # the leaderboard's own number formats

    return fmt(x, digits)


def _si(x: float) -> str:
    from leanrec.leaderboard import _si as si

    return si(x)


def _signed(x: float) -> str:
    return ("+" if not _nan(x) and x > 0 else "") + _fmt(x)


def build_report(results_dir: Path, out: Path, *, title: str = "leanrec leaderboard",
                 views: Sequence[View] = VIEWS, plots: bool = True) -> str:
    """The HTML page for the records under `results_dir`; links are relative to `out`'s folder."""
    from leanrec.leaderboard import build_rows, select_records, table_name

    results_dir = Path(results_dir)
    records = list(iter_records(results_dir))
    if not records:
        raise LeanrecError(f"{results_dir} holds no run records (runs/*/*.json): run `leanrec run` first")
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        runs.setdefault((table_name(r["dataset"], r.get("protocol", 1)), r["variant"]), []).append(r)
    tables = build_rows(records)
    base = Path(out).resolve().parent
    in_table: dict[str, list[dict[str, Any]]] = {}   # records per leaderboard table (dataset and protocol)
    for r in records:
        in_table.setdefault(table_name(r["dataset"], r.get("protocol", 1)), []).append(r)
    sections = []
    for dataset in sorted(tables):
        blocks = [("all", "All methods", tables[dataset])]
        for v in views:
            rows = build_rows(select_records(in_table[dataset], v.patterns)).get(dataset)
            if rows:
                blocks.append((v.name, v.title, rows))
        sections.append(_dataset_section(dataset, blocks, runs, results_dir, base, plots))
    tabs = "".join(f'<button class="tab" data-dataset="{_slug(d)}">{html.escape(d)}</button>' for d in sorted(tables))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return _PAGE.format(
        title=html.escape(title), css=_CSS, js=_JS, tabs=tabs, sections="\n".join(sections),
        summary=html.escape(f"{len(records)} run records, {len(tables)} datasets, from "
                            f"{os.path.relpath(results_dir.resolve(), base)}/runs; generated {stamp}"))


def write_report(results_dir: Path, out: Path | None = None, **kwargs: Any) -> Path:
    """Write the page (default: <results_dir>/report.html) atomically; returns its path."""
    out = Path(out) if out is not None else Path(results_dir) / "report.html"
    atomic_write_text(out, build_report(results_dir, out, **kwargs))
    return out


def report_command(
    results_dir: Path = typer.Option(Path("results"), "--results-dir", help="Directory holding runs/."),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write (default: <results-dir>/report.html)."),
    title: str = typer.Option("leanrec leaderboard", "--title", help="Heading of the page."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Embed the AUC-vs-parameters plots."),
) -> None:
    """Write the leaderboard as one self-contained static HTML page: a tab per dataset, sortable tables, the
    Pareto plot, the per-paper views, links to every run record. Open it in any browser; no server needed."""
    path = write_report(results_dir, out, title=title, plots=plots)
    typer.echo(f"wrote {path}")


def _slug(name: str) -> str:
    return file_slug(name) or "x"


def _dataset_section(dataset: str, blocks: list[tuple[str, str, list[Row]]],
                     runs: dict[tuple[str, str], list[dict]], results_dir: Path, base: Path, plots: bool) -> str:
    parts = [f'<section class="dataset" id="ds-{_slug(dataset)}" data-dataset="{_slug(dataset)}">',
             f"<h2>{html.escape(dataset)}</h2>"]
    if plots:
        from leanrec.plots import auc_vs_params_figure, png_bytes

        fig = auc_vs_params_figure(blocks[0][2], f"{dataset}: AUC vs parameters")
        if fig is not None:
            data = base64.b64encode(png_bytes(fig)).decode()
            parts.append(f'<figure><img class="plot" alt="{html.escape(dataset)}: AUC vs parameters" '
                         f'src="data:image/png;base64,{data}"><figcaption>Test AUC against the serving model\'s '
                         "parameters; numbers are ranks (key on the right), the dashed line is the Pareto front "
                         "(no method has fewer parameters and a higher AUC).</figcaption></figure>")
    parts.append('<nav class="views">' + "".join(
        f'<button class="view" data-view="{name}" title="{html.escape(t)}">{html.escape(name)}</button>'
        for name, t, _ in blocks) + "</nav>")
    for name, view_title, rows in blocks:
        parts.append(_table(dataset, name, view_title, rows, runs, results_dir, base))
    parts.append("</section>")
    return "\n".join(parts)


def _table(dataset: str, view: str, view_title: str, rows: list[Row], runs: dict[tuple[str, str], list[dict]],
           results_dir: Path, base: Path) -> str:
    from leanrec.leaderboard import REFERENCE, ceiling_note, display_order, ranked
    from leanrec.plots import pareto_front

    has = {
        "gauc": any(r.gauc for r in rows),
        "sel": any(not _nan(r.fields) for r in rows),
        "own": any(not _nan(r.bb_delta_auc) for r in rows),
        "fail": any(r.failed for r in rows),
    }
    cols = [Column("rank", "#"), Column("variant", "method"), Column("family", "family"),
            Column("auc", "AUC", "test AUC, mean ± std over seeds"), Column("logloss", "logloss")]
    cols += [Column("gauc", "gAUC")] if has["gauc"] else []
    cols += [Column("delta_auc", f"Δ AUC vs {REFERENCE}"),
             Column("p_value", "p", "two-sided paired t-test of test AUC against the best baseline"),
             Column("params", "params", "parameters the serving model keeps"), Column("emb_params", "embedding"),
             Column("backbone_params", "backbone"), Column("flops", "FLOPs/sample"),
             Column("lat1_us", "latency b1 (µs)"), Column("lat4096_us", "latency b4096 (µs/sample)"),
             Column("train_s", "train s"), Column("time_ratio", f"time × {REFERENCE}")]
    cols += [Column("fields", "fields"), Column("dims", "dims")] if has["sel"] else []
    cols += [Column("bb_delta_auc", "Δ AUC vs own backbone"), Column("bb_p_value", "p vs own backbone"),
             Column("bb_time_ratio", "time × own backbone")] if has["own"] else []
    cols += [Column("pareto", "Pareto", "on the Pareto front of AUC against parameters (in this view)"),
             Column("seeds", "seeds / records", "one link per run record (seed)")]
    cols += [Column("failed", "failed runs")] if has["fail"] else []
    plotted = [r for r in rows if r.auc and not _nan(r.params) and not r.reference]
    front = {plotted[i].variant for i in pareto_front([(r.params, r.mean("auc")) for r in plotted])}
    head = "".join(f'<th data-key="{c.key}" title="{html.escape(c.title or c.head)}">{html.escape(c.head)}</th>'
                   for c in cols)
    body = []
    for r in display_order(rows):
        cells = []
        for c in cols:
            sort, text = _cell(c.key, r, front, runs.get((dataset, r.variant), []), results_dir, base)
            attr = "" if sort is None else f' data-v="{sort}"'
            cells.append(f"<td{attr}>{text}</td>")
        body.append(f'<tr data-variant="{html.escape(r.variant)}">' + "".join(cells) + "</tr>")
    note = ceiling_note(rows)
    note = f'<p class="muted">{html.escape(note).replace("`", "")}</p>' if note else ""
    return (f'<div class="table" data-view="{view}"><p class="view-title">{html.escape(view_title)} '
            f'<span class="muted">({len(ranked(rows))} methods; click a column to sort)</span></p>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{note}</div>")


def _cell(key: str, r: Row, front: set[str], recs: list[dict], results_dir: Path,
          base: Path) -> tuple[Any, str]:
    """(sort value or None for text sorting, cell HTML)."""
    esc = html.escape
    if key == "rank":   # a reference row (a known ceiling, rank 0) sorts first
        return r.rank, "ceiling" if r.reference else str(r.rank)
    if key == "variant":
        badge = ' <span class="badge">baseline</span>' if r.is_baseline else ""
        return None, f"<code>{esc(r.variant)}</code>{badge}"
    if key == "family":
        return None, esc(r.family)
    if key in ("auc", "logloss", "gauc"):
        m = r.mean(key)
        return _num(m), "-" if _nan(m) else f"{_fmt(m)} <span class=\"muted\">± {_fmt(r.std(key))}</span>"
    if key in ("delta_auc", "bb_delta_auc"):
        v = getattr(r, key)
        extra = f' <span class="muted">{esc(r.backbone)}</span>' if key == "bb_delta_auc" and not _nan(v) else ""
        return _num(v), _signed(v) + extra
    if key in ("p_value", "bb_p_value"):
        v = getattr(r, key)
        return _num(v), _fmt(v, 3) + (f' <span class="muted">vs {esc(r.vs)}</span>' if key == "p_value" and r.vs
                                      and not _nan(v) else "")
    if key in ("params", "emb_params", "backbone_params", "flops"):
        v = getattr(r, key)
        return _num(v), _si(v)
    if key in ("lat1_us", "train_s"):
        return _num(getattr(r, key)), _fmt(getattr(r, key), 1)
    if key == "lat4096_us":
        return _num(r.lat4096_us), _fmt(r.lat4096_us, 3)
    if key in ("time_ratio", "bb_time_ratio"):
        return _num(getattr(r, key)), _fmt(getattr(r, key), 2)
    if key in ("fields", "dims"):
        return _num(getattr(r, key)), _fmt(getattr(r, key), 1)
    if key == "pareto":
        on = r.variant in front
        return int(on), "★" if on else ""
    if key == "seeds":
        links = []
        for rec in sorted(recs, key=lambda x: x["seed"]):
            path = record_path(results_dir, rec["dataset"], rec["variant"], rec["seed"]).resolve()
            href = esc(Path(os.path.relpath(path, base)).as_posix(), quote=True)
            bad = rec["status"] != "ok"
            links.append(f'<a href="{href}" class="{"failed" if bad else "rec"}" title="{esc(rec["status"])}">'
                         f'{rec["seed"]}</a>')
        return len(r.seeds), " ".join(links)
    if key == "failed":
        return r.failed, str(r.failed) if r.failed else ""
    raise KeyError(key)


def _num(x: float) -> str:
    return "" if _nan(x) else repr(float(x))


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:12px 20px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#b9c0cc;font-size:12px}
nav.tabs{padding:8px 20px 0;background:#e8ebf0;position:sticky;top:0;z-index:2}
button{font:inherit;cursor:pointer;border:1px solid #c5cbd5;background:#fff;border-radius:6px 6px 0 0;
padding:5px 12px;margin-right:3px}
button.active{background:#1d2330;color:#fff;border-color:#1d2330}
nav.views button{border-radius:14px;font-size:12px;padding:3px 10px;margin:2px}
main{padding:8px 20px 40px}section.dataset{display:none}section.dataset.active{display:block}
div.table{display:none;overflow-x:auto}div.table.active{display:block}
table{border-collapse:collapse;background:#fff;font-size:12.5px;white-space:nowrap}
th{position:sticky;top:0;background:#dfe4ea;cursor:pointer;padding:5px 8px;text-align:left;user-select:none}
th.asc::after{content:" ▲"}th.desc::after{content:" ▼"}
td{padding:3px 8px;border-top:1px solid #e6e9ee}tbody tr:hover{background:#f1f5fb}
.muted{color:#7a8494;font-size:11px}.badge{background:#e3ecfa;color:#2456a6;border-radius:8px;padding:0 6px;
font-size:10.5px}a.rec{color:#2456a6;margin-right:2px}a.failed{color:#b3261e;font-weight:bold}
figure{margin:8px 0 12px}img.plot{max-width:100%;border:1px solid #dfe4ea;background:#fff}
figcaption{font-size:12px;color:#5b6474}.view-title{margin:8px 0 4px;font-weight:600}
"""

_JS = r"""
(function () {
  function params() {
    var out = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i > 0) out[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1));
    });
    return out;
  }
  function setHash(p) {
    var s = Object.keys(p).filter(function (k) { return p[k]; })
      .map(function (k) { return k + "=" + encodeURIComponent(p[k]); }).join("&");
    history.replaceState(null, "", "#" + s);
  }
  function key(td) {
    var v = td.getAttribute("data-v");
    if (v === null) return td.textContent.trim().toLowerCase();
    return v === "" ? null : parseFloat(v);
  }
  function sortTable(table, col, dir) {
    var ths = table.querySelectorAll("th"), idx = -1;
    ths.forEach(function (th, i) { th.classList.remove("asc", "desc"); if (th.dataset.key === col) idx = i; });
    if (idx < 0) return;
    ths[idx].classList.add(dir);
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[idx]), y = key(b.cells[idx]);
      if (x === null && y === null) return 0;
      if (x === null) return 1;   // missing values last in both directions
      if (y === null) return -1;
      var c = x < y ? -1 : x > y ? 1 : 0;
      return dir === "asc" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function show() {
    var p = params();
    var sections = document.querySelectorAll("section.dataset");
    var ds = p.dataset && document.getElementById("ds-" + p.dataset) ? p.dataset : sections[0].dataset.dataset;
    sections.forEach(function (s) { s.classList.toggle("active", s.dataset.dataset === ds); });
    document.querySelectorAll("button.tab").forEach(function (b) {
      b.classList.toggle("active", b.dataset.dataset === ds);
    });
    var sec = document.getElementById("ds-" + ds);
    var view = p.view && sec.querySelector('div.table[data-view="' + p.view + '"]') ? p.view : "all";
    sec.querySelectorAll("div.table").forEach(function (t) { t.classList.toggle("active", t.dataset.view === view); });
    sec.querySelectorAll("button.view").forEach(function (b) {
      b.classList.toggle("active", b.dataset.view === view);
    });
    var table = sec.querySelector('div.table[data-view="' + view + '"] table');
    if (p.sort) sortTable(table, p.sort, p.dir === "asc" ? "asc" : "desc");
    return p;
  }
  document.querySelectorAll("button.tab").forEach(function (b) {
    b.addEventListener("click", function () { setHash({dataset: b.dataset.dataset}); show(); });
  });
  document.querySelectorAll("button.view").forEach(function (b) {
    b.addEventListener("click", function () {
      setHash({dataset: b.closest("section").dataset.dataset, view: b.dataset.view});
      show();
    });
  });
  document.querySelectorAll("th").forEach(function (th) {
    th.addEventListener("click", function () {
      var p = params(), sec = th.closest("section");
      var dir = p.sort === th.dataset.key && p.dir !== "asc" ? "asc" : "desc";
      if (p.sort !== th.dataset.key && (th.dataset.key === "rank" || th.dataset.key === "variant")) dir = "asc";
      var view = th.closest("div.table").dataset.view;
      setHash({dataset: sec.dataset.dataset, view: view, sort: th.dataset.key, dir: dir});
      show();
    });
  });
  window.addEventListener("hashchange", show);
  show();
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title><style>{css}</style></head>
<body><header><h1>{title}</h1><p>{summary}</p></header>
<nav class="tabs">{tabs}</nav>
<main>
{sections}
</main>
<script>{js}</script>
</body></html>
"""
