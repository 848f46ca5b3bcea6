"""Acceptance: the plugin template, copied to a temporary folder and renamed with the commands of its README,
pip-installed, passes its own tests (so a copied template is tested from the first minute)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "examples" / "leanrec-plugin-template"


def _readme_rename_commands() -> str:
    """The first bash block of the template's README: copy and rename."""
    block = re.search(r"```bash\n(.*?)```", (TEMPLATE / "README.md").read_text(), re.S).group(1)
    assert "cp -r examples/leanrec-plugin-template" in block and "sed" in block
    return block


def test_template_ships_its_tests_and_gitignore():
    assert (TEMPLATE / "tests" / "test_plugin.py").is_file()
    ignored = (TEMPLATE / ".gitignore").read_text().split()
    assert {"build/", "*.egg-info/", "__pycache__/", ".pytest_cache/", "dist/"} <= set(ignored)


def test_copied_renamed_and_installed_template_passes_its_own_tests(tmp_path):
    # a clean copy of the template, as in a fresh checkout (no build leftovers of other tests)
    clean = tmp_path / "checkout" / "examples" / "leanrec-plugin-template"
    shutil.copytree(TEMPLATE, clean, ignore=shutil.ignore_patterns(
        "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    work = tmp_path / "work"
    work.mkdir()
    script = _readme_rename_commands().replace("examples/leanrec-plugin-template", str(clean))
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, check=True, timeout=60)
    plugin = work / "leanrec-gatedfm"
    assert (plugin / "leanrec_gatedfm" / "plugin.py").is_file() and not (plugin / "leanrec_example").exists()
    leftovers = [p for p in plugin.rglob("*") if p.is_file() and re.search(
        "leanrec_example|leanrec-example|example-mean-pool", p.read_text(errors="replace"))]
    assert not leftovers, leftovers

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(plugin)], check=True, capture_output=True, timeout=300)
    assert list(site.glob("leanrec_gatedfm-0.1.0.dist-info"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=plugin, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"\b3 passed\b", out.stdout), out.stdout
