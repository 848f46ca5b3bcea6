"""Bad input for `compute` / `leanrec stats`: a LeanrecError naming file, line or row and column, and on the
command line a one-line error (exit code 2), never a traceback."""
from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import leanrec.stats as S
from leanrec.errors import DataError, LeanrecError


def cli_error(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> str:
    """Run `leanrec stats ARGS` through the console entry point; return what it printed (it must exit 2)."""
    from leanrec.cli import main

    monkeypatch.setattr(sys, "argv", ["leanrec", "stats", *args, "--no-progress"])
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    assert exit_.value.code == 2, out
    assert "Traceback" not in out.err + out.out
    return " ".join((out.err + out.out).split())  # rich wraps long lines


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="no such file") as err:
        S.compute(missing, progress=False)
    assert str(missing) in str(err.value)
    assert str(missing) in cli_error([str(missing)], monkeypatch, capsys)


def test_directory_of_mixed_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "a.csv").write_text("label,site\n1,x\n0,y\n")
    pq.write_table(pa.table({"label": [1, 0], "site": [3, 4]}), shards / "b.parquet")
    with pytest.raises(DataError, match="mix formats") as err:
        S.compute(shards, progress=False)
    msg = str(err.value)
    assert str(shards) in msg and "a.csv" in msg and "b.parquet" in msg
    assert "mix formats" in cli_error([str(shards)], monkeypatch, capsys)
    # the same files listed explicitly: the typed column is named where it disagrees with the first file
    with pytest.raises(DataError) as err:
        S.compute([shards / "a.csv", shards / "b.parquet"], progress=False)
    msg = str(err.value)
    assert "b.parquet" in msg and "column site" in msg
    with pytest.raises(DataError) as err:
        S.compute([shards / "b.parquet", shards / "a.csv"], progress=False, numeric=[])
    msg = str(err.value)
    assert "a.csv" in msg and "column site" in msg


def test_non_utf8_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    small = tmp_path / "small.csv"
    small.write_bytes(b"label,site,n\n1,x,2\n0,\xff\xfe,3\n1,z,4\n")
    for reader in ("native", "arrow"):  # within the first 8 MB, where field kinds are inferred
        with pytest.raises(DataError) as err:
            S.compute(small, progress=False, reader=reader)
        msg = str(err.value)
        assert str(small) in msg and "line 3" in msg and "column site" in msg and "UTF" in msg, msg
    assert "line 3, column site" in cli_error([str(small)], monkeypatch, capsys)
    # beyond the sample: the native reader checks text values itself
    big = tmp_path / "big.csv"
    rows = 1_100_000
    big.write_bytes(b"label,site,n\n" + b"0,abc,1\n" * rows + b"1,caf\xe9,2\n" + b"1,d\xc3\xa9f,3\n")
    with pytest.raises(DataError) as err:
        S.compute(big, progress=False)
    msg = str(err.value)
    assert str(big) in msg and f"line {rows + 2}" in msg and "column site" in msg and "0xe9" in msg, msg
    rep = S.compute(big, progress=False, on_bad_rows="skip")
    assert rep.bad_rows == 1 and rep.rows == rows + 1
    assert ("déf", 1) in rep.top["site"]  # valid UTF-8 beyond ASCII is kept


def test_parquet_label_not_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"label": [1, 0, 2, 0], "site": [1, 2, 3, 4]}), path)
    with pytest.raises(DataError) as err:
        S.compute(path, progress=False)
    msg = str(err.value)
    assert str(path) in msg and "row 3" in msg and "column label" in msg and "found 2" in msg, msg
    assert "row 3, column label" in cli_error([str(path)], monkeypatch, capsys)
    rep = S.compute(path, progress=False, on_bad_rows="skip")
    assert rep.bad_rows == 1 and rep.rows == 3
    # a missing label in an Arrow IPC file, in a later batch
    ipc = tmp_path / "t.arrow"
    t = pa.table({"label": pa.array([1, 0, 1, None], pa.float64()), "site": [1, 2, 3, 4]})
    with pa.ipc.new_file(ipc, t.schema) as w:
        for b in t.to_batches(max_chunksize=2):
            w.write_batch(b)
    with pytest.raises(LeanrecError, match="row 4, column label: label is missing"):
        S.compute(ipc, progress=False)
