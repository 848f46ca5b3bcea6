"""Killing `leanrec run` mid-grid and rerunning it finishes the grid with no duplicated or corrupted records."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CARDS = REPO / "harness" / "leanrec" / "datasets"  # the built-in cards (package data)


def test_kill_and_rerun_completes_grid(tmp_path, template_plugin_site):
    results = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(template_plugin_site), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "leanrec.cli", "run", "-d", str(CARDS / "synthetic.toml"),
           "-m", "example-mean-pool", "-m", "example-mean-pool:hidden=[8]", "--seeds", "3",
           "--max-epochs", "2", "--data", "synthetic.n_rows=4000", "--results-dir", str(results), "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and not list(results.glob("runs/*/*.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(results.glob("runs/*/*.json")))
    assert 1 <= done_before < 6, "the kill should land mid-grid"

    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    records = sorted(results.glob("runs/*/*.json"))
    assert len(records) == 6
    keys = set()
    for path in records:
        rec = json.loads(path.read_text())  # every record parses: none corrupted
        assert rec["status"] == "ok"
        keys.add((rec["variant"], rec["seed"]))
    assert len(keys) == 6  # no duplicates
    assert out.stdout.count("already done") == done_before
    assert (results / "leaderboard.md").exists()


def test_a_record_superseded_while_the_leaderboard_reads_is_skipped(tmp_path, monkeypatch):
    """Another process moving a record to superseded/ between listing and reading does not break reading."""
    from leanrec import records

    for name in ("a__seed0.json", "b__seed0.json"):
        records.write_record(tmp_path / "runs" / "d" / name, {"schema_version": records.SCHEMA_VERSION,
                                                              "variant": name[0], "seed": 0})
    read = records.read_record

    def read_after_a_rerun_moved_it(path):
        if path.name.startswith("a"):
            path.unlink()   # what supersede() does to the old record of a run being redone
        return read(path)

    monkeypatch.setattr(records, "read_record", read_after_a_rerun_moved_it)
    assert [r["variant"] for r in records.iter_records(tmp_path)] == ["b"]
