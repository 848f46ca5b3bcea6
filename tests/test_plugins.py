"""The plugin system: registration, loud failure on unknown hooks, isolation of broken plugins, filtering."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import leanrec
from leanrec.errors import PluginError, UnknownNameError
from leanrec.methods import Method
from leanrec.plugins import load_registry

REPO = Path(__file__).resolve().parents[1]


class _FakeMethod(Method):
    name = "fake-method"


class _GoodPlugin:
    __name__ = "good-plugin"

    @staticmethod
    @leanrec.hookimpl
    def leanrec_register_methods(register):
        register(_FakeMethod, aliases=["fake"])


class _BrokenPlugin:
    __name__ = "broken-plugin"

    @staticmethod
    @leanrec.hookimpl
    def leanrec_register_methods(register):
        raise RuntimeError("boom while registering")


class _MisspeltPlugin:
    __name__ = "misspelt-plugin"

    @staticmethod
    @leanrec.hookimpl
    def leanrec_register_method(register):  # no such hook: missing "s"
        pass


def test_registration_through_a_plugin_fixture():
    reg = load_registry([_GoodPlugin()], entry_points=False)
    assert reg.method("fake-method") is _FakeMethod
    assert reg.method("FAKE") is _FakeMethod  # aliases, case-insensitive
    info = reg.plugins["good-plugin"]
    assert info.hooks == ["leanrec_register_methods"]
    assert info.methods == ["fake-method", "fake"]


def test_hook_without_spec_fails_loudly():
    with pytest.raises(PluginError, match="leanrec_register_method"):
        load_registry([_MisspeltPlugin()], entry_points=False)


def test_plugin_raising_during_registration_does_not_take_others_down():
    reg = load_registry([_BrokenPlugin(), _GoodPlugin()], entry_points=False)
    assert reg.method("fake-method") is _FakeMethod
    errors = reg.plugins["broken-plugin"].errors
    assert len(errors) == 1 and "boom while registering" in errors[0]


def test_unknown_method_suggests_close_names():
    reg = load_registry([_GoodPlugin()], entry_points=False)
    with pytest.raises(UnknownNameError, match="Did you mean 'fake-method'"):
        reg.method("fake-methd")


def test_duplicate_names_across_plugins_are_rejected():
    class Other:
        __name__ = "other"

        @staticmethod
        @leanrec.hookimpl
        def leanrec_register_methods(register):
            class Clash(Method):
                name = "fake-method"
            register(Clash)

    reg = load_registry([_GoodPlugin(), Other()], entry_points=False)
    errs = reg.plugins["other"].errors + reg.plugins["good-plugin"].errors
    assert any("registered twice" in e for e in errs)


def test_env_filter_empty_loads_nothing(monkeypatch):
    monkeypatch.setenv("LEANREC_LOAD_PLUGINS", "")
    reg = load_registry()
    assert reg.plugins == {} and reg.methods == {}


def test_builtin_dataset_shortcut_equals_the_registry(monkeypatch):
    """resolve_card reads built-in cards without loading method plugins; same card as the registry's."""
    from leanrec.plugins import builtin_dataset

    reg = load_registry()
    for name in ("criteo", "frappe", "synthetic"):
        a, b = builtin_dataset(name), reg.dataset(name)
        assert (a.name, a.path, a.fields, a.source) == (b.name, b.path, b.fields, b.source)
    assert builtin_dataset("no-such-card") is None
    monkeypatch.setenv("LEANREC_LOAD_PLUGINS", "leanrec-baselines")  # the core's cards left out
    assert builtin_dataset("criteo") is None


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leanrec.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_cli_says_so_when_no_plugins_are_loaded():
    out = _cli("plugins", env={"LEANREC_LOAD_PLUGINS": ""})
    assert out.returncode == 0, out.stderr
    assert "no plugins were loaded" in out.stdout


def test_cli_plugins_json_lists_every_builtin_distribution_with_version():
    out = _cli("plugins", "--json")
    assert out.returncode == 0, out.stderr
    listed = {p["distribution"]: p for p in json.loads(out.stdout)}
    for pyproject in sorted(REPO.glob("plugins/*/pyproject.toml")):
        meta = tomllib.loads(pyproject.read_text())["project"]
        assert meta["name"] in listed, f"{meta['name']} is not installed/discovered"
        assert listed[meta["name"]]["version"] == meta["version"]
        assert not listed[meta["name"]]["errors"], listed[meta["name"]]["errors"]


def test_cli_version_and_help():
    out = _cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"leanrec {leanrec.__version__}"
    for cmd in ("plugins", "run", "leaderboard", "bench", "stats", "data"):
        res = _cli(cmd, "--help")
        assert res.returncode == 0, (cmd, res.stderr)
        assert "Usage" in res.stdout


def test_plugin_template_is_discovered_only_via_its_entry_point(template_plugin_site):
    """The installed template is found through its entry point when its site dir is on the path, and is
    absent otherwise (nothing imports it by name)."""
    with_it = _cli("plugins", "--json", env={"PYTHONPATH": os.pathsep.join([str(template_plugin_site),
                                                                            os.environ.get("PYTHONPATH", "")])})
    assert with_it.returncode == 0, with_it.stderr
    found = {p["distribution"]: p for p in json.loads(with_it.stdout)}
    assert found["leanrec-example"]["methods"] == ["example-mean-pool"]
    without = _cli("plugins", "--json")
    assert "leanrec-example" not in {p["distribution"] for p in json.loads(without.stdout)}
