"""The README's "Using it on your data" commands run (the quick ones; `leanrec run` is covered elsewhere)."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("## Using it on your data", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines() if line.startswith("leanrec ")]


@pytest.mark.skipif(not DATA.exists(), reason="shared data folder not present")
@pytest.mark.parametrize("command", [c for c in readme_commands() if c.split()[1] in ("plugins", "stats", "data")])
def test_readme_command_runs(command: str, tmp_path: Path):
    args = shlex.split(command)[1:]
    env = {**os.environ, "LEANREC_CACHE_DIR": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-m", "leanrec.cli", *args, *(["--no-progress"] if args[0] == "stats" else [])],
                       cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    if args[0] == "stats":
        assert (tmp_path / "mi.png").stat().st_size > 0


@pytest.mark.skipif(not DATA.exists(), reason="shared data folder not present")
def test_readme_run_example_trains_in_a_fresh_folder(tmp_path: Path):
    """The README's `leanrec run` trains (never reports the repository's committed records as done) and writes
    to ./leanrec-results; here with a budget of a few steps so it takes seconds."""
    command = next(c for c in readme_commands() if c.split()[1] == "run")
    args = shlex.split(command)[1:]
    args[args.index("--seeds") + 1] = "1"
    env = {**os.environ, "LEANREC_CACHE_DIR": str(tmp_path / "cache")}
    quick = ["--max-steps", "3", "--min-steps", "1", "--no-progress", "--threads", "1"]
    r = subprocess.run([sys.executable, "-m", "leanrec.cli", *args, *quick], cwd=tmp_path, capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "already done" not in r.stdout and r.stdout.count("✓") == args.count("-m")
    assert list((tmp_path / "leanrec-results" / "runs").rglob("*.json"))
