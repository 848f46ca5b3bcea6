"""The native Parquet reader (leanrec_core::parquet: pages decoded in Rust, dictionary pages counted by
index, integers summed exactly) gives exactly what the Arrow path gives (pyarrow record batches, counted
by the Rust accumulators), bit for bit, over random integer and text tables written with every layout pyarrow
offers: row groups, small pages, dictionary on, off and overflowing into plain pages, data page v1 and
v2, each compression; files it cannot count (other types, a brotli page, a bad label, an integer a
float64 cast rejects) go the Arrow way, with the same result or error."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import leanrec.stats as S
import leanrec.stats.counting as counting
from leanrec.errors import DataError

from test_stats_fastpath import assert_same


def compute_both(path: Path, monkeypatch: pytest.MonkeyPatch, **kw):
    """(native report or error text, whether the native reader counted it, Arrow report or error text)."""
    counted: list[bool] = []
    real = counting.count_parquet
    with monkeypatch.context() as m:
        m.setattr(counting, "count_parquet", lambda *a, **k: (lambda acc: counted.append(acc is not None) or acc)(real(*a, **k)))
        try:
            native = S.compute(path, progress=False, **kw)
        except DataError as exc:
            native = str(exc)
    try:
        arrow = S.compute(path, progress=False, reader="arrow", **kw)
    except DataError as exc:
        arrow = str(exc)
    return native, any(counted), arrow


@st.composite
def integer_tables(draw) -> pa.Table:
    n = draw(st.integers(1, 3000))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cols: dict[str, pa.Array] = {
        "label": pa.array(rng.integers(0, 2, n).astype(draw(st.sampled_from(["int64", "int32", "int8"]))))}
    if draw(st.booleans()):
        cols["buy"] = pa.array(rng.integers(0, 2, n).astype(np.int16))
    for i in range(draw(st.integers(1, 4))):
        card = draw(st.sampled_from([1, 2, 7, 300, 5000, 70_000]))
        v = (rng.zipf(1.3, n) % card).astype(np.int64)
        if draw(st.booleans()):
            v -= card // 2  # negative values
        if draw(st.integers(0, 5)) == 0:
            v[rng.integers(0, n)] = draw(st.sampled_from([2**53, -(2**53), 2**40 + 3]))
        mask = rng.random(n) < draw(st.sampled_from([0.0, 0.1, 0.9, 1.0])) if draw(st.booleans()) else None
        dtype = draw(st.sampled_from(["int64", "int32", "int16"]))
        if dtype != "int64":
            info = np.iinfo(dtype)
            v = np.clip(v, info.min, info.max)
        cols[f"c{i}"] = pa.array(v.astype(dtype), mask=mask)
    for i in range(draw(st.integers(0, 2))):   # text columns: Criteo-like hashed ids, words, binary
        card = draw(st.sampled_from([1, 5, 400, 20_000]))
        ids = rng.zipf(1.3, n) % card
        mask = rng.random(n) < draw(st.sampled_from([0.0, 0.2])) if draw(st.booleans()) else None
        kind = draw(st.sampled_from(["hex", "word", "binary"]))
        if kind == "binary":
            cols[f"t{i}"] = pa.array([bytes([int(v) % 256, 0, 255]) * (1 + int(v) % 3) for v in ids], pa.binary(), mask=mask)
        else:
            cols[f"t{i}"] = pa.array([f"{int(v) * 2654435761 % 2**32:08x}" if kind == "hex" else f"wörd{v}" for v in ids],
                                     mask=mask)
    return pa.table(cols)


WRITE_OPTIONS = st.fixed_dictionaries({
    "row_group_size": st.sampled_from([None, 1, 100, 1000]),
    "data_page_size": st.sampled_from([None, 64, 4096]),
    "use_dictionary": st.sampled_from([True, False]),
    "dictionary_pagesize_limit": st.sampled_from([None, 256]),  # small: the chunk falls back to plain pages
    "compression": st.sampled_from(["snappy", "zstd", "gzip", "lz4", "none"]),
    "data_page_version": st.sampled_from(["1.0", "2.0"]),
    "write_statistics": st.booleans(),
})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=integer_tables(), options=WRITE_OPTIONS, all_categorical=st.booleans(), bad_label=st.booleans())
def test_native_parquet_equals_arrow_path(table, options, all_categorical, bad_label, monkeypatch):
    if bad_label:  # not 0/1 in one row: declined, and the Arrow path reports it
        lab = table["label"].to_numpy().copy()
        lab[len(lab) // 2] = 2
        table = table.set_column(0, "label", pa.array(lab))
    labels = ["label", "buy"] if "buy" in table.column_names else ["label"]
    opts = {k: v for k, v in options.items() if v is not None}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.parquet"
        pq.write_table(table, path, **opts)
        native, counted, arrow = compute_both(path, monkeypatch, label=labels, threads=2,
                                              numeric=[] if all_categorical else None)
        spec = counting._parquet_spec(path, dict(labels=labels, fields=None, numeric=[] if all_categorical else None,
                                                 pairs=False, budget=1 << 26, hll_precision=12))
    assert_same(native, arrow)
    numeric_text = any(f in spec.numeric for f in table.column_names if f.startswith("t"))  # parsed: Arrow path
    huge = any(pa.types.is_integer(c.type) and len(c) and c.null_count < len(c)
               and max(abs(int(pa.compute.min(c).as_py())), abs(int(pa.compute.max(c).as_py()))) > 2**53 - 1
               for name, c in zip(table.column_names, table.columns) if name.startswith("c"))
    if not bad_label and not (huge and not all_categorical) and not numeric_text:
        assert counted, "the native reader declined a file it reads"


def test_shards_and_other_files_mix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A folder of shards: integer shards counted natively, a shard it cannot read (brotli) the Arrow way,
    merged into the report the Arrow path gives for the whole folder."""
    rng = np.random.default_rng(3)
    for i, comp in enumerate(["snappy", "brotli", "zstd"]):
        n = 500 + 100 * i
        t = pa.table({"label": rng.integers(0, 2, n), "a": rng.integers(0, 50, n), "b": rng.integers(-9, 9, n)})
        pq.write_table(t, tmp_path / f"part-{i}.parquet", compression=comp, row_group_size=200)
    native, counted, arrow = compute_both(tmp_path, monkeypatch, label="label", format="parquet", threads=2)
    assert counted
    assert_same(native, arrow)
    assert native.rows == 500 + 600 + 700


def test_mean_and_variance_against_numpy(tmp_path: Path):
    rng = np.random.default_rng(5)
    x = rng.integers(-(2**40), 2**40, 20_000)
    pq.write_table(pa.table({"label": rng.integers(0, 2, x.size), "x": x}), tmp_path / "t.parquet",
                   row_group_size=3000, dictionary_pagesize_limit=512)
    f = S.compute(tmp_path / "t.parquet", label="label", progress=False).fields[0]
    assert f["mean"] == pytest.approx(x.mean(), rel=1e-15, abs=1e-3) and f["variance"] == pytest.approx(x.var(), rel=1e-12)
    assert (f["min"], f["max"], f["distinct"]) == (x.min(), x.max(), len(np.unique(x)))


def test_corrupt_file_is_a_data_error_naming_the_file(tmp_path: Path):
    path = tmp_path / "broken.parquet"
    pq.write_table(pa.table({"label": [0, 1] * 50, "a": list(range(100))}), path)
    data = bytearray(path.read_bytes())
    data[20:60] = b"\xff" * 40   # inside the first column chunk's pages
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="broken.parquet"):
        S.compute(path, label="label", progress=False)


def test_progress_bar_knows_parquet_rows(tmp_path: Path):
    from leanrec.stats.progress import parquet_rows, progress_bar

    for i, n in enumerate([300, 450]):
        pq.write_table(pa.table({"label": [0, 1] * (n // 2), "a": list(range(n))}), tmp_path / f"p{i}.parquet",
                       row_group_size=100)
    files = sorted(tmp_path.glob("*.parquet"))
    assert parquet_rows(files, None) == 750
    (tmp_path / "t.csv").write_text("label,a\n0,1\n")
    assert parquet_rows([*files, tmp_path / "t.csv"], None) is None
    (tmp_path / "t.csv").unlink()
    with progress_bar(files, None, "native") as advance:  # advances by rows (the reader reports no bytes)
        advance(100, 0)
    report = S.compute(tmp_path, label="label", format="parquet", progress=True)
    assert report.rows == 750


def test_late_decline_takes_its_progress_back(tmp_path: Path):
    """A label that is not 0/1 in the last row group: the native reader has reported the earlier row groups,
    declines, and the Arrow path reports the error; the progress never counts a row twice."""
    lab = np.zeros(1000, dtype=np.int64)
    lab[::3] = 1
    lab[-1] = 2
    pq.write_table(pa.table({"label": lab, "a": np.arange(1000) % 7}), tmp_path / "t.parquet", row_group_size=100)
    seen: list[int] = []
    counted = counting.count_parquet(tmp_path / "t.parquet", counting._parquet_spec(
        tmp_path / "t.parquet", dict(labels=["label"], fields=None, numeric=None, pairs=False, budget=1 << 26,
                                     hll_precision=12)), 2, lambda rows, nbytes: seen.append(rows))
    assert counted is None and sum(seen) == 0 and max(seen) > 0


def test_empty_and_dictionary_typed_files_go_the_arrow_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pq.write_table(pa.table({"label": pa.array([], pa.int64()), "a": pa.array([], pa.int64())}), tmp_path / "e.parquet")
    assert counting.count_parquet(tmp_path / "e.parquet", counting._parquet_spec(
        tmp_path / "e.parquet", dict(labels=["label"], fields=None, numeric=None, pairs=False, budget=1 << 26,
                                     hll_precision=12)), 2, None) is None
    # an Arrow dictionary of integers: the native reader takes the file only where pyarrow reads the column
    # back as integers, and both paths agree either way
    t = pa.table({"label": [0, 1, 1, 0] * 50, "a": pa.array([3, 5, 3, 9] * 50).dictionary_encode()})
    pq.write_table(t, tmp_path / "d.parquet")
    native, counted, arrow = compute_both(tmp_path / "d.parquet", monkeypatch, label="label")
    assert counted == pa.types.is_integer(pq.ParquetFile(tmp_path / "d.parquet").schema_arrow.field("a").type)
    assert_same(native, arrow)


@pytest.mark.parametrize("version", ["1.0", "2.0"])
@pytest.mark.parametrize("dictionary", [True, False])
def test_required_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str, dictionary: bool):
    """Non-nullable columns: pages without definition levels."""
    rng = np.random.default_rng(11)
    schema = pa.schema([pa.field("label", pa.int32(), nullable=False), pa.field("a", pa.int64(), nullable=False),
                        pa.field("b", pa.int16(), nullable=False)])
    t = pa.table({"label": rng.integers(0, 2, 2000).astype(np.int32), "a": rng.integers(-50, 5000, 2000),
                  "b": rng.integers(0, 3, 2000).astype(np.int16)}, schema=schema)
    pq.write_table(t, tmp_path / "r.parquet", data_page_version=version, use_dictionary=dictionary,
                   data_page_size=512, row_group_size=700)
    native, counted, arrow = compute_both(tmp_path / "r.parquet", monkeypatch, label="label", threads=2)
    assert counted
    assert_same(native, arrow)
