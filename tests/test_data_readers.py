"""Readers: every format on synthetic files with planted malformed rows, and on the real samples."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import CARDS, shared_data

from leanrec.data import load_card, load_dataset
from leanrec.errors import DataError

CSV_CARD = """
name = "t"
fields = ["a", {{ name = "n", kind = "numeric" }}]
[source]
base = "card"
files = {{ all = "data.csv" }}
{source}
[[labels]]
name = "label"
{labels}
"""


def _prepare(tmp_path, text: str, *, source: str = "", labels: str = "", overrides=None, name="data.csv"):
    (tmp_path / name).write_text(text)
    card = tmp_path / "card.toml"
    card.write_text(CSV_CARD.format(source=source, labels=labels))
    return load_dataset(card, overrides=overrides, cache_dir=tmp_path / "cache", progress=False)


def _rows(n: int, bad: dict[int, str] | None = None) -> str:
    """A valid CSV body of n rows (both classes present in any split), with row k replaced by bad[k]."""
    lines = ["label,a,n"] + [f"{i % 2},v{i % 7},{i % 5}" for i in range(n)]
    for k, row in (bad or {}).items():
        lines[1 + k] = row
    return "\n".join(lines) + "\n"


def test_valid_csv_prepares(tmp_path):
    ds = _prepare(tmp_path, _rows(200))
    assert [f.name for f in ds.fields] == ["a", "n"]
    assert sum(len(s) for s in ds.splits.values()) == 200


def test_header_with_byte_order_mark(tmp_path):
    ds = _prepare(tmp_path, "\ufeff" + _rows(200))
    assert [f.name for f in ds.fields] == ["a", "n"] and sum(len(s) for s in ds.splits.values()) == 200


def test_wrong_column_count_names_file_and_line(tmp_path):
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, _rows(200, {57: "1,v1"}))
    assert e.value.line == 59  # header is line 1, row 0 is line 2
    assert e.value.path.endswith("data.csv") and "expected 3 columns, found 2" in str(e.value)


def test_unparsable_number_names_line_and_column(tmp_path):
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, _rows(200, {120: "0,v1,12x"}))
    assert (e.value.line, e.value.column) == (122, "n")
    assert "'12x'" in str(e.value)


def test_missing_label_column(tmp_path):
    text = "\n".join(["lbl,a,n"] + [f"{i % 2},x,{i}" for i in range(50)]) + "\n"
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, text)
    assert e.value.column == "label" and e.value.line == 1 and "missing column" in str(e.value)


def test_empty_file_and_header_only(tmp_path):
    with pytest.raises(DataError, match="empty file"):
        _prepare(tmp_path, "")
    with pytest.raises(DataError, match="no data rows"):
        _prepare(tmp_path, "label,a,n\n")


def test_non_binary_label_and_threshold(tmp_path):
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, _rows(100, {10: "3,v1,1"}))
    assert (e.value.line, e.value.column) == (12, "label") and "0 or 1" in str(e.value)
    text = "\n".join(["label,a,n"] + [f"{1 + i % 5},v{i % 3},{i}" for i in range(100)]) + "\n"
    ds = _prepare(tmp_path, text, labels="threshold = 4")
    y = np.concatenate([s.y[:, 0] for s in ds.splits.values()])
    assert y.mean() == pytest.approx(40 / 100)  # ratings 4 and 5 out of 1..5


def test_split_with_one_class(tmp_path):
    text = "\n".join(["label,a,n"] + [f"{int(i == 0)},v,{i}" for i in range(100)]) + "\n"
    with pytest.raises(DataError, match="only one class"):
        _prepare(tmp_path, text)


def test_blank_line_is_reported_at_its_line(tmp_path):
    body = _rows(60).split("\n")
    body.insert(31, "")  # becomes line 32
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, "\n".join(body))
    assert e.value.line == 32


def test_tsv_without_header_and_missing_values(tmp_path):
    text = "".join(f"{i % 2}\t{'' if i % 10 == 0 else 'v' + str(i % 4)}\t{'' if i % 3 == 0 else i}\n"
                   for i in range(300))
    ds = _prepare(tmp_path, text, source='delimiter = "\\t"\nheader = false\ncolumns = ["label", "a", "n"]')
    X = np.concatenate([s.X for s in ds.splits.values()])
    assert (X[:, 0] == 0).sum() == 30 and (X[:, 1] == 0).sum() == 100  # code 0 = missing


def test_libfm_reader_and_bad_row(tmp_path):
    rows = [f"{'1' if i % 3 == 0 else '-1'} {i % 11}:1 {100 + i % 5}:1" for i in range(300)]
    (tmp_path / "d.libfm").write_text("\n".join(rows) + "\n")
    card = tmp_path / "card.toml"
    card.write_text('name = "l"\nfields = ["u", "i"]\n[source]\nformat = "libfm"\nbase = "card"\n'
                    'files = { all = "d.libfm" }\n[[labels]]\nname = "label"\n')
    ds = load_dataset(card, cache_dir=tmp_path / "c", progress=False)
    assert [f.cardinality for f in ds.fields] == [11, 5]
    assert np.concatenate([s.y for s in ds.splits.values()]).mean() == pytest.approx(100 / 300)
    rows[40] = "1 3:1"
    (tmp_path / "d.libfm").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as e:
        load_dataset(card, cache_dir=tmp_path / "c", progress=False)
    assert e.value.line == 41


def test_parquet_reader(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 400
    pq.write_table(pa.table({"label": np.arange(n) % 2, "a": np.arange(n) % 9, "n": np.arange(n) * 1.5}),
                   tmp_path / "d.parquet")
    card = tmp_path / "card.toml"
    card.write_text(CSV_CARD.format(source='format = "parquet"', labels="").replace("data.csv", "d.parquet"))
    ds = load_dataset(card, cache_dir=tmp_path / "c", progress=False)
    assert ds.fields[0].cardinality == 9 and ds.fields[1].kind == "numeric"


def test_join_duplicate_key_and_derive_bad_timestamp(tmp_path):
    (tmp_path / "main.csv").write_text("".join(f"{i % 2},{i % 5},141021{i % 24:02d}\n" for i in range(200)))
    (tmp_path / "users.csv").write_text("u,age\n0,10\n1,20\n2,30\n3,40\n4,50\n")
    card = tmp_path / "card.toml"
    body = """name = "j"
fields = ["u", "age", "weekday", "hour"]
[source]
base = "card"
files = { all = "main.csv" }
header = false
columns = ["label", "u", "hour"]
[[source.join]]
file = "users.csv"
on = "u"
columns = ["u", "age"]
[[source.derive]]
name = "weekday"
from = "hour"
transform = "yymmddhh_weekday"
[[source.derive]]
name = "hour"
from = "hour"
transform = "yymmddhh_hour"
[[labels]]
name = "label"
"""
    card.write_text(body)
    ds = load_dataset(card, cache_dir=tmp_path / "c", progress=False)
    info = {f.name: f.cardinality for f in ds.fields}
    assert info == {"u": 5, "age": 5, "weekday": 1, "hour": 24}  # 2014-10-21 is a single weekday
    (tmp_path / "users.csv").write_text("u,age\n0,10\n1,20\n1,25\n")
    with pytest.raises(DataError) as e:
        load_dataset(card, cache_dir=tmp_path / "c", progress=False)
    assert e.value.line == 4 and e.value.column == "u" and "duplicate" in str(e.value)
    (tmp_path / "users.csv").write_text("u,age\n0,10\n1,20\n2,30\n3,40\n4,50\n")
    (tmp_path / "main.csv").write_text("".join(f"{i % 2},{i % 5},{'1410xx21' if i == 7 else '14102100'}\n"
                                               for i in range(200)))
    with pytest.raises(DataError) as e:
        load_dataset(card, cache_dir=tmp_path / "c", progress=False)
    assert (e.value.line, e.value.column) == (8, "hour")


# ---- the real samples (skipped when ../shared/data is absent) -------------------------------------------------
REAL = {  # card -> (sample file, rows, positive rate) from the counts documented in the sample's SOURCE.md
    "criteo": ("criteo_kaggle_head10k/criteo_head10k.txt", 10_000, 2_182 / 10_000),
    "avazu": ("avazu_head10k/avazu_head10k.csv", 9_999, 1_706 / 9_999),
    "frappe": ("frappe_nfm_partial/valid.csv", 57_722, 19_063 / 57_722),
    "frappe-libfm": ("frappe_nfm_partial/frappe.validation.libfm", 57_722, 19_063 / 57_722),
    "movielens-100k": ("movielens_100k/u.data", 100_000, (34_174 + 21_201) / 100_000),
    "ipinyou": ("ipinyou_sample/train.csv", 26_773 + 21_150, (255 + 50) / (26_773 + 21_150)),
}


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_sample(name, tmp_path, monkeypatch):
    rel, rows, rate = REAL[name]
    path = shared_data(rel)
    monkeypatch.setenv("LEANREC_DATA_DIR", str(path.parents[1]))
    ds = load_dataset(load_card(CARDS / f"{name}.toml"), cache_dir=tmp_path, progress=False)
    y = np.concatenate([s.y for s in ds.splits.values()]).astype(np.float64)
    assert len(y) == rows
    assert y.sum() / len(y) == pytest.approx(rate, abs=1e-7)
    for split in ds.splits.values():
        assert split.X.dtype == np.int32 and split.X.flags.c_contiguous
        assert ((split.X >= 0) & (split.X < np.array([f.vocab_size for f in ds.fields]))).all()


@pytest.mark.realdata
def test_real_details(tmp_path, monkeypatch):
    monkeypatch.setenv("LEANREC_DATA_DIR", str(shared_data("frappe_nfm_partial").parent))
    csv = load_dataset(load_card(CARDS / "frappe.toml"), cache_dir=tmp_path, progress=False)
    libfm = load_dataset(load_card(CARDS / "frappe-libfm.toml"), cache_dir=tmp_path, progress=False)
    assert np.array_equal(csv.test.X, libfm.test.X)  # the two Frappe encodings hold the same rows
    ml = load_dataset(load_card(CARDS / "movielens-100k.toml"), cache_dir=tmp_path, progress=False)
    assert ml.train.group is not None and len(np.unique(np.concatenate([s.group for s in ml.splits.values()]))) == 943
    assert {f.name: f.cardinality for f in ml.fields}["occupation"] == 21
    ml_time = load_dataset(load_card(CARDS / "movielens-100k.toml"), overrides={"split": "time"},
                           cache_dir=tmp_path, progress=False)
    assert ml_time.cache_key != ml.cache_key
    crit = load_dataset(load_card(CARDS / "criteo.toml"), cache_dir=tmp_path, progress=False)
    c9 = crit.field_names.index("C9")
    assert crit.fields[c9].cardinality <= 3  # SOURCE.md: C9 has 3 distinct values in the 10k rows
    iy = load_dataset(load_card(CARDS / "ipinyou.toml"), cache_dir=tmp_path, progress=False)
    assert len(iy.test) == 21_150 and len(iy.train) + len(iy.valid) == 26_773


def test_quoted_multiline_values_and_physical_lines(tmp_path, monkeypatch):
    """Quoted values holding newlines are single values (also across read blocks); errors after them name the
    physical line, which is ahead of Arrow's record number by the extra lines."""
    from leanrec.data import readers
    from leanrec.data.preprocess import PrepConfig, split_indices

    monkeypatch.setattr(readers, "BLOCK_BYTES", 64)  # multi-line values straddle block boundaries
    lines = ["label,a,n"] + [f"{i % 2},v{i % 7},{i % 5}" for i in range(200)]
    multi = range(6, 48, 7)  # rows 5, 12, ..., 40 each span two physical lines
    for k in multi:
        lines[k] = f'1,"two\nline, {k}",3'
    ds = _prepare(tmp_path, "\n".join(lines) + "\n")
    assert sum(len(s) for s in ds.splits.values()) == 200
    train = set(split_indices(200, PrepConfig(), 0)["train"].tolist())
    in_vocab = set(ds.vocab("a")["value"].to_pylist())
    assert [f"two\nline, {k}" in in_vocab for k in multi] == [k - 1 in train for k in multi]
    assert any(k - 1 in train for k in multi)
    lines[51] = "0,v1,12x"  # row 50: record 52, physical line 52 + len(multi)
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, "\n".join(lines) + "\n")
    assert (e.value.line, e.value.column) == (52 + len(multi), "n")
    lines[51] = "0,v1"
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, "\n".join(lines) + "\n")
    assert e.value.line == 52 + len(multi) and "expected 3 columns, found 2" in str(e.value)
