"""`leanrec report`: one self-contained HTML page from the run records. Checked as a file (no external resource,
every record link resolves) and in a real headless browser (Debian's chromium; skipped when none is installed):
the DOM after the page's JavaScript ran shows every dataset's table with every method and its mean AUC
(computed here with numpy), sorts by a column, switches views, and renders a screenshot."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from leanrec.records import SCHEMA_VERSION, record_path, write_record
from leanrec.report import VIEWS, build_report, write_report

DATASETS = ("criteo", "frappe", "frappe[cross_fields=true]")
METHODS = {  # variant: (family, is_baseline, params, backbone)
    "dnn": ("backbone", True, 9e5, ""), "deepfm": ("backbone", True, 9.5e5, ""),
    "lr": ("backbone", True, 4e4, ""), "lightfmp": ("pruning", False, 5e5, "dnn"),
    "lightfmp-deepfm": ("pruning", False, 6e5, "deepfm"), "reaction": ("model", False, 7e5, ""),
    "mi[keep_ratio=0.5]": ("selector", False, 4.5e5, "dnn"), "ssr-s": ("backbone", False, 2e6, ""),
}


def _write_records(results: Path) -> dict[tuple[str, str], list[float]]:
    """Fake run records (3 seeds each, one failed run); returns the AUCs written per (dataset, variant)."""
    rng = np.random.default_rng(0)
    aucs: dict[tuple[str, str], list[float]] = {}
    for d, dataset in enumerate(DATASETS):
        for variant, (family, baseline, params, backbone) in METHODS.items():
            if dataset == "frappe" and variant == "ssr-s":
                continue  # not every method runs on every dataset
            base = 0.70 + 0.05 * d + rng.normal(0, 0.01)
            for seed in range(3):
                auc = float(base + rng.normal(0, 0.002))
                status = "failed" if (dataset, variant, seed) == ("criteo", "reaction", 2) else "ok"
                rec = {"schema_version": SCHEMA_VERSION, "protocol": 2, "dataset": dataset, "variant": variant, "seed": seed,
                       "status": status, "family": family, "is_baseline": baseline, "total_time": 3.0 + seed,
                       "selection": {}, "config": {"backbone": backbone} if backbone else {},
                       "metrics": {} if status != "ok" else {
                           "auc": auc, "logloss": 0.45, "params": {"total": params * (1 + 0.01 * seed),
                                                                   "embedding": params * 0.8, "backbone": params * 0.2},
                           "flops_per_sample": 2e5, "latency_s_per_sample": {"batch_1": 1e-4, "batch_4096": 1e-6}}}
                write_record(record_path(results, dataset, variant, seed), rec)
                if status == "ok":
                    aucs.setdefault((dataset, variant), []).append(auc)
    return aucs


class _Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: "_Node | None"):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[_Node] = []
        self.content: list[_Node | str] = []  # children and text in document order

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def find_all(self, tag: str, cls: str | None = None) -> list["_Node"]:
        out = []
        for c in self.children:
            if c.tag == tag and (cls is None or cls in c.classes()):
                out.append(c)
            out += c.find_all(tag, cls)
        return out

    def all_text(self) -> str:
        return "".join(c if isinstance(c, str) else c.all_text() for c in self.content)


class _Dom(HTMLParser):
    """A minimal DOM (stdlib only) of a page as the browser serialised it."""

    VOID = {"img", "meta", "br", "input", "link", "hr", "source", "wbr"}

    def __init__(self, text: str):
        super().__init__()
        self.root = self.cur = _Node("#root", {}, None)
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        node = _Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        self.cur.content.append(node)
        if tag not in self.VOID:
            self.cur = node

    def handle_endtag(self, tag):
        node = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data):
        self.cur.content.append(data)


def _table_rows(table: _Node) -> list[dict[str, str]]:
    heads = [th.attrs.get("data-key") for th in table.find_all("th")]
    body = table.find_all("tbody")[0]
    return [dict(zip(heads, (td.all_text().strip() for td in tr.find_all("td")))) for tr in body.find_all("tr")]


def _active(dom: _Dom) -> tuple[_Node, _Node]:
    """(the visible dataset section, its visible table)."""
    sections = [s for s in dom.root.find_all("section", "dataset") if "active" in s.classes()]
    assert len(sections) == 1
    tables = [t for t in sections[0].find_all("div", "table") if "active" in t.classes()]
    assert len(tables) == 1
    return sections[0], tables[0].find_all("table")[0]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    aucs = _write_records(root / "results")
    out = write_report(root / "results", root / "site" / "index.html")
    return out, aucs


def test_page_is_self_contained_and_links_every_record(report):
    out, aucs = report
    page = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)  # nothing fetched from a network
    assert "<link" not in page and "<script src" not in page
    assert page.count('src="data:image/png;base64,') == len(DATASETS)
    hrefs = re.findall(r'href="([^"#]+)"', page)
    assert hrefs and all((out.parent / h).resolve().is_file() for h in hrefs)
    n_records = len(list((out.parent.parent / "results" / "runs").glob("*/*.json")))
    assert len(set(hrefs)) == n_records


def test_no_records_is_a_clear_error(tmp_path):
    from leanrec.errors import LeanrecError

    with pytest.raises(LeanrecError, match="no run records"):
        build_report(tmp_path, tmp_path / "r.html")


def test_cli_writes_the_page(tmp_path):
    _write_records(tmp_path / "res")
    out = subprocess.run([sys.executable, "-m", "leanrec.cli", "report", "--results-dir", str(tmp_path / "res"),
                          "--no-plots"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "res" / "report.html").is_file() and "report.html" in out.stdout


# ---- in a real browser --------------------------------------------------------------------------------------
def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless browser installed (Debian: apt-get install chromium)")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def _dom(tmp_path: Path, out: Path, fragment: str = "") -> _Dom:
    return _Dom(_chromium(tmp_path, "--virtual-time-budget=3000", "--dump-dom", out.as_uri() + fragment).stdout)


def test_browser_shows_every_datasets_table(report, tmp_path):
    out, aucs = report
    tabs = None
    for dataset in DATASETS:
        from leanrec.records import file_slug

        dom = _dom(tmp_path, out, f"#dataset={file_slug(dataset)}")
        section, table = _active(dom)
        assert section.find_all("h2")[0].all_text() == dataset
        tabs = tabs or [b.all_text() for b in dom.root.find_all("button", "tab")]
        rows = {r["variant"].replace(" baseline", ""): r for r in _table_rows(table)}
        expected = {v for (d, v) in aucs if d == dataset}
        assert set(rows) == expected
        for variant in expected:
            mean = np.mean(aucs[(dataset, variant)])
            assert rows[variant]["auc"].startswith(f"{mean:.4f} ± "), (dataset, variant, rows[variant]["auc"])
            assert rows[variant]["seeds"].split() == ["0", "1", "2"]  # one link per record, failed ones too
        ranked = sorted(expected, key=lambda v: -np.mean(aucs[(dataset, v)]))
        assert [r["variant"].replace(" baseline", "") for r in _table_rows(table)] == ranked
    assert tabs == sorted(DATASETS)


def test_browser_sorts_columns_and_switches_views(report, tmp_path):
    out, aucs = report
    _, table = _active(_dom(tmp_path, out, "#dataset=criteo&sort=params&dir=asc"))
    order = [r["variant"].replace(" baseline", "") for r in _table_rows(table)]
    assert order == sorted(order, key=lambda v: METHODS[v][2])
    _, table = _active(_dom(tmp_path, out, "#dataset=criteo&sort=variant&dir=desc"))
    assert [r["variant"].replace(" baseline", "") for r in _table_rows(table)] == sorted(order, reverse=True)
    view = next(v for v in VIEWS if v.name == "lightfmp")
    _, table = _active(_dom(tmp_path, out, f"#dataset=criteo&view={view.name}"))
    assert {r["variant"].replace(" baseline", "") for r in _table_rows(table)} == \
        {"dnn", "deepfm", "lightfmp", "lightfmp-deepfm"}


def test_browser_screenshot(report, tmp_path):
    out, _ = report
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, "--window-size=1400,900", "--hide-scrollbars", f"--screenshot={shot}", out.as_uri())
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[:2] == (900, 1400)
    assert pixels.std() > 0.05  # a rendered page, not a blank one
