"""Encoded cache: reuse, rebuild on any change, atomic writes (no partial cache on error), memory maps."""
from __future__ import annotations

import os

import numpy as np
import pytest

from leanrec.data import dataset as dataset_mod
from leanrec.data import load_card, load_dataset
from leanrec.errors import DataError


@pytest.fixture()
def card(tmp_path):
    rows = [f"{i % 2},v{i % 13},w{(i * 7) % 3}" for i in range(500)]
    (tmp_path / "d.csv").write_text("label,a,b\n" + "\n".join(rows) + "\n")
    (tmp_path / "card.toml").write_text('name = "c"\nfields = ["a", "b"]\n[source]\nbase = "card"\n'
                                        'files = { all = "d.csv" }\n[[labels]]\nname = "label"\n')
    return load_card(tmp_path / "card.toml")


def _builds(monkeypatch):
    calls = []
    real = dataset_mod.build

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(dataset_mod, "build", counting)
    return calls


def test_same_inputs_reuse_the_cache(card, tmp_path, monkeypatch):
    calls = _builds(monkeypatch)
    a = load_dataset(card, cache_dir=tmp_path / "c", progress=False)
    b = load_dataset(card, cache_dir=tmp_path / "c", progress=False)
    assert len(calls) == 1 and a.path == b.path and a.cache_key == b.cache_key
    assert isinstance(b.train.X, np.memmap) and not b.train.X.flags.writeable


def test_changes_rebuild(card, tmp_path, monkeypatch):
    calls = _builds(monkeypatch)
    base = load_dataset(card, cache_dir=tmp_path / "c", progress=False)
    keys = {base.cache_key}
    keys.add(load_dataset(card, overrides={"min_count": 2}, cache_dir=tmp_path / "c", progress=False).cache_key)
    keys.add(load_dataset(card, seed=1, cache_dir=tmp_path / "c", progress=False).cache_key)
    st = os.stat(tmp_path / "d.csv")
    os.utime(tmp_path / "d.csv", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # source touched
    keys.add(load_dataset(card, cache_dir=tmp_path / "c", progress=False).cache_key)
    assert len(calls) == 4 and len(keys) == 4
    # min_count = 20 drops the values seen fewer than 20 times in train from the vocabulary
    rare = load_dataset(card, overrides={"min_count": 35}, cache_dir=tmp_path / "c", progress=False)
    counts = np.bincount(np.asarray(base.train.X[:, 0]))
    assert rare.fields[0].vocab_size == 2 + int((counts[2:] >= 35).sum()) < base.fields[0].vocab_size


def test_error_mid_prepare_leaves_no_cache(card, tmp_path, monkeypatch):
    from leanrec.data import cache

    def boom(directory, meta):
        assert any(directory.glob("*.npy"))  # arrays were already written when this fails
        raise OSError("disk full")

    monkeypatch.setattr(cache, "save_meta", boom)
    with pytest.raises(OSError, match="disk full"):
        load_dataset(card, cache_dir=tmp_path / "c", progress=False)
    assert list((tmp_path / "c" / "datasets").iterdir()) == []
    monkeypatch.undo()
    ds = load_dataset(card, cache_dir=tmp_path / "c", progress=False)  # and a later run succeeds
    assert [p.name for p in (tmp_path / "c" / "datasets").iterdir()] == [ds.path.name]


def test_bad_data_leaves_no_cache(tmp_path):
    (tmp_path / "d.csv").write_text("label,a\n" + "\n".join(f"{i % 2},x" for i in range(50)) + "\n7,x\n")
    (tmp_path / "card.toml").write_text('name = "c"\n[source]\nbase = "card"\nfiles = { all = "d.csv" }\n'
                                        '[[labels]]\nname = "label"\n')
    with pytest.raises(DataError):
        load_dataset(tmp_path / "card.toml", cache_dir=tmp_path / "c", progress=False)
    assert not (tmp_path / "c" / "datasets").exists() or not any((tmp_path / "c" / "datasets").iterdir())


def test_env_cache_dir(card, tmp_path, monkeypatch):
    monkeypatch.setenv("LEANREC_CACHE_DIR", str(tmp_path / "env-cache"))
    ds = load_dataset(card, progress=False)
    assert ds.path.parent == tmp_path / "env-cache" / "datasets"
    info = ds.info()
    from leanrec.data.preprocess import PrepConfig, split_indices

    expected = {k: len(v) for k, v in split_indices(500, PrepConfig(), 0).items()}  # hashed: about 400/50/50
    assert info["cache_path"] == str(ds.path)
    assert {k: v["rows"] for k, v in info["splits"].items()} == expected and 360 < expected["train"] < 440
