"""Preprocessing: train-only vocabularies, missing/OOV codes, bucketing, splits, cross fields."""
from __future__ import annotations


import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leanrec.data.preprocess import (MISSING, OOV, PrepConfig, build_vocab, encode, numeric_tokens,
                                     split_indices)
from leanrec.data import DatasetCard, load_dataset
from leanrec.errors import ConfigError


def test_vocab_codes_missing_oov_and_min_count():
    train = pa.array(["b", "a", "b", None, "c", "b", "a"])
    vocab = build_vocab(train, min_count=2)
    assert vocab.values.to_pylist() == ["b", "a"] and vocab.cardinality == 3 and vocab.size == 4
    codes = encode(pa.array(["a", "b", "c", None, "zzz"]), vocab)
    assert codes.tolist() == [3, 2, OOV, MISSING, OOV] and codes.dtype == np.int32


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 20) | st.none(), min_size=1, max_size=200), st.integers(1, 5))
def test_encode_is_consistent_with_counts(values, min_count):
    arr = pa.array(values, pa.int64())
    vocab = build_vocab(arr, min_count)
    codes = encode(arr, vocab)
    present = [v for v in values if v is not None]
    for v, c in zip(values, codes):
        if v is None:
            assert c == MISSING
        elif present.count(v) >= min_count:
            assert vocab.values[c - 2].as_py() == v
        else:
            assert c == OOV


def test_criteo_log_buckets():
    x = np.array([np.nan, -1, 0, 1, 2, 3, 4, 8, 10, 11, 100])
    tok = numeric_tokens(x, "criteo_log", np.arange(len(x)), 10).to_pylist()
    assert tok[0] is None and tok[1:5] == [-1, 0, 1, 2]  # x <= 2: the value itself
    # x > 2: floor(ln(x)^2) -> 3 and 4 share bucket 1, 8 is bucket 4, 10 and 11 share bucket 5, 100 is 21
    assert tok[5] == tok[6] and tok[8] == tok[9] and len({tok[5], tok[7], tok[8], tok[10]}) == 4
    assert not {tok[5], tok[7], tok[8], tok[10]} & {-1, 0, 1, 2}  # buckets never collide with small values


def test_quantile_buckets_from_train_only():
    x = np.arange(1000, dtype=float)
    tok = numeric_tokens(x, "quantile", np.arange(500), 4).to_numpy()
    assert sorted(set(tok[:500])) == [0, 1, 2, 3] and set(tok[500:]) == {3}


def test_splits_deterministic_disjoint_complete():
    cfg = PrepConfig()
    a, b, c = (split_indices(1000, cfg, s) for s in (0, 0, 1))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])
    allidx = np.concatenate(list(a.values()))
    assert sorted(allidx.tolist()) == list(range(1000))
    # per-row hashed assignment: sizes are Binomial(1000, ratio), within 4 standard deviations of 800/100/100
    for k, p in zip(("train", "valid", "test"), cfg.ratios):
        assert abs(len(a[k]) - 1000 * p) < 4 * (1000 * p * (1 - p)) ** 0.5
    big = split_indices(200_000, cfg, 0)
    assert abs(len(big["train"]) / 200_000 - 0.8) < 0.005


def test_time_split_orders_by_time():
    t = np.random.default_rng(0).permutation(100).astype(float)
    s = split_indices(100, PrepConfig(split="time"), 0, time=t)
    assert t[s["train"]].max() < t[s["valid"]].min() <= t[s["valid"]].max() < t[s["test"]].min()


def test_fixed_split_carves_valid_from_train():
    parts = {"train": np.arange(9000), "test": np.arange(9000, 12000)}
    s = split_indices(12000, PrepConfig(split="fixed"), 3, parts=parts)
    assert np.array_equal(s["test"], parts["test"])
    assert abs(len(s["valid"]) - 1000) < 4 * (9000 / 9 * 8 / 9) ** 0.5  # valid/(train+valid) = 0.1/0.9
    assert not set(s["valid"]) & set(s["train"]) and len(s["train"]) + len(s["valid"]) == 9000


def test_prep_config_validation():
    with pytest.raises(ConfigError, match="min_cuont.*did you mean 'min_count'"):
        PrepConfig.from_options({"min_cuont": 2})
    with pytest.raises(ConfigError, match="ratios"):
        PrepConfig.from_options({"ratios": [0.5, 0.1, 0.1]})
    with pytest.raises(ConfigError, match="min_count"):
        PrepConfig.from_options({"min_count": 0})


def test_cross_fields_and_vocab_from_train_only(tmp_path):
    card = DatasetCard.from_dict({"name": "syn", "source": {"format": "synthetic"},
                                  "synthetic": {"n_rows": 3000, "n_fields": 6, "n_informative": 2,
                                                "n_redundant": 1, "max_cardinality": 50}})
    plain = load_dataset(card, cache_dir=tmp_path, progress=False)
    fg = load_dataset(card, overrides={"cross_fields": True}, cache_dir=tmp_path, progress=False)
    names = [f.name for f in fg.fields]
    assert len(names) == 6 + 15 and names[6] == "C1*C2" and names[-1] == "C5*C6"
    assert np.array_equal(fg.train.X[:, :6], plain.train.X)
    # every train code of a cross occurs in train; valid/test may contain OOV crosses but never codes >= vocab
    for j, f in enumerate(fg.fields):
        assert fg.train.X[:, j].max() < f.vocab_size and fg.test.X[:, j].max() < f.vocab_size
    assert (np.asarray(fg.train.X[:, 6:]) != OOV).all()  # min_count 1: nothing in train is OOV
    assert (np.asarray(fg.test.X[:, 6:]) == OOV).any()   # unseen crosses in test are OOV


def test_native_value_counts_agrees_with_pyarrow(monkeypatch):
    """When the Rust statistics engine is built, the frequency tables it gives equal pyarrow's."""
    from leanrec.data import preprocess

    if preprocess._native_value_counts() is None:
        pytest.skip("leanrec.stats native extension not built")
    arr = pa.array(["b", "a", None, "b", "c", "a", "b"])
    ints = pa.array(np.random.default_rng(0).integers(-5, 50, 1000))
    native = [preprocess.value_counts(a) for a in (arr, ints)]
    monkeypatch.setenv("LEANREC_DATA_NO_NATIVE", "1")
    fallback = [preprocess.value_counts(a) for a in (arr, ints)]
    for (nv, nc), (fv, fc) in zip(native, fallback):
        assert dict(zip(nv.to_pylist(), nc.tolist())) == dict(zip(fv.to_pylist(), fc.tolist()))
