"""Acceptance: real distributions, pip-installed into temporary directories, seen by the real CLI.

* a newcomer registering a built-in's name (`chi2` of leanrec-selectors), in either install order (its site
  directory listed before or after the built-ins'): the built-in stays whole, the newcomer is disabled whole,
  and `leanrec run` names it when asked for one of its methods;
* a misspelt hook disables only its own plugin, and `leanrec run -m fm` still works, saying once why;
* `leanrec plugins` exits 1 while any plugin is disabled (0 otherwise: tests/test_plugins.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from leanrec.plugins import load_registry

REPO = Path(__file__).resolve().parents[1]
NEWCOMER = "leanrec-chi2-newcomer"
TYPO = "leanrec-typo"

# Run the CLI with one extra site directory put first on sys.path (like PYTHONPATH: its distributions are
# listed before the installed ones) or last (after site-packages: listed after them); print that listing.
_RUNNER = textwrap.dedent("""\
    import importlib.metadata as md, sys
    site, first = sys.argv.pop(1), sys.argv.pop(1) == "first"
    sys.path.insert(0, site) if first else sys.path.append(site)
    print("ORDER", [ep.dist.name for ep in md.entry_points(group="leanrec")], file=sys.stderr)
    sys.argv[0] = "leanrec"
    if sys.argv[1] == "-c":
        exec(sys.argv[2])
    else:
        from leanrec.cli import main
        main()
""")


def _write_dist(root: Path, dist: str, plugin_source: str) -> Path:
    module = dist.replace("-", "_")
    src = root / dist
    (src / module).mkdir(parents=True)
    (src / module / "__init__.py").write_text("")
    (src / module / "plugin.py").write_text(textwrap.dedent(plugin_source))
    (src / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "0.3.0"
        dependencies = ["leanrec"]

        [project.entry-points.leanrec]
        {dist} = "{module}.plugin"

        [tool.setuptools]
        packages = ["{module}"]
        """))
    return src


def _pip_install(src: Path, target: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(src)], check=True, capture_output=True, timeout=300)
    return target


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plugin-dists")
    newcomer = _write_dist(root, NEWCOMER, """\
        import leanrec
        from leanrec.selection import SelectorMethod

        class Chi2(SelectorMethod):
            name = "chi2"                      # leanrec-selectors registered it first

        class Mine(SelectorMethod):
            name = "newcomer-own"

        @leanrec.hookimpl
        def leanrec_register_methods(register):
            register(Mine)
            register(Chi2)
        """)
    typo = _write_dist(root, TYPO, """\
        import leanrec
        from leanrec.methods import Method

        class Typo(Method):
            name = "typo-own"

        @leanrec.hookimpl
        def leanrec_register_method(register):   # misspelt: the hook is leanrec_register_methods
            register(Typo)
        """)
    return {"newcomer": _pip_install(newcomer, root / "site-newcomer"),
            "typo": _pip_install(typo, root / "site-typo")}


def _leanrec(site: Path, where: str, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    out = subprocess.run([sys.executable, "-c", _RUNNER, str(site), where, *args], capture_output=True, text=True,
                         timeout=300, env=os.environ.copy())
    order_line = next(line for line in out.stderr.splitlines() if line.startswith("ORDER "))
    out.stderr = "\n".join(line for line in out.stderr.splitlines() if not line.startswith("ORDER "))
    return out, eval(order_line.removeprefix("ORDER "))


@pytest.fixture(scope="module")
def builtin_selectors() -> list[str]:
    """What leanrec-selectors registers when no newcomer is installed."""
    info = load_registry().plugins["leanrec-selectors"]
    assert not info.errors and "chi2" in info.methods and len(info.methods) > 3
    return info.methods


@pytest.mark.parametrize("where", ["first", "last"])
def test_clash_in_either_install_order_leaves_the_builtin_whole(sites, builtin_selectors, where):
    out, order = _leanrec(sites["newcomer"], where, "plugins", "--json")
    # the premise: the newcomer really is listed before / after the built-in in the two cases
    assert (order.index(NEWCOMER) < order.index("leanrec-selectors")) == (where == "first"), order
    assert out.returncode == 1, out.stdout + out.stderr
    plugins = {p["distribution"]: p for p in json.loads(out.stdout)}
    selectors, newcomer = plugins["leanrec-selectors"], plugins[NEWCOMER]
    assert selectors["status"] == "ok" and selectors["methods"] == builtin_selectors
    assert newcomer["status"] == "disabled" and newcomer["methods"] == [] and newcomer["version"] == "0.3.0"
    assert newcomer["refused"] == {"methods": ["newcomer-own", "chi2"]}
    assert ("name clash: method 'chi2' is already registered by distribution 'leanrec-selectors'. "
            f"'{NEWCOMER}' registered nothing") in newcomer["errors"][0]
    assert all(p["status"] == "ok" for name, p in plugins.items() if name != NEWCOMER)


@pytest.mark.parametrize("where", ["first", "last"])
def test_run_names_the_disabled_plugin_and_the_builtin_keeps_its_method(sites, tmp_path, where):
    out, _ = _leanrec(sites["newcomer"], where, "run", "-d", "synthetic", "-m", "newcomer-own", "--seeds", "1",
                      "--results-dir", str(tmp_path), "--no-progress")
    assert out.returncode == 2, out.stdout + out.stderr
    err = " ".join(out.stderr.split())  # rich wraps long lines
    assert "Unknown method 'newcomer-own'" in err
    assert f"Plugin '{NEWCOMER}' would have registered it but is disabled: name clash: method 'chi2'" in err
    assert err.count(f"warning: plugin '{NEWCOMER}' is disabled") == 1
    check = ("from leanrec.plugins import registry; "
             "print(registry().method('chi2').__module__, registry().methods['chi2'].plugin)")
    out, _ = _leanrec(sites["newcomer"], where, "-c", check)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["leanrec_selectors.statistical", "leanrec-selectors"]


def test_misspelt_hook_disables_only_its_plugin_and_every_command_still_runs(sites, tmp_path):
    out, _ = _leanrec(sites["typo"], "first", "plugins", "--json")
    assert out.returncode == 1
    plugins = {p["distribution"]: p for p in json.loads(out.stdout)}
    typo = plugins.pop(TYPO)
    assert typo["status"] == "disabled" and typo["methods"] == [] and typo["refused"] == {"methods": ["typo-own"]}
    assert "did you mean 'leanrec_register_methods'?" in typo["errors"][0]
    assert all(p["status"] == "ok" and p["builtin"] for p in plugins.values()) and len(plugins) >= 7

    table, _ = _leanrec(sites["typo"], "first", "plugins")
    assert table.returncode == 1 and f"{TYPO} is disabled" in " ".join(table.stdout.split())

    card = REPO / "harness" / "leanrec" / "datasets" / "synthetic.toml"
    out, _ = _leanrec(sites["typo"], "first", "run", "-d", str(card), "-m", "fm", "--seeds", "1", "--max-epochs", "1",
                      "--data", "synthetic.n_rows=2000", "--results-dir", str(tmp_path), "--no-progress")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr.count("is disabled") == 1 and f"warning: plugin '{TYPO}' is disabled" in out.stderr
    records = [json.loads(p.read_text()) for p in tmp_path.glob("runs/**/*.json")]
    assert [r["status"] for r in records] == ["ok"]

