"""Streaming engine: formats, bad rows, merge/batch/thread independence, outputs, CLI, Dask shards."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import leanrec.stats as S
from leanrec.errors import DataError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CRITEO = DATA / "criteo_kaggle_head10k" / "criteo_head10k.txt"
NAMES = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
KEYS = ("rows", "nulls", "distinct", "hll", "entropy", "mi_label", "nmi_label", "approx", "count", "mean",
        "variance", "min", "max", "zero_share")


def same_fields(a: S.StatsReport, b: S.StatsReport, rel: float = 0.0) -> None:
    assert [f["name"] for f in a.fields] == [f["name"] for f in b.fields]
    for fa, fb in zip(a.fields, b.fields):
        for k in KEYS:
            if k in fa or k in fb:
                va, vb = fa.get(k), fb.get(k)
                if k in ("mean", "variance") and rel:
                    assert va == pytest.approx(vb, rel=rel), (fa["name"], k)
                else:
                    assert va == vb, (fa["name"], k, va, vb)


@pytest.fixture()
def small_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 3000
    t = pa.table({"click": (rng.random(n) < 0.3).astype(np.int64), "buy": (rng.random(n) < 0.1).astype(np.int64),
                  "site": [f"s{v}" for v in rng.zipf(1.5, n) % 50], "dev": rng.integers(0, 7, n),
                  "price": np.where(rng.random(n) < 0.1, np.nan, rng.normal(5, 2, n))})
    p = tmp_path / "log.csv"
    pacsv.write_csv(t, p)
    return p


def test_csv_parquet_ipc_dir_agree(small_csv: Path, tmp_path: Path):
    r_csv = S.compute(small_csv, label=["click", "buy"], progress=False)
    table = pacsv.read_csv(small_csv)
    pq.write_table(table, tmp_path / "log.parquet")
    with pa.ipc.new_file(tmp_path / "log.arrow", table.schema) as w:
        w.write_table(table)
    shards = tmp_path / "shards"
    shards.mkdir()
    pq.write_table(table.slice(0, 1000), shards / "a.parquet")
    pq.write_table(table.slice(1000), shards / "b.parquet")
    for other in (tmp_path / "log.parquet", tmp_path / "log.arrow", shards):
        same_fields(r_csv, S.compute(other, label=["click", "buy"], progress=False), rel=1e-12)
    f = r_csv.field("site")
    assert f["kind"] == "categorical" and f["distinct"] == len(set(table["site"].to_pylist()))
    assert "cmi_buy_given_click" in f
    price = r_csv.field("price")
    vals = table["price"].to_numpy()
    assert price["nulls"] == np.isnan(vals).sum()
    assert price["variance"] == pytest.approx(np.nanvar(vals), rel=1e-12)


def test_independent_of_batch_size_and_threads(small_csv: Path):
    base = S.compute(small_csv, label="click", progress=False, threads=1)
    for rows, threads in [(1, 2), (7, 1), (500, 2), (None, 2)]:
        other = S.compute(small_csv, label="click", progress=False, batch_rows=rows, threads=threads)
        same_fields(base, other, rel=1e-12)
    assert base.top == other.top


def test_table_accumulator_bytes_merge(small_csv: Path, tmp_path: Path):
    from leanrec.stats.counting import count_files
    from leanrec.stats.spec import infer_spec

    table = pacsv.read_csv(small_csv)
    pacsv.write_csv(table.slice(0, 1234), tmp_path / "a.csv")
    pacsv.write_csv(table.slice(1234), tmp_path / "b.csv")
    spec = infer_spec(table.to_batches()[0], labels=["click"], fields=None, numeric=None, pairs=[("site", "dev")],
                      budget=1 << 30, hll_precision=12, path="x")
    kw = dict(fmt=None, names=None, spec=spec, spec_args={}, threads=None, on_bad_rows="error")
    a = count_files([tmp_path / "a.csv"], **kw)
    b = count_files([tmp_path / "b.csv"], **kw)
    a = S.TableAccumulator.from_bytes(a.to_bytes())
    a.merge(S.TableAccumulator.from_bytes(b.to_bytes()))
    one = count_files([small_csv], **kw)
    ra, r1 = a.report(), one.report()
    same_fields(ra, r1, rel=1e-12)
    assert ra.pairs == r1.pairs and ra.top == r1.top


BAD = {
    "field count": ("label,a,b\n1,x,2\n0,y\n1,z,3\n0,w,5\n", "line 3", None),
    "numeric": ("label,a,b\n1,x,2\n0,y,3\n1,z,oops\n0,w,5\n", "line 4", "column b"),
    "label": ("label,a,b\n1,x,2\n2,y,3\n0,w,5\n", "line 3", "column label"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_rows_named_or_skipped(case: str, tmp_path: Path):
    text, line, column = BAD[case]
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(DataError) as err:
        S.compute(p, progress=False, numeric=["b"])
    msg = str(err.value)
    assert str(p) in msg and line in msg and (column is None or column in msg), msg
    r = S.compute(p, progress=False, numeric=["b"], on_bad_rows="skip")
    assert r.bad_rows == 1 and r.rows == text.count("\n") - 2


def test_empty_and_single_class(tmp_path: Path):
    (tmp_path / "empty.csv").write_text("label,a\n")
    with pytest.raises(DataError, match="no rows"):
        S.compute(tmp_path / "empty.csv", progress=False)
    (tmp_path / "one.csv").write_text("label,a\n0,x\n0,y\n")
    with pytest.raises(DataError, match="single class"):
        S.compute(tmp_path / "one.csv", progress=False)
    with pytest.raises(DataError, match="no such file"):
        S.compute(tmp_path / "missing.csv", progress=False)


def test_outputs_atomic_and_plot(small_csv: Path, tmp_path: Path):
    r = S.compute(small_csv, label="click", pairs=True, progress=False)
    assert len(r.pairs) == 6  # 4 fields besides click (buy counts as a field here)
    data = json.loads(r.to_json(tmp_path / "o.json").read_text())
    assert data["rows"] == 3000 and {f["name"] for f in data["fields"]} == {"buy", "site", "dev", "price"}
    assert pacsv.read_csv(r.to_csv(tmp_path / "o.csv")).num_rows == 4
    assert pq.read_table(r.write(tmp_path / "o.parquet")).num_rows == 4
    png = r.plot(tmp_path / "mi.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temp files left


def test_cli(small_csv: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from leanrec.cli import app

    res = CliRunner().invoke(app, ["stats", str(small_csv), "--label", "click", "--out", str(tmp_path / "s.json"),
                                   "--plot", str(tmp_path / "s.png"), "--no-progress", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "site" in res.output and (tmp_path / "s.json").exists() and (tmp_path / "s.png").exists()


@pytest.mark.realdata
@pytest.mark.skipif(not CRITEO.exists(), reason="../shared/data is absent")
def test_criteo_tsv_equals_parquet_and_sklearn(tmp_path: Path):
    from sklearn.metrics import mutual_info_score

    r_tsv = S.compute(CRITEO, format="tsv", names=NAMES, progress=False)
    table = pacsv.read_csv(CRITEO, read_options=pacsv.ReadOptions(column_names=NAMES),
                           parse_options=pacsv.ParseOptions(delimiter="\t"),
                           convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    pq.write_table(table, tmp_path / "criteo.parquet")  # tmp only: never copied into the repo
    r_pq = S.compute(tmp_path / "criteo.parquet", progress=False)
    same_fields(r_tsv, r_pq, rel=1e-12)
    y = table["label"].to_numpy()
    for name in ("C1", "C9", "C20", "I5"):
        col = table[name].combine_chunks()
        codes = np.asarray(pa.array(col.cast(pa.string()).fill_null("<NA>")).dictionary_encode().indices)
        ref = mutual_info_score(codes, y)
        got = r_tsv.field(name)["mi_label"]
        assert abs(got - ref) <= max(1e-12, 1e-9 * ref), name
        assert r_tsv.field(name)["distinct"] == len(set(col.drop_null().to_pylist()))


def test_dask_shards_equal_one_pass(small_csv: Path, tmp_path: Path):
    distributed = pytest.importorskip("dask.distributed")
    table = pacsv.read_csv(small_csv)
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, start in enumerate(range(0, 3000, 1000)):
        pq.write_table(table.slice(start, 1000), shards / f"part{i}.parquet")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            distributed.Client(cl) as client:
        r = S.compute_distributed(shards, client=client, label="click")
        card = _tsv_card(small_csv, tmp_path)[0]
        from_card = S.compute_distributed(dataset=card, client=client, estimator="miller-madow")
    same_fields(r, S.compute(shards, label="click", progress=False), rel=1e-12)
    same_fields(from_card, S.compute(dataset=card, progress=False, estimator="miller-madow"), rel=1e-12)


def _tsv_card(small_csv: Path, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A header-less TSV copy of small_csv and a dataset card describing it: (card, tsv, columns)."""
    table = pacsv.read_csv(small_csv)
    tsv = tmp_path / "log.tsv"
    cols = ["click", "buy", "site", "dev", "price"]
    pacsv.write_csv(table.select(cols), tsv, pacsv.WriteOptions(include_header=False, delimiter="\t"))
    card = tmp_path / "log.toml"
    card.write_text(f"""name = "log"
fields = ["site", {{ name = "dev", kind = "numeric" }}, "price"]
[source]
format = "csv"
base = "card"
files = {{ all = "log.tsv" }}
delimiter = "\\t"
header = false
columns = {cols!r}
[[labels]]
name = "click"
""".replace("'", '"'))
    return card, tsv, cols


def test_dataset_card_configures_reader(small_csv: Path, tmp_path: Path):
    """A card gives format, header-less column names, labels, fields and numeric kinds (no sniffing)."""
    from leanrec.errors import ConfigError

    card, tsv, cols = _tsv_card(small_csv, tmp_path)
    got = S.compute(dataset=card, progress=False)
    want = S.compute(tsv, format="tsv", names=cols, label="click", fields=["site", "dev", "price"],
                     numeric=["dev"], progress=False)
    same_fields(got, want)
    assert got.field("dev")["kind"] == "numeric" and got.field("price")["kind"] == "categorical"
    card.write_text(card.read_text().replace('name = "click"', 'name = "click"\nthreshold = 0.5'))
    with pytest.raises(ConfigError, match="thresholded"):
        S.compute(dataset=card, progress=False)


@pytest.mark.realdata
@pytest.mark.skipif(not CRITEO.exists(), reason="../shared/data is absent")
def test_cli_dataset_criteo(tmp_path: Path):
    from typer.testing import CliRunner

    from leanrec.cli import app

    res = CliRunner().invoke(app, ["stats", "--dataset", "criteo", "--out", str(tmp_path / "s.json"),
                                   "--no-progress", "--threads", "1"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads((tmp_path / "s.json").read_text())["fields"]}
    want = S.compute(CRITEO, format="tsv", names=NAMES, numeric=NAMES[1:14], threads=1, progress=False)
    assert len(rows) == 39 and rows["I5"]["kind"] == "numeric" and rows["C1"]["kind"] == "categorical"
    for f in want.fields:
        assert rows[f["name"]]["mi_label"] == f["mi_label"] and rows[f["name"]]["distinct"] == f["distinct"]


def test_streaming_estimator_matches_array_api(small_csv: Path):
    """compute(..., estimator=...) reports the same MI as the array API with that estimator."""
    table = pacsv.read_csv(small_csv)
    site = np.unique(np.array(table["site"].to_pylist()), return_inverse=True)[1]
    click = table["click"].to_numpy()
    for est in ("plugin", "miller-madow"):
        rep = S.compute(small_csv, label=["click"], estimator=est, progress=False)
        assert rep.field("site")["mi_click"] == pytest.approx(S.mutual_info(site, click, estimator=est),
                                                               rel=1e-9, abs=1e-12)
    plug = S.compute(small_csv, label=["click"], progress=False).field("site")["mi_click"]
    mm = S.compute(small_csv, label=["click"], estimator="miller-madow", progress=False).field("site")["mi_click"]
    assert mm < plug
