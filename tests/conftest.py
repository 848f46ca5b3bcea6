"""Shared fixtures. Real-data tests skip when ../shared/data is absent."""
from __future__ import annotations

import os
from pathlib import Path

import subprocess
import sys

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CARDS = REPO / "harness" / "leanrec" / "datasets"  # the built-in cards (package data)
SHARED_DATA = Path(os.environ.get("LEANREC_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _ieee_denormals():
    """Each test starts with IEEE denormals (hypothesis' float strategies refuse to run when a flush-to-zero
    mode leaked from an earlier test; the harness itself restores it, tested in test_harness)."""
    torch.set_flush_denormal(False)
    yield


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes caches to a private temp dir, never to the user's ~/.cache."""
    if "LEANREC_CACHE_DIR" not in os.environ:
        monkeypatch.setenv("LEANREC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "leanrec-cache"))


def shared_data(*parts: str) -> Path:
    """Path under ../shared/data, skipping the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data sample not available: {path}")
    return path


@pytest.fixture(scope="session")
def template_plugin_site(tmp_path_factory) -> Path:
    """The documented plugin template, pip-installed into a private directory (add it to PYTHONPATH to use)."""
    target = tmp_path_factory.mktemp("template-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(REPO / "examples" / "leanrec-plugin-template")],
                   check=True, capture_output=True, timeout=300)
    return target
