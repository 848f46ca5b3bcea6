"""User errors end as one `error:` line naming file, line and column (exit 2), never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CARD = """name = "bad"
fields = ["a", "b"]
[source]
format = "csv"
files = { all = "bad.csv" }
base = "card"
[[labels]]
name = "label"
"""


def _leanrec(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEANREC_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "leanrec.cli", *args], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=300)


def test_a_non_utf8_byte_is_located(tmp_path):
    (tmp_path / "bad.csv").write_bytes(b"label,a,b\n1,x,y\n0,ok,\xff\xfez\n1,q,w\n")
    (tmp_path / "bad.toml").write_text(CARD)
    r = _leanrec(tmp_path, "run", "-d", "bad.toml", "-m", "lr", "--seeds", "1", "--no-progress")
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout
    assert "bad.csv, line 3, column b" in " ".join(r.stderr.split()) and "utf8" in r.stderr


def test_a_config_value_of_the_wrong_type_is_shown_as_typed(tmp_path):
    r = _leanrec(tmp_path, "run", "-d", "synthetic", "-m", "dnn:hidden=[abc]", "--no-progress")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "cannot parse '[abc]'" in r.stderr   # brackets survive (not eaten as markup)
