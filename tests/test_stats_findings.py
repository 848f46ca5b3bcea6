"""Findings of `leanrec stats` (leanrec.stats.findings): each case planted in generated data, a clean file with
none, oracles from numpy / scikit-learn, and the CLI (table, CSV/JSON outputs, --workers)."""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import mutual_info_score
from typer.testing import CliRunner

from leanrec.stats import compute
from leanrec.stats import findings as F

N = 6000


def _effect(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A field with k values and a label whose rate depends strongly on it."""
    x = rng.integers(0, k, N)
    rates = np.linspace(0.05, 0.6, k)
    return x, rates[x]


def clean_table(seed: int = 0) -> pa.Table:
    """Three informative fields, nothing else: no findings expected."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.integers(0, 8, N), rng.integers(0, 5, N), rng.integers(0, 30, N)
    logit = np.array([-2, -1.5, -1, -.5, 0, .5, 1, 1.5])[a] + np.array([-1, -.5, 0, .5, 1])[b] + (c % 3 - 1) * .8
    y = (rng.random(N) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pa.table({"click": y, "a": [f"a{v}" for v in a], "b": [f"b{v}" for v in b], "c": [f"c{v}" for v in c]})


def planted_table(seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    good, rate = _effect(rng, 8)
    y = (rng.random(N) < rate).astype(np.int64)
    leak = np.where(rng.random(N) < 0.005, 1 - y, y)  # the label with 0.5% flips
    near = np.array(["a"] * N, dtype=object)
    near[rng.choice(N, 15, replace=False)] = "b"
    mostly = np.array([f"v{v}" for v in rng.integers(0, 3, N)], dtype=object)
    mostly[rng.random(N) < 0.95] = None
    conv = np.array([f"order{i}" if y[i] else None for i in range(N)], dtype=object)  # unique on positives only
    return pa.table({
        "click": y,
        "good": [f"g{v}" for v in good],
        "leak": ["yes" if v else "no" for v in leak],
        "rowid": [f"r{i:06d}" for i in rng.permutation(N)],
        "const": ["x"] * N,
        "near": near.tolist(),
        "mostly": mostly.tolist(),
        "noise": [f"n{v}" for v in rng.integers(0, 6, N)],
        "amount": np.round(rng.random(N) * 1000, 6) + 0.5,
        "conv": conv.tolist(),
    })


def _write(table: pa.Table, path: Path) -> Path:
    pacsv.write_csv(table, path)
    return path


def _codes(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name).combine_chunks()
    return np.asarray(pa.array(col.cast(pa.string()).fill_null("<NA>")).dictionary_encode().indices)


def _kinds(found: list[F.Finding]) -> set[tuple[str, str]]:
    return {(x.field, x.kind) for x in found}


def test_each_planted_case_is_found_with_its_measure(tmp_path: Path):
    table = planted_table()
    path = _write(table, tmp_path / "log.csv")
    report = compute(path, label="click", progress=False)
    found = F.analyse(report, path)
    kinds = _kinds(found)
    planted = {("leak", "leakage"), ("rowid", "identifier"), ("const", "constant"), ("near", "near-constant"),
               ("mostly", "mostly-null"), ("noise", "no-signal"), ("amount", "identifier"), ("conv", "leakage"),
               ("conv", "identifier")}
    assert planted <= kinds
    # nothing on the informative field; label-independent fields may only add no-signal
    extra = kinds - planted
    assert all(k == "no-signal" and f in ("near", "mostly") for f, k in extra), extra
    assert not any(x.field == "good" for x in found)
    assert ("rowid", "leakage") not in kinds  # NMI ~1 from unique values alone is not a leak
    y = table["click"].to_numpy()
    h = -sum(p * math.log(p) for p in (y.mean(), 1 - y.mean()))
    by = {(x.field, x.kind): x for x in found}
    leak = by["leak", "leakage"]
    assert leak.measure == "nmi_click" and leak.action == "drop" and leak.label == "click"
    assert leak.value == pytest.approx(mutual_info_score(_codes(table, "leak"), y) / h, rel=1e-9)
    assert by["rowid", "identifier"].value == 1.0 and by["rowid", "identifier"].action == "drop"
    assert by["amount", "identifier"].action == "bucket"  # non-integer values: a measurement
    assert by["near", "near-constant"].value == pytest.approx(1 - 15 / N)
    mostly = table["mostly"]
    assert by["mostly", "mostly-null"].value == pytest.approx(mostly.null_count / N)
    assert by["const", "constant"].action == "drop"
    assert set(F.drops(found)) == {"leak", "rowid", "const", "conv"}


def test_no_signal_against_a_permutation_oracle(tmp_path: Path):
    """observed = scikit-learn MI; threshold = the largest MI over the same 19 seeded label permutations."""
    table = planted_table()
    path = _write(table, tmp_path / "log.csv")
    found = F.analyse(compute(path, label="click", progress=False), path)
    y = table["click"].to_numpy()
    x = _codes(table, "noise")
    (ns,) = [f for f in found if f.field == "noise"]
    assert ns.kind == "no-signal" and ns.measure == "mi_click"
    assert ns.value == pytest.approx(mutual_info_score(x, y), rel=1e-9, abs=1e-15)
    null = [mutual_info_score(x, y[np.random.default_rng(s).permutation(N)]) for s in range(19)]
    assert ns.threshold == pytest.approx(max(null), rel=1e-9)
    assert ns.value <= ns.threshold


def test_clean_file_has_no_findings(tmp_path: Path):
    path = _write(clean_table(), tmp_path / "clean.csv")
    report = compute(path, label="click", progress=False)
    assert F.analyse(report, path) == []
    assert F.find(report) == []


def test_without_null_no_signal_is_skipped_and_identifiers_are_not_leaks(tmp_path: Path):
    path = _write(planted_table(), tmp_path / "log.csv")
    kinds = _kinds(F.find(compute(path, label="click", progress=False)))
    assert not any(k == "no-signal" for _, k in kinds)
    assert ("leak", "leakage") in kinds and ("rowid", "leakage") not in kinds and ("conv", "leakage") not in kinds


def test_null_sample_smaller_than_the_report_is_said(tmp_path: Path):
    path = _write(planted_table(), tmp_path / "log.csv")
    found = F.analyse(compute(path, label="click", progress=False), path, null_rows=2000)
    ns = [x for x in found if x.kind == "no-signal"]
    assert ns and all("first 2,000 rows" in x.advice for x in ns)


def test_parquet_shards_and_typed_columns(tmp_path: Path):
    """read_sample over a folder of typed Parquet shards gives the same findings as the CSV."""
    table = planted_table()
    (tmp_path / "shards").mkdir()
    for i in range(3):
        pq.write_table(table.slice(i * 2000, 2000), tmp_path / "shards" / f"p{i}.parquet")
    csv = _write(table, tmp_path / "log.csv")
    a = F.analyse(compute(csv, label="click", progress=False), csv)
    b = F.analyse(compute(tmp_path / "shards", label="click", progress=False), tmp_path / "shards")
    assert _kinds(a) == _kinds(b)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c"])), min_size=40, max_size=120),
       st.integers(0, 2**31))
def test_state_findings_match_numpy(values, seed):
    """constant / mostly-null / near-constant exactly when numpy's counts say so."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, len(values))
    y[:2] = [0, 1]
    with tempfile.TemporaryDirectory() as d:
        path = _write(pa.table({"click": y, "x": pa.array(values, pa.string())}), Path(d) / "t.csv")
        report = compute(path, label="click", progress=False)
    kinds = {k for _, k in _kinds(F.find(report))}
    n = len(values)
    nulls = sum(v is None for v in values)
    _, counts = np.unique([v for v in values if v is not None], return_counts=True)
    states = len(counts) + (nulls > 0)
    t = F.Thresholds()
    assert ("constant" in kinds) == (states <= 1)
    assert ("mostly-null" in kinds) == (states > 1 and nulls / n >= t.mostly_null_share)
    assert ("near-constant" in kinds) == (states > 1 and len(counts) > 0 and counts.max() / n >= t.near_constant_share)


# ---- the command line ----------------------------------------------------------------------------------------
def _app():
    from leanrec.cli import app

    return app


def test_cli_prints_findings_and_writes_them(tmp_path: Path):
    path = _write(planted_table(), tmp_path / "log.csv")
    runner = CliRunner()
    r = runner.invoke(_app(), ["stats", str(path), "--label", "click", "--no-progress", "--out",
                               str(tmp_path / "s.json")], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "findings (" in r.output and "identifier" in r.output and "leakage" in r.output
    doc = json.loads((tmp_path / "s.json").read_text())
    assert {(d["field"], d["kind"]) for d in doc["findings"]} >= {("leak", "leakage"), ("const", "constant")}
    assert all(set(d) >= {"field", "kind", "measure", "value", "threshold", "action", "advice"} for d in doc["findings"])
    r = runner.invoke(_app(), ["stats", str(path), "--label", "click", "--no-progress", "--out", str(tmp_path / "s.csv")])
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row["findings"] for row in pacsv.read_csv(tmp_path / "s.csv").to_pylist()}
    assert rows["const"].startswith("constant:") and "leakage:" in rows["leak"] and not rows["good"]


def test_cli_clean_file_says_none(tmp_path: Path):
    path = _write(clean_table(), tmp_path / "clean.csv")
    r = CliRunner().invoke(_app(), ["stats", str(path), "--label", "click", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "findings: none" in r.output
    r = CliRunner().invoke(_app(), ["stats", str(path), "--label", "click", "--no-progress", "--no-findings"])
    assert r.exit_code == 0 and "findings" not in r.output


def test_cli_workers_equals_one_process(tmp_path: Path):
    pytest.importorskip("dask.distributed")
    table = planted_table()
    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(3):
        pq.write_table(table.slice(i * 2000, 2000), shards / f"p{i}.parquet")
    runner = CliRunner()
    r = runner.invoke(_app(), ["stats", str(shards), "--label", "click", "--no-progress", "--workers", "2",
                               "--out", str(tmp_path / "d.json")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(_app(), ["stats", str(shards), "--label", "click", "--no-progress",
                               "--out", str(tmp_path / "one.json")])
    assert r.exit_code == 0, r.output
    d, one = (json.loads((tmp_path / n).read_text()) for n in ("d.json", "one.json"))
    d.pop("source"), one.pop("source")
    assert d == one  # statistics are bit-identical (exact sums), so the JSON is too


def test_cli_workers_and_scheduler_conflict(tmp_path: Path):
    path = _write(clean_table(), tmp_path / "clean.csv")
    r = CliRunner().invoke(_app(), ["stats", str(path), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert r.exit_code != 0 and "not both" in str(r.exception)


def test_cli_findings_from_a_card(tmp_path: Path):
    """--dataset CARD: the null is read from the card's files with the card's reader settings."""
    table = planted_table()
    pacsv.write_csv(table, tmp_path / "log.tsv", pacsv.WriteOptions(include_header=False, delimiter="\t"))
    cols = ", ".join(f'"{c}"' for c in table.column_names)
    (tmp_path / "log.toml").write_text(f"""name = "log"
[source]
format = "csv"
base = "card"
files = {{ all = "log.tsv" }}
delimiter = "\\t"
header = false
columns = [{cols}]
[[labels]]
name = "click"
""")
    r = CliRunner().invoke(_app(), ["stats", "--dataset", str(tmp_path / "log.toml"), "--no-progress",
                                    "--out", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "s.json").read_text())
    csv_path = _write(table, tmp_path / "log.csv")
    expect = F.analyse(compute(csv_path, label="click", progress=False), csv_path)
    assert {(d["field"], d["kind"]) for d in doc["findings"]} == _kinds(expect)
    # another file of the card's layout: the card's column names still apply to the null's rows
    (tmp_path / "other.tsv").write_bytes((tmp_path / "log.tsv").read_bytes())
    r = CliRunner().invoke(_app(), ["stats", str(tmp_path / "other.tsv"), "--dataset", str(tmp_path / "log.toml"),
                                    "--no-progress", "--out", str(tmp_path / "o.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "o.json").read_text())["findings"] == doc["findings"]


def test_cli_scheduler_address(tmp_path: Path):
    """--scheduler ADDRESS: an existing cluster counts the shards; same JSON as one process."""
    distributed = pytest.importorskip("dask.distributed")
    table = clean_table()
    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(2):
        pacsv.write_csv(table.slice(i * 3000, 3000), shards / f"p{i}.csv")
    runner = CliRunner()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        r = runner.invoke(_app(), ["stats", str(shards), "--label", "click", "--no-progress", "--scheduler",
                                   cl.scheduler_address, "--out", str(tmp_path / "d.json")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(_app(), ["stats", str(shards), "--label", "click", "--no-progress", "--out",
                               str(tmp_path / "one.json")])
    assert r.exit_code == 0, r.output
    d, one = (json.loads((tmp_path / n).read_text()) for n in ("d.json", "one.json"))
    assert d == one


def test_no_signal_against_planted_roles(tmp_path: Path):
    """On the synthetic generator (known roles): no informative or redundant field is called no-signal, and
    most pure-noise fields are (each is with probability ~0.95 under the 19-shuffle test)."""
    from leanrec.data import synthetic

    path = tmp_path / "syn.parquet"
    synthetic.write(path, 50_000, format="parquet")
    roles = synthetic.ground_truth(synthetic.SyntheticConfig())
    found = F.analyse(compute(path, label="click", progress=False), path)
    flagged = {x.field for x in found if x.kind == "no-signal"}
    assert not flagged & set(roles["informative"] + roles["redundant"])
    assert len(flagged & set(roles["noise"])) >= 7, flagged
    assert set(roles["interaction"]) <= flagged  # informative only jointly: why the advice says so
    assert {x.kind for x in found} == {"no-signal"}
