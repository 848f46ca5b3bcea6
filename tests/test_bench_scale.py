"""The scale benchmark's raw log (benchmarks/bench_scale.py): Criteo schema, the generator's rows, the card."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
from hypothesis import given, settings, strategies as st

from leanrec.data import load_dataset, synthetic

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scale.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_scale", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bs = _load_script()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=200), st.integers(0, 25))
def test_hex8_is_injective_and_criteo_shaped(values, field):
    out = bs.hex8_array(np.array(values, dtype=np.uint64), field).to_pylist()
    assert all(len(v) == 8 and set(v) <= set("0123456789abcdef") for v in out)
    assert len(set(out)) == len(set(values))            # distinct ids stay distinct, equal ids stay equal
    assert [out[values.index(v)] for v in values] == out


def test_tsv_holds_the_generators_rows_in_criteo_schema(tmp_path):
    rows, max_card = 2000, 300
    meta = bs.ensure_data(tmp_path, rows, max_card, seed=3)
    tsv = Path(meta["tsv"])
    assert not tsv.read_text().startswith("label")      # no header
    table = pcsv.read_csv(tsv, read_options=pcsv.ReadOptions(column_names=bs.COLUMNS),
                          parse_options=pcsv.ParseOptions(delimiter="\t", quote_char=False),
                          convert_options=pcsv.ConvertOptions(column_types={c: pa.string() for c in bs.COLUMNS}))
    assert table.num_rows == rows and table.column_names == bs.COLUMNS
    # oracle: the synthetic generator's own rows for the same options
    cfg = synthetic.SyntheticConfig(n_rows=rows, n_fields=39, max_cardinality=max_card, seed=3)
    gen, gt = synthetic.generate(cfg)
    ints, cats, _ = bs.field_layout(max_card, 3)
    assert table.column("label").to_pylist() == [str(v) for v in gen.column("click").to_pylist()]
    for name, g in zip(bs.INT_COLS, ints):
        assert table.column(name).to_pylist() == [str(v) for v in gen.column(g + 1).to_pylist()]
    for name, g in zip(bs.CAT_COLS, cats):
        hashed = np.array(table.column(name).to_pylist())
        ids = gen.column(g + 1).to_numpy()
        # same partition of the rows: equal ids <-> equal strings (a bijection between the two)
        pairs = set(zip(ids.tolist(), hashed.tolist()))
        assert len(pairs) == len(set(ids.tolist())) == len(set(hashed.tolist()))
    cards = [gt["cardinality"][f"C{g + 1}"] for g in ints + cats]
    assert max(cards) == max_card and cards[:13] == sorted(cards)[:13]   # I1..I13 are the smallest fields
    # the card written next to the file prepares it: 39 fields, the label, every row in a split
    ds = load_dataset(meta["card"], cache_dir=tmp_path / "cache", progress=False)
    assert [f.name for f in ds.fields] == bs.INT_COLS + bs.CAT_COLS
    assert len(ds.train.y) + len(ds.valid.y) + len(ds.test.y) == rows
    assert all(f.cardinality <= max_card for f in ds.fields)


def test_cached_file_is_reused(tmp_path):
    first = bs.ensure_data(tmp_path, 500, 50, seed=0)
    mtime = Path(first["tsv"]).stat().st_mtime_ns
    again = bs.ensure_data(tmp_path, 500, 50, seed=0)
    assert again["cached"] and not first["cached"] and Path(again["tsv"]).stat().st_mtime_ns == mtime
