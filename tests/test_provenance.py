"""The run record's commit is leanrec's own, never that of a repository that merely holds the install."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import REPO

from leanrec.provenance import leanrec_commit, source_checkout


def _git(*args: str, cwd) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _repo(path, pyproject: str):
    """A git repository holding harness/leanrec/ and the given pyproject.toml, with one commit."""
    pkg = path / "harness" / "leanrec"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (path / "pyproject.toml").write_text(pyproject)
    _git("init", "-q", cwd=path)
    _git("add", "-A", cwd=path)
    _git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "c", cwd=path)
    return pkg


pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def test_the_commit_of_this_checkout():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    assert source_checkout() == REPO
    assert leanrec_commit() == _git("rev-parse", "HEAD", cwd=REPO)


def test_a_leanrec_checkout_elsewhere_gives_its_commit(tmp_path):
    pkg = _repo(tmp_path, '[project]\nname = "leanrec"\n')
    assert leanrec_commit(pkg) == _git("rev-parse", "HEAD", cwd=tmp_path)


def test_another_project_or_a_site_packages_gives_none(tmp_path):
    other = _repo(tmp_path / "other", '[project]\nname = "my-app"\n')
    assert leanrec_commit(other) is None
    # a venv inside a user's repository: .venv/lib/python3.X/site-packages/leanrec
    site_pkg = tmp_path / "other" / ".venv" / "lib" / "python3.11" / "site-packages" / "leanrec"
    site_pkg.mkdir(parents=True)
    assert leanrec_commit(site_pkg) is None
    broken = _repo(tmp_path / "broken", "not = [valid toml\n")
    assert leanrec_commit(broken) is None
