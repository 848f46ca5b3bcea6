"""Package-level files: `python -m leanrec`, the licence named in pyproject, the typing marker and stubs."""
from __future__ import annotations

import subprocess
import sys

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from conftest import REPO

import leanrec


def test_python_dash_m_leanrec_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "leanrec", "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"leanrec {leanrec.__version__}"
    bad = subprocess.run([sys.executable, "-m", "leanrec", "run", "-d", "no-such-dataset", "-m", "dnn"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr  # user errors print cleanly here too


def test_license_file_matches_pyproject():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["license"] == {"text": "Apache-2.0"}
    text = (REPO / "LICENSE").read_text()
    assert text.split()[:3] == ["Apache", "License", "Version"] and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the full text, not a pointer to it


def test_typing_marker_and_stub_ship_in_the_package():
    pkg = REPO / "harness" / "leanrec"
    assert (pkg / "py.typed").is_file() and (pkg / "_native.pyi").is_file()
