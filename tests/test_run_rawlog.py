"""`leanrec run -d FILE.csv --label COL`: a card is inferred (leaks and identifiers dropped), saved next to the
results and run end to end; without --label the error says what to do."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def _log(path: Path, n: int = 1500) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["click", "user", "ad", "rowid", "leak", "ts"])
        for i in range(n):
            u, a = rng.integers(0, 40), rng.integers(0, 20)
            y = int(rng.random() < 1 / (1 + np.exp(-(u % 3 - 1 + a % 2))))
            w.writerow([y, f"u{u}", f"a{a}", i, "yes" if y else "", f"2024-01-{1 + i * 28 // n:02d}T10:{i % 60:02d}:00"])


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEANREC_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "leanrec.cli", "run", "-d", "log.csv", "-m", "lr", "--seeds", "1",
                           "--max-steps", "3", "--min-steps", "1", "--no-progress", *extra], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=600)


def test_raw_log_runs_with_an_inferred_card(tmp_path):
    _log(tmp_path / "log.csv")
    r = _run(tmp_path, "--label", "click", "--time", "ts")
    assert r.returncode == 0, r.stdout + r.stderr
    card = (tmp_path / "leanrec-results" / "cards" / "log.toml").read_text()
    assert 'dropped "rowid"' in card and 'dropped "leak"' in card and 'time = "ts"' in card
    assert "✓ log · lr · seed 0" in r.stdout


def test_raw_log_without_label_says_what_to_do(tmp_path):
    _log(tmp_path / "log.csv", 50)
    r = _run(tmp_path)
    assert r.returncode == 2 and "--label" in r.stderr and "Traceback" not in r.stderr
