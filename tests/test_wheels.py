"""The built wheels work outside the checkout: leanrec (maturin, release) and every plugin under plugins/ are
installed into a fresh virtual environment in a temporary folder (itself a git repository, as a user's project
would be), and `leanrec plugins`, `leanrec data list` and a tiny `leanrec run` are run there.

The new environment gets the third-party dependencies (torch, numpy, ...) from the running interpreter's
site-packages through a folder of links that leaves out every leanrec distribution, so nothing of the checkout
(editable installs, PYTHONPATH) can leak in; the test asserts where each package is imported from.

The release build takes minutes: the leanrec wheel is built once and cached by a hash of its sources under the
git-ignored target/wheel-cache/ (cargo reuses target/ from `make test`'s `maturin develop --release`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# What goes into the leanrec wheel (pyproject's readme and license included).
LEANREC_SOURCES = ("pyproject.toml", "Cargo.toml", "Cargo.lock", "README.md", "LICENSE", "rust", "harness")
_SKIP_DIRS = {"__pycache__", "target", "build", ".pytest_cache", ".hypothesis"}
_SKIP_SUFFIXES = (".so", ".pyc", ".pyd")


def source_hash(root: Path, parts: tuple[str, ...]) -> str:
    """sha256 over the relative paths and contents of the files under `parts` (build outputs skipped)."""
    h = hashlib.sha256()
    for part in parts:
        base = root / part
        files = [base] if base.is_file() else sorted(
            p for p in base.rglob("*") if p.is_file() and not _SKIP_DIRS & set(p.relative_to(root).parts)
            and not p.name.endswith(_SKIP_SUFFIXES) and ".egg-info" not in str(p.relative_to(root)))
        for f in files:
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _tool(name: str) -> str:
    """An executable next to the running interpreter (the venv's maturin), else on PATH; skip when absent."""
    near = Path(sys.executable).parent / name
    found = str(near) if near.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (`make test` installs it)")
    return found


@pytest.fixture(scope="session")
def leanrec_wheel() -> Path:
    """The leanrec wheel built by `maturin build --release`, reused while its sources are unchanged."""
    cache = REPO / "target" / "wheel-cache" / source_hash(REPO, LEANREC_SOURCES)
    wheels = sorted(cache.glob("leanrec-*.whl"))
    if wheels:
        return wheels[0]
    maturin = _tool("maturin")
    if not shutil.which("cargo"):
        pytest.skip("cargo is not installed")
    tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    out = subprocess.run([maturin, "build", "--release", "-q", "-o", str(tmp)], cwd=REPO, capture_output=True,
                         text=True, timeout=1800, env={**os.environ, "CARGO_TARGET_DIR": str(REPO / "target")})
    assert out.returncode == 0, out.stdout + out.stderr
    shutil.rmtree(cache, ignore_errors=True)
    tmp.rename(cache)  # atomic: a half-built cache entry is never seen
    for old in cache.parent.iterdir():  # wheels of older sources
        if old != cache and ".tmp" not in old.name:
            shutil.rmtree(old, ignore_errors=True)
    return sorted(cache.glob("leanrec-*.whl"))[0]


def _plugin_dirs() -> list[Path]:
    return sorted(p.parent for p in REPO.glob("plugins/*/pyproject.toml"))


@pytest.fixture(scope="session")
def plugin_wheels(tmp_path_factory) -> list[Path]:
    """One wheel per plugin distribution (pip wheel, no dependencies, no build isolation: offline)."""
    out_dir = tmp_path_factory.mktemp("plugin-wheels")
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "-w", str(out_dir), *map(str, _plugin_dirs())], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return sorted(out_dir.glob("*.whl"))


def _third_party_site(dest: Path) -> Path:
    """A folder of links to the running interpreter's site-packages entries, leanrec's own left out."""
    dest.mkdir()
    paths = sysconfig.get_paths()
    for site in dict.fromkeys([Path(paths["purelib"]), Path(paths["platlib"])]):
        for entry in site.iterdir():
            low = entry.name.lower().replace("-", "_")
            if low.startswith(("leanrec", "__editable__", "_leanrec")) or low.endswith(".pth") \
                    or (dest / entry.name).exists():
                continue
            (dest / entry.name).symlink_to(entry)
    return dest


@pytest.fixture(scope="session")
def wheel_env(tmp_path_factory, leanrec_wheel, plugin_wheels) -> dict:
    """A fresh venv outside the checkout with the wheels installed; returns its paths and environment."""
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    project = tmp_path_factory.mktemp("user-project")
    subprocess.run(["git", "init", "-q", str(project)], check=True, timeout=60)
    subprocess.run(["git", "-C", str(project), "-c", "user.name=u", "-c", "user.email=u@example.org", "commit",
                    "-q", "--allow-empty", "-m", "a user's repository"], check=True, timeout=60)
    venv = project / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    site = _third_party_site(project / "third-party-site")
    Path(purelib, "third_party.pth").write_text(f"{site}\n")
    out = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                          "--no-index", str(leanrec_wheel), *map(str, plugin_wheels)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LEANREC_", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               LEANREC_CACHE_DIR=str(project / "cache"), LEANREC_DATA_DIR=str(project / "data"))
    return {"project": project, "venv": venv, "python": py, "env": env, "site": site}


def _run(wheel_env: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    out = subprocess.run([str(wheel_env["venv"] / "bin" / "leanrec"), *args], cwd=wheel_env["project"],
                         env=wheel_env["env"], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"leanrec {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out


def test_third_party_site_leaves_leanrec_out(tmp_path):
    site = _third_party_site(tmp_path / "site")
    names = [p.name.lower() for p in site.iterdir()]
    assert "torch" in names and "numpy" in names
    assert not [n for n in names if n.startswith(("leanrec", "__editable__")) or n.endswith(".pth")]


def test_source_hash_follows_content(tmp_path):
    (tmp_path / "harness" / "__pycache__").mkdir(parents=True)
    (tmp_path / "harness" / "a.py").write_text("x = 1\n")
    first = source_hash(tmp_path, ("harness", "missing.toml"))
    (tmp_path / "harness" / "__pycache__" / "a.pyc").write_bytes(b"ignored")
    (tmp_path / "harness" / "_native.abi3.so").write_bytes(b"ignored")
    assert source_hash(tmp_path, ("harness", "missing.toml")) == first
    (tmp_path / "harness" / "a.py").write_text("x = 2\n")
    assert source_hash(tmp_path, ("harness", "missing.toml")) != first


def test_leanrec_wheel_holds_cards_stub_and_typing_marker(leanrec_wheel):
    names = set(zipfile.ZipFile(leanrec_wheel).namelist())
    cards = {f"leanrec/datasets/{p.name}" for p in (REPO / "harness" / "leanrec" / "datasets").glob("*.toml")}
    assert cards and cards <= names
    assert {"leanrec/py.typed", "leanrec/_native.pyi", "leanrec/__main__.py"} <= names


def test_installed_wheels_import_from_the_venv_only(wheel_env):
    code = ("import json, leanrec, leanrec._native, " + ", ".join(_modules()) + "; print(json.dumps("
            "[m.__file__ for m in (leanrec, leanrec._native, " + ", ".join(_modules()) + ")]))")
    out = subprocess.run([str(wheel_env["python"]), "-c", code], cwd=wheel_env["project"], env=wheel_env["env"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for f in json.loads(out.stdout):
        assert Path(f).resolve().is_relative_to(wheel_env["venv"].resolve()), f
        assert not Path(f).resolve().is_relative_to(REPO), f


def _modules() -> list[str]:
    """The import package of every plugin (its [tool.setuptools] packages)."""
    return [tomllib.loads((d / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"][0]
            for d in _plugin_dirs()]


def test_plugins_lists_every_distribution_without_errors(wheel_env):
    listed = {p["distribution"]: p for p in json.loads(_run(wheel_env, "plugins", "--json").stdout)}
    expected = {"leanrec": tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]}
    for d in _plugin_dirs():
        meta = tomllib.loads((d / "pyproject.toml").read_text())["project"]
        expected[meta["name"]] = meta["version"]
    assert {d: p["version"] for d, p in listed.items()} == expected
    assert {d: p["errors"] for d, p in listed.items() if p["errors"]} == {}
    cards = sorted(p.stem for p in (REPO / "harness" / "leanrec" / "datasets").glob("*.toml"))
    assert sorted(listed["leanrec"]["datasets"]) == cards


def test_data_list_shows_the_builtin_cards(wheel_env):
    out = _run(wheel_env, "data", "list").stdout
    for card in (REPO / "harness" / "leanrec" / "datasets").glob("*.toml"):
        assert card.stem in out


def test_tiny_run_records_leanrec_version_and_no_user_commit(wheel_env):
    """A backbone (baselines) and a selector built on `dnn` (declared dependency) run end to end; the record
    names leanrec's version and no commit although the venv sits inside a git repository."""
    results = wheel_env["project"] / "results"
    _run(wheel_env, "run", "-d", "synthetic", "-m", "lr", "-m", "mi:keep_ratio=0.5", "--seeds", "1",
         "--max-epochs", "1", "--data", "synthetic.n_rows=3000",
         "--results-dir", str(results), "--no-progress", "--threads", "1")
    records = [json.loads(p.read_text()) for p in sorted((results / "runs").rglob("*.json"))]
    assert len(records) == 2, [r.get("method") for r in records]
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for rec in records:
        assert rec["status"] == "ok", rec.get("error")
        assert rec["environment"]["leanrec"] == version
        assert rec["environment"]["git_commit"] is None
        assert 0.0 <= rec["metrics"]["auc"] <= 1.0
    page = results / "report.html"
    _run(wheel_env, "report", "--results-dir", str(results), "--out", str(page))
    # keep_ratio=0.5 is mi's default: the canonical variant name is plain `mi` (docs/protocol.md)
    assert all(f">{v}<" in page.read_text() for v in ("lr", "mi"))
