"""Guards that refuse a dataset cache before it would fill the disk or exhaust memory (issue 18: all-pairs
cross fields at Criteo scale), with an error naming sizes instead of a SIGBUS or an OOM kill."""
from __future__ import annotations

import collections

import numpy as np
import pytest

import leanrec.data.dataset as dataset
from leanrec.data import cache
from leanrec.data.dataset import cache_bytes, load_dataset
from leanrec.errors import ConfigError

SMALL = {"synthetic": {"n_rows": 2000}}


def _npy_data_bytes(path) -> int:
    """Bytes of the arrays in a finished cache, read back from the .npy files (header excluded)."""
    return sum(np.load(f, mmap_mode="r").nbytes for f in path.glob("*.npy"))


@pytest.mark.parametrize("overrides", [SMALL, {**SMALL, "cross_fields": True, "dense": True}])
def test_cache_size_estimate_equals_the_arrays_written(tmp_path, overrides):
    ds = load_dataset("synthetic", overrides=overrides, cache_dir=tmp_path, progress=False)
    rows = sum(len(ds.splits[s].y) for s in ("train", "valid", "test"))
    expected = cache_bytes(rows, len(ds.fields), len(ds.labels), len(ds.dense_fields), grouped=False)
    assert _npy_data_bytes(ds.path) == expected


def test_a_cache_larger_than_the_free_disk_is_refused_before_writing(tmp_path, monkeypatch):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(dataset.shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 50_000, 50_000))
    with pytest.raises(ConfigError, match=r"needs .* MB \(2,000 rows x .* cross fields .* free") as err:
        load_dataset("synthetic", overrides={**SMALL, "cross_fields": True}, cache_dir=tmp_path, progress=False)
    assert "LEANREC_CACHE_DIR" in str(err.value)
    root = cache.cache_root(tmp_path) / "datasets"
    assert not root.exists() or not list(root.iterdir())   # no cache, no half-written temporary directory


def test_cross_field_counts_beyond_the_memory_share_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset, "available_memory", lambda: 10_000)
    with pytest.raises(ConfigError, match=r"counting the \d+ cross fields .* holds .* of 1,\d{3} training rows"):
        load_dataset("synthetic", overrides={**SMALL, "cross_fields": True}, cache_dir=tmp_path, progress=False)
    # without cross fields the same memory is not a concern: nothing is counted pairwise
    assert len(load_dataset("synthetic", overrides=SMALL, cache_dir=tmp_path, progress=False).train.y) > 0
