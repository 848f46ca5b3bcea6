"""Data beyond memory (leanrec.batches) and data-parallel training under torchrun (leanrec.distributed)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from leanrec import batches, distributed
from leanrec.batches import (InMemorySource, MappedRows, MappedSplit, MemoryBudgetError, StreamedSource,
                             batch_source, parse_bytes)
from leanrec.context import RunContext
from leanrec.data.dataset import Split
from leanrec.measure import quality
from leanrec.protocol import plan
from leanrec.records import SCHEMA_VERSION, read_record, write_record
from leanrec.testing import tiny_dataset
from leanrec.trainer import Tensors, predict_logits, validation_auc

from test_harness import TinyMethod

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def _mapped(tmp_path: Path, name: str, arr: np.ndarray) -> np.ndarray:
    np.save(tmp_path / f"{name}.npy", arr)
    return np.load(tmp_path / f"{name}.npy", mmap_mode="r")


def _row_ids(n: int, width: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """X whose first column is the row number, y = row number as float (to follow rows through batches)."""
    X = np.stack([np.arange(n, dtype=np.int32)] + [np.full(n, k, np.int32) for k in range(1, width)], axis=1)
    return X, np.arange(n, dtype=np.float32).reshape(n, 1)


# ---- sizes -------------------------------------------------------------------------------------------------------
def test_parse_bytes():
    assert parse_bytes("512M") == 512 << 20 and parse_bytes("2G") == 2 << 30 and parse_bytes("1.5GiB") == 3 << 29
    assert parse_bytes("1000") == 1000 and parse_bytes(None) is None
    with pytest.raises(batches.LeanrecError, match="expected a size"):
        parse_bytes("lots")


# ---- the in-memory path is the original one --------------------------------------------------------------------
def test_in_memory_source_is_the_original_permutation_gather():
    X, y = _row_ids(1001)
    t = Tensors.from_numpy(X, y, CPU)
    steps, bs = 8, 128
    got = list(InMemorySource(t, bs, steps).epoch(torch.Generator().manual_seed(7)))
    perm = torch.randperm(1001, generator=torch.Generator().manual_seed(7))   # the trainer before batch sources
    for b, (xb, yb) in enumerate(got):
        idx = perm[b * bs:(b + 1) * bs]
        assert torch.equal(xb, t.X[idx]) and torch.equal(yb, t.y[idx])
    assert len(got) == steps


def test_budget_above_the_split_keeps_the_in_memory_path_bit_identical():
    ds = tiny_dataset(3000, seed=1)
    aucs = []
    for budget in (None, 10 << 20):
        torch.manual_seed(0)
        ctx = RunContext(CPU, progress=False, memory_budget_bytes=budget)
        TinyMethod.from_overrides({"epochs": 1}).fit(ds, ctx)
        assert ctx.streamed() == []
        aucs.append([h["valid_auc"] for h in ctx.train_results["train"].history])
    assert aucs[0] == aucs[1]


# ---- reading rows from the cache ---------------------------------------------------------------------------------
def test_mapped_rows_reads_and_gathers_like_numpy(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 1000, (500, 7)).astype(np.int32)
    for arr in (_mapped(tmp_path, "X", X), X):   # pread from the .npy, and a plain array
        rows = MappedRows(arr, torch.int32, CPU, budget=None, name="X")
        assert rows.shape == (500, 7) and len(rows) == 500
        assert np.array_equal(rows[10:37].numpy(), X[10:37])
        idx = rng.integers(0, 500, 64)
        assert np.array_equal(rows[torch.as_tensor(idx)].numpy(), X[idx])
        assert np.array_equal(rows.index_select(0, torch.as_tensor(idx)).numpy(), X[idx])
        view = rows.view(100, 200)
        assert np.array_equal(view[5:9].numpy(), X[105:109])
        assert np.array_equal(torch.cat(list(view.chunks(33))).numpy(), X[100:200])
    assert rows._file is None and MappedRows(_mapped(tmp_path, "X", X), torch.int32, CPU, None)._file is not None


def test_gather_beyond_the_budget_names_budget_and_size(tmp_path):
    X = _mapped(tmp_path, "X", np.zeros((10_000, 10), np.int32))
    rows = MappedRows(X, torch.int32, CPU, budget=4000, name="train X")
    assert rows[:100].shape == (100, 10)
    with pytest.raises(MemoryBudgetError, match=r"train X.*gathering 200 rows needs 7.8 KiB.*budget of 3.9 KiB"):
        rows[torch.arange(200)]


def test_split_that_cannot_stream_within_the_budget_is_refused(tmp_path):
    X, y = _row_ids(50_000, width=4)
    with pytest.raises(MemoryBudgetError, match=r"split 'train' \(50,000 rows, 976.6 KiB\) is over the memory "
                                                r"budget of 97.7 KiB, and streaming it needs"):
        MappedSplit.open(_mapped(tmp_path, "X", X), _mapped(tmp_path, "y", y), CPU, 100_000, "train")


# ---- streamed epochs ---------------------------------------------------------------------------------------------
def _epoch_rows(source, seed: int) -> list[np.ndarray]:
    return [xb[:, 0].numpy().copy() for xb, _ in source.epoch(torch.Generator().manual_seed(seed))]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 400), bs=st.integers(1, 64), block=st.integers(1, 90), seed=st.integers(0, 5))
def test_streamed_epoch_takes_every_row_once_in_shuffled_blocks(tmp_path_factory, n, bs, block, seed):
    tmp = tmp_path_factory.mktemp("s")
    X, y = _row_ids(n)
    split = MappedSplit(MappedRows(_mapped(tmp, "X", X), torch.int32, CPU, None),
                        MappedRows(_mapped(tmp, "y", y), torch.float32, CPU, None), block_rows=block)
    sched = plan(n, SimpleNamespace(batch_size=bs, epochs=1, patience=1))
    source = StreamedSource(split, sched.batch_size, sched.steps_per_epoch)
    got = _epoch_rows(source, seed)
    assert len(got) == sched.steps_per_epoch
    assert [len(b) for b in got[:-1]] == [bs] * (len(got) - 1)
    flat = np.concatenate(got)
    # every row once; only a last batch of a single row is left out (the protocol's BatchNorm rule)
    assert len(np.unique(flat)) == len(flat) and len(flat) == n - (n % bs == 1 and n > bs)
    # rows arrive block by block: the stream's block ids change only at block boundaries
    blocks = flat // block
    changes = np.flatnonzero(np.diff(blocks)) + 1
    sizes = np.diff(np.concatenate([[0], changes, [len(flat)]]))
    full = [min(block, n - b * block) for b in blocks[np.concatenate([[0], changes])]]
    assert list(sizes[:-1]) == full[:-1]
    # labels travel with their rows; the same seed gives the same order
    for xb, yb in source.epoch(torch.Generator().manual_seed(seed)):
        assert np.array_equal(xb[:, 0].numpy(), yb[:, 0].numpy().astype(np.int32))
    assert all(np.array_equal(a, b) for a, b in zip(got, _epoch_rows(source, seed)))


def test_streamed_order_changes_with_the_seed_and_mixes_blocks(tmp_path):
    X, y = _row_ids(4000)
    split = MappedSplit(MappedRows(_mapped(tmp_path, "X", X), torch.int32, CPU, None),
                        MappedRows(_mapped(tmp_path, "y", y), torch.float32, CPU, None), block_rows=500)
    source = StreamedSource(split, 100, 40)
    a, b = np.concatenate(_epoch_rows(source, 1)), np.concatenate(_epoch_rows(source, 2))
    assert not np.array_equal(a, b)
    for rows in (a, b):
        order = rows[::500] // 500                  # each block arrives whole: its id at every 500th row
        assert sorted(order) == list(range(8)) and np.all(rows // 500 == np.repeat(order, 500))
        assert not np.all(np.diff(rows[:500]) > 0)  # rows shuffled inside a block
    assert not (np.array_equal(a[::500] // 500, np.arange(8)) and np.array_equal(b[::500] // 500, np.arange(8)))


def test_each_rank_reads_its_own_shard(tmp_path, monkeypatch):
    n, bs = 1003, 100
    X, y = _row_ids(n)
    sched = plan(n, SimpleNamespace(batch_size=bs, epochs=1, patience=1))
    mapped = MappedSplit(MappedRows(_mapped(tmp_path, "X", X), torch.int32, CPU, None),
                         MappedRows(_mapped(tmp_path, "y", y), torch.float32, CPU, None), block_rows=64)
    for split in (Tensors.from_numpy(X, y, CPU), mapped):
        seen = []
        for rank in (0, 1):
            monkeypatch.setattr(batches, "rank_world", lambda r=rank: (r, 2))
            got = _epoch_rows(batch_source(split, sched.batch_size, sched.steps_per_epoch), 3)
            assert len(got) == sched.steps_per_epoch                           # every rank steps alike
            assert max(len(g) for g in got) - min(len(g) for g in got) <= 1   # ~ batch_size / 2 rows each
            rows = np.concatenate(got)
            lo, hi = batches.shard(n, rank, 2)
            assert rows.min() >= lo and rows.max() < hi and len(np.unique(rows)) == hi - lo
            seen.append(rows)
        assert len(np.unique(np.concatenate(seen))) == n


# ---- training and scoring from the cache -------------------------------------------------------------------------
def test_training_streams_splits_over_the_budget_and_scores_them_exactly(tmp_path):
    ds = tiny_dataset(6000, seed=3)
    ds.splits = {k: Split(_mapped(tmp_path, f"{k}X", s.X), _mapped(tmp_path, f"{k}y", s.y), s.group)
                 for k, s in ds.splits.items()}
    best = {}
    for budget in (None, 120_000):   # train is 169 KiB, valid 21 KiB
        torch.manual_seed(0)
        ctx = RunContext(CPU, progress=False, memory_budget_bytes=budget)
        result = TinyMethod.from_overrides({"epochs": 2, "lr": 0.03, "batch_size": 128}).fit(ds, ctx)
        best[budget] = ctx.train_results["train"].best_valid_auc
    assert ctx.streamed() == ["train"]
    assert best[120_000] == pytest.approx(best[None], abs=0.02)   # another shuffle, the same learning
    test = MappedSplit.open(ds.test.X, ds.test.y, CPU, 20_000, "test")
    expected = roc_auc_score(ds.test.y[:, 0], predict_logits(result.model, torch.as_tensor(np.array(ds.test.X))))
    assert validation_auc(result.model, test) == pytest.approx(expected, abs=1e-12)
    assert quality(result.model, test)["auc"] == pytest.approx(expected, abs=1e-12)


def test_cli_memory_budget_reaches_the_record(tmp_path):
    from typer.testing import CliRunner

    from leanrec.cli import app

    out = tmp_path / "res"
    res = CliRunner().invoke(app, ["run", "-d", str(REPO / "harness" / "leanrec" / "datasets" / "synthetic.toml"), "-m", "lr", "--seeds", "1",
                                   "--data", "synthetic.n_rows=5000", "--max-steps", "12", "--min-steps", "10", "--max-batch-size", "256",
                                   "--memory-budget", "300K", "--no-progress", "--results-dir", str(out)])
    assert res.exit_code == 0, res.output
    (rec,) = [read_record(p) for p in (out / "runs").rglob("*.json")]
    assert rec["memory"] == {"budget_bytes": 300 << 10, "streamed_splits": ["train"]}
    assert rec["distributed"] == {"world_size": 1} and rec["status"] == "ok"
    assert rec["environment"]["device"] == "cpu"   # where it trained (the record of a GPU run says cuda:0)
    assert [t["embedding_optimizer"] for t in rec["training"].values()] == ["adam"]   # "auto", resolved


# ---- torchrun: 2 CPU processes -----------------------------------------------------------------------------------
needs_gloo = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")


def _torchrun(mode: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(REPO / "tests" / "dist_worker.py"), mode, str(out)],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.distributed
@needs_gloo
def test_gradient_average_over_two_ranks_matches_numpy(tmp_path):
    proc = _torchrun("sync", tmp_path)
    assert proc.returncode == 0, proc.stderr[-8000:]
    a, b = (torch.load(tmp_path / f"grads{r}.pt") for r in (0, 1))
    assert a["sparse"] and b["sparse"]   # the row-wise optimizers' sparse embedding gradients are averaged as such
    for name, local0 in a["local"].items():
        local1 = b["local"][name]
        if local0 is None:
            assert a["synced"][name] is None and b["synced"][name] is None
            continue
        mean = (local0.numpy() + local1.numpy()) / 2
        np.testing.assert_allclose(a["synced"][name].numpy(), mean, rtol=1e-6)
        np.testing.assert_allclose(b["synced"][name].numpy(), mean, rtol=1e-6)


@pytest.mark.distributed
@needs_gloo
def test_two_ranks_train_record_and_resume(tmp_path):
    proc = _torchrun("ok", tmp_path)
    assert proc.returncode == 0, proc.stderr[-8000:]
    (path,) = (tmp_path / "runs").rglob("*.json")
    rec = read_record(path)
    import dist_worker

    dist_worker.grid(tmp_path / "one", "tiny-dnn", None)   # the same grid on one process
    (one,) = [read_record(p) for p in (tmp_path / "one" / "runs").rglob("*.json")]
    assert rec["status"] == "ok" and one["distributed"] == {"world_size": 1}
    assert rec["training"]["train"]["steps"] == one["training"]["train"]["steps"]   # same global batch, same plan
    assert rec["metrics"]["auc"] == pytest.approx(one["metrics"]["auc"], abs=0.03)
    assert rec["distributed"]["world_size"] == 2 and rec["distributed"]["backend"] == "gloo"
    assert rec["distributed"]["global_batch"] == {"train": rec["training"]["train"]["schedule"]["batch_size"]}
    assert not list(path.parent.glob(".*"))   # no in-flight marker left
    mtime = path.stat().st_mtime_ns
    assert _torchrun("ok", tmp_path).returncode == 0
    assert path.stat().st_mtime_ns == mtime   # rerunning reuses the finished run


@pytest.mark.distributed
@needs_gloo
def test_two_ranks_with_deferred_adam_keep_bit_identical_replicas(tmp_path):
    """Each rank looks up its own rows (its lookup hook brings them up to date) and catches the other rank's rows
    up at the update: after training, both ranks hold the same weights to the bit."""
    proc = _torchrun("deferred", tmp_path)
    assert proc.returncode == 0, proc.stderr[-8000:]
    w0, w1 = (torch.load(tmp_path / f"weights{r}.pt") for r in (0, 1))
    assert w0.keys() == w1.keys()
    for name in w0:
        assert torch.equal(w0[name], w1[name]), name
    (rec,) = [read_record(p) for p in (tmp_path / "runs").rglob("*.json")]
    assert rec["status"] == "ok" and rec["training"]["train"]["embedding_optimizer"] == "deferred_adam"


@pytest.mark.distributed
@needs_gloo
@pytest.mark.parametrize("mode", ["raise", "kill"])
def test_a_failing_rank_fails_the_run_on_every_rank(tmp_path, mode):
    proc = _torchrun(mode, tmp_path)   # the timeout of _torchrun is the no-hang check
    assert proc.returncode != 0
    (path,) = (tmp_path / "runs").rglob("*.json")
    err = read_record(path)["error"]
    assert read_record(path)["status"] == "failed" and err["world_size"] == 2
    if mode == "raise":
        assert err["rank"] == 1 and err["message"] == "rank 1 of 2 (%s): planted failure on rank 1" % os.uname().nodename
    else:   # killed: no rank could say why; rank 0 says a peer was lost (the --nproc launcher names it)
        assert err["rank"] is None and err["type"] == "PeerLost"


def test_launcher_names_a_killed_rank(tmp_path):
    rec_file = tmp_path / "runs" / "d" / "m__seed0.json"
    pending = {"schema_version": SCHEMA_VERSION, "identity_hash": "abc", "dataset": "d", "variant": "m", "seed": 0, "distributed": {"world_size": 2}}
    marker = distributed.inflight_path(rec_file)
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"path": str(rec_file), "record": pending}))
    write_record(rec_file, {**pending, "status": "failed",
                            "error": {"rank": None, "type": "PeerLost", "message": "a rank of 2: lost"}})

    class Failure(SimpleNamespace):
        def signal_name(self):
            return "SIGKILL" if self.exitcode == -9 else "SIGTERM"

    exc = SimpleNamespace(failures={0: Failure(exitcode=-15, timestamp=2), 1: Failure(exitcode=-9, timestamp=1)})
    distributed.record_launch_failure(marker, exc)
    err = read_record(rec_file)["error"]
    assert err["rank"] == 1 and err["type"] == "RankKilled" and "signal 9 (SIGKILL)" in err["message"]
    assert not marker.exists()
