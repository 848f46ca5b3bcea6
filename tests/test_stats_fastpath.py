"""The file fast path (Arrow batches counted as they are: integer and dictionary columns into dense tables,
numeric fields keyed by float value in Rust) gives exactly what the general path (validate and cast every
batch in Python, then count keys) gives, on random tables, for Parquet and Arrow IPC files."""
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


def report_or_error(path: Path, general: bool, monkeypatch: pytest.MonkeyPatch, **kw):
    """compute()'s report (or its DataError message), on the fast path or forced onto the general path."""
    with monkeypatch.context() as m:
        if general:
            m.setattr(counting, "takes_as_is", lambda schema, spec: False)
        calls = []
        real = S.TableAccumulator.count_arrow
        m.setattr(S.TableAccumulator, "count_arrow", lambda self, b: calls.append(1) or real(self, b))
        try:
            rep = S.compute(path, progress=False, **kw)
        except DataError as exc:
            return str(exc), calls
        return rep, calls


def assert_same(a, b) -> None:
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    assert a.rows == b.rows and a.bad_rows == b.bad_rows and a.label_positives == b.label_positives
    for fa, fb in zip(a.fields, b.fields, strict=True):
        assert fa.keys() == fb.keys(), fa["name"]
        for k in fa:
            va, vb = fa[k], fb[k]
            same = va == vb or (isinstance(va, float) and np.isnan(va) and np.isnan(vb))
            assert same, (fa["name"], k, va, vb)  # bit for bit, floats included
    assert a.pairs == b.pairs
    assert a.top.keys() == b.top.keys()
    for f in a.top:
        ta, tb = a.top[f], b.top[f]
        assert [(str(v), c) for v, c in ta] == [(str(v), c) for v, c in tb], f


@st.composite
def tables(draw) -> tuple[pa.Table, int]:
    n = draw(st.integers(1, 400))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)

    def nulls(p: float) -> np.ndarray | None:
        return (rng.random(n) < p) if draw(st.booleans()) else None

    card = draw(st.sampled_from([2, 7, 300, 70_000]))
    cols: dict[str, pa.Array] = {}
    cols["label"] = pa.array(rng.integers(0, 2, n).astype(draw(st.sampled_from(["int64", "int8", "float64"]))))
    if draw(st.booleans()):
        cols["buy"] = pa.array(rng.random(n) < 0.3)  # a second label, boolean
    ints = rng.integers(0, card, n)
    if draw(st.booleans()):
        ints[rng.integers(0, n)] = -draw(st.integers(1, 5))  # a negative value
    cols["i64"] = pa.array(ints, mask=nulls(0.2))
    cols["i32"] = pa.array(rng.integers(0, card, n).astype(np.int32), mask=nulls(0.1))
    cols["u8"] = pa.array(rng.integers(0, 256, n).astype(np.uint8))
    f = rng.integers(0, card, n).astype(np.float64)
    f[rng.random(n) < 0.1] = np.nan
    if draw(st.booleans()):
        f[rng.random(n) < 0.2] += 0.5  # non-integer values
    f[rng.random(n) < 0.05] = -0.0
    cols["f64"] = pa.array(f, mask=nulls(0.1))
    words = pa.array([f"w{i}" for i in range(draw(st.integers(1, 50)))])
    idx = pa.array(rng.integers(0, len(words), n).astype(np.int32), mask=nulls(0.1))
    cols["dict"] = pa.DictionaryArray.from_arrays(idx, words)
    cols["s"] = pa.array([f"s{v}" for v in rng.integers(0, 20, n)], mask=nulls(0.1))
    cols["flag"] = pa.array(rng.random(n) < 0.5)
    if draw(st.integers(0, 9)) == 0:  # an integer a float64 cast rejects: both paths report it
        big = rng.integers(0, card, n)
        big[rng.integers(0, n)] = 2**53 + 1
        cols["big"] = pa.array(big)
    return pa.table(cols), draw(st.sampled_from([None, 1, 7, 64]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=tables(), fmt=st.sampled_from(["parquet", "ipc"]), all_categorical=st.booleans(),
       skip=st.booleans(), bad_label=st.booleans(), pairs=st.booleans())
def test_fast_path_equals_general_path(data, fmt, all_categorical, skip, bad_label, pairs,
                                       monkeypatch: pytest.MonkeyPatch):
    table, batch_rows = data
    if bad_label:  # a label that is not 0/1 in one row: that batch goes the general way on both
        lab = table["label"].to_numpy().copy()
        lab[len(lab) // 2] = 2
        table = table.set_column(0, "label", pa.array(lab))
    labels = ["label", "buy"] if "buy" in table.column_names else ["label"]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"t.{'parquet' if fmt == 'parquet' else 'arrow'}"
        if fmt == "parquet":
            pq.write_table(table, path, row_group_size=max(1, table.num_rows // 3))
        else:
            with pa.ipc.new_file(path, table.schema) as w:
                for b in table.to_batches(max_chunksize=max(1, table.num_rows // 2)):
                    w.write_batch(b)
        kw = dict(label=labels, batch_rows=batch_rows, on_bad_rows="skip" if skip else "error",
                  numeric=[] if all_categorical else None, pairs=[("i64", "f64"), ("dict", "i32")] if pairs else False,
                  threads=2)
        fast, calls = report_or_error(path, False, monkeypatch, **kw)
        general, _ = report_or_error(path, True, monkeypatch, **kw)
    assert calls, "the fast path was not tried"
    assert_same(fast, general)


def test_fast_path_counts_numeric_integers_without_casting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Typed integer columns of a Parquet file take the fast path (no batch goes through validate.prepare)
    and the result matches numpy (mean, variance, distinct) and the general path."""
    rng = np.random.default_rng(1)
    n = 50_000
    x = rng.zipf(1.3, n) % 5000
    t = pa.table({"label": rng.integers(0, 2, n), "x": x})
    pq.write_table(t, tmp_path / "t.parquet")
    prepared = []
    real = counting.prepare
    monkeypatch.setattr(counting, "prepare", lambda *a: prepared.append(1) or real(*a))
    rep = S.compute(tmp_path / "t.parquet", progress=False)
    assert not prepared
    f = rep.field("x")
    assert f["kind"] == "numeric" and f["distinct"] == len(np.unique(x))
    assert f["mean"] == pytest.approx(x.mean(), rel=1e-12) and f["variance"] == pytest.approx(x.var(), rel=1e-12)
    monkeypatch.setattr(counting, "takes_as_is", lambda schema, spec: False)
    assert_same(rep, S.compute(tmp_path / "t.parquet", progress=False))


def test_prefetching_reader_thread():
    """The reader thread hands items over in order, raises the producer's errors in the consumer, and stops
    (thread gone, at most `depth` + 2 items produced) when the consumer closes early."""
    import threading

    from leanrec.prefetch import prefetched

    def failing():
        yield 1
        yield 2
        raise DataError("boom")
    got = []
    with pytest.raises(DataError, match="boom"):
        for x in prefetched(failing()):
            got.append(x)
    assert got == [1, 2]
    produced: list[int] = []

    def many():
        for i in range(1000):
            produced.append(i)
            yield i
    it = prefetched(many(), depth=2)
    assert [next(it), next(it)] == [0, 1]
    it.close()
    assert not any(t.name == "leanrec-prefetch" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 2 + 2 + 1
