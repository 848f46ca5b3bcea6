"""Streaming preparation: many tiny batches (re-read between passes) give exactly the same cache as one batch,
and both agree with a direct in-memory computation of the documented encoding."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from leanrec.data import dataset as dataset_mod
from leanrec.data import load_dataset, preprocess, readers
from leanrec.data.preprocess import PrepConfig, build_vocab, encode, split_indices

N = 2000
CARD = """name = "s"
fields = ["u", "a", {{ name = "n", kind = "numeric" }}, {{ name = "q", kind = "numeric", bucketing = "quantile" }}]
group = "u"
time = "t"
[source]
format = "{fmt}"
base = "card"
files = {files}
[[labels]]
name = "label"
"""


def _table(n: int = N, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    a = rng.zipf(1.5, n) % 60
    return pa.table({
        "label": (rng.random(n) < 0.2 + 0.02 * (a % 10)).astype(np.int64).astype(str),
        "u": pa.array([f"u{v}" for v in rng.integers(0, 150, n)]),
        "a": pa.array([None if v == 7 else f"a{v}" for v in a]),
        "n": pa.array([None if v < 0 else str(v) for v in rng.integers(-5, 400, n)]),
        "q": pa.array([f"{v:.3f}" for v in rng.normal(size=n)]),
        "t": pa.array([str(v) for v in rng.permutation(n) + 10_000]),
    })


def _write(tmp_path, fmt: str, files: dict[str, pa.Table]):
    spec = []
    for part, t in files.items():
        name = f"{part}.{fmt}"
        if fmt == "csv":
            pcsv.write_csv(t, tmp_path / name, write_options=pcsv.WriteOptions(quoting_style="needed"))
        else:
            pq.write_table(t, tmp_path / name, row_group_size=500)
        spec.append(f'{part} = "{name}"')
    (tmp_path / "card.toml").write_text(CARD.format(fmt=fmt, files="{ " + ", ".join(spec) + " }"))
    return tmp_path / "card.toml"


@pytest.fixture()
def tiny_batches(monkeypatch):
    """Force the streaming path: ~20-row CSV blocks / 37-row Parquet batches, re-read every pass, tiny chunks."""
    def apply():
        monkeypatch.setattr(readers, "BLOCK_BYTES", 700)
        monkeypatch.setattr(readers, "BATCH_ROWS", 37)
        monkeypatch.setattr(dataset_mod, "REPLAY_BYTES", 0)
        monkeypatch.setattr(dataset_mod, "CROSS_CHUNK_ROWS", 101)
        monkeypatch.setattr(preprocess.ValueCounter, "MERGE_EVERY", 2)
        seen = []
        real = dataset_mod.iter_source

        def counting(*a, **k):
            for raw in real(*a, **k):
                seen.append(raw.table.num_rows)
                yield raw
        monkeypatch.setattr(dataset_mod, "iter_source", counting)
        return seen
    return apply


def _same(a, b) -> None:
    assert a.fields == b.fields and a.labels == b.labels and a.dense_fields == b.dense_fields
    for s in ("train", "valid", "test"):
        for attr in ("X", "y", "group", "dense"):
            x, y = getattr(a.splits[s], attr), getattr(b.splits[s], attr)
            assert (x is None) == (y is None)
            if x is not None:
                assert x.dtype == y.dtype and np.array_equal(x, y), (s, attr)
    assert pq.read_table(a.path / "vocab.parquet").equals(pq.read_table(b.path / "vocab.parquet"))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("overrides", [{}, {"cross_fields": True, "dense": True, "min_count": 3},
                                       {"split": "time"}], ids=["plain", "fg-dense", "time"])
def test_many_batches_equal_one(tmp_path, tiny_batches, fmt, overrides):
    card = _write(tmp_path, fmt, {"all": _table()})
    one = load_dataset(card, overrides=overrides, cache_dir=tmp_path / "one", progress=False)
    seen = tiny_batches()
    many = load_dataset(card, overrides=overrides, cache_dir=tmp_path / "many", progress=False)
    assert len(seen) > 2 * 40 and max(seen) < 60  # several passes over > 40 small batches each
    _same(one, many)


def test_fixed_split_many_batches_equal_one(tmp_path, tiny_batches):
    card = _write(tmp_path, "csv", {"train": _table(1500, 1), "test": _table(500, 2)})
    one = load_dataset(card, cache_dir=tmp_path / "one", progress=False)
    tiny_batches()
    many = load_dataset(card, cache_dir=tmp_path / "many", progress=False)
    _same(one, many)
    assert len(one.test) == 500


def test_streamed_codes_match_direct_computation(tmp_path, tiny_batches):
    """The documented encoding computed directly on the whole table (train-only vocabulary, file order within
    splits, group ids by first appearance) equals what the streaming build wrote."""
    t = _table()
    card = _write(tmp_path, "csv", {"all": t})
    tiny_batches()
    ds = load_dataset(card, overrides={"min_count": 2}, cache_dir=tmp_path / "c", progress=False)
    idx = split_indices(N, PrepConfig(), 0)
    vocab = build_vocab(t["a"].take(pa.array(idx["train"])), 2)
    for s in ("train", "valid", "test"):
        assert np.array_equal(ds.splits[s].X[:, 1], encode(t["a"].take(pa.array(idx[s])), vocab))
        assert np.array_equal(ds.splits[s].y[:, 0], np.asarray(t["label"].to_pylist(), float)[idx[s]])
        groups = t["u"].combine_chunks().dictionary_encode().indices.to_numpy()
        assert np.array_equal(ds.splits[s].group, groups[idx[s]])
    assert (np.asarray(ds.test.X[:, 1]) == 1).any() and (np.asarray(ds.train.X[:, 1]) == 0).any()  # OOV, missing
