"""The plugin system: registration, isolation of broken plugins (all-or-nothing, disabled not fatal), name
clashes, misspelt hooks, unknown-name messages, filtering, and the CLI.

Real distributions installed into a temporary directory: tests/test_plugin_distributions.py."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import leanrec
from leanrec.errors import UnknownNameError
from leanrec.methods import Method
from leanrec.plugins import BUILTIN_DISTRIBUTIONS, load_registry

REPO = Path(__file__).resolve().parents[1]


class _FakeMethod(Method):
    name = "fake-method"


class _OtherMethod(Method):
    name = "other-method"


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


class _HalfWayPlugin:
    """Registers one method, then fails: must end up registering nothing."""
    __name__ = "half-way-plugin"

    @staticmethod
    @leanrec.hookimpl
    def leanrec_register_methods(register):
        register(_OtherMethod)
        raise IndexError("list index out of range")


class _MisspeltPlugin:
    __name__ = "misspelt-plugin"

    @staticmethod
    @leanrec.hookimpl
    def leanrec_register_method(register):  # no such hook: missing "s"
        register(_OtherMethod)


def _plugin(name: str, methods=(), *, datasets=()) -> types.SimpleNamespace:
    """A plugin object registering `methods` (classes) and `datasets` (cards)."""
    def leanrec_register_methods(register):
        for m in methods:
            register(m)

    def leanrec_register_datasets(register):
        for card in datasets:
            register(card)
    return types.SimpleNamespace(__name__=name,
                                 leanrec_register_methods=leanrec.hookimpl(leanrec_register_methods),
                                 leanrec_register_datasets=leanrec.hookimpl(leanrec_register_datasets))


def _method(name: str, **attrs) -> type[Method]:
    return type(f"M_{name}", (Method,), {"name": name, **attrs})


def test_hook_leanrec_register_methods():
    reg = load_registry([_GoodPlugin()], entry_points=False)
    assert reg.method("fake-method") is _FakeMethod
    assert reg.method("FAKE") is _FakeMethod  # aliases, case-insensitive
    info = reg.plugins["good-plugin"]
    assert info.hooks == ["leanrec_register_methods"]
    assert info.methods == ["fake-method", "fake"]
    assert reg.methods["fake"].plugin == "good-plugin"


def test_hook_leanrec_register_datasets(tmp_path):
    from leanrec.data.cards import DatasetCard

    card_file = tmp_path / "mine.toml"
    card_file.write_text('name = "mine-from-file"\n[source]\nformat = "synthetic"\n[synthetic]\nn_rows = 100\n')
    generated = DatasetCard.from_dict({"name": "mine-generated", "source": {"format": "synthetic"}})
    reg = load_registry([_plugin("ds-plugin", datasets=[card_file, generated])], entry_points=False)
    assert not reg.disabled()
    assert reg.dataset("mine-generated") is generated
    assert reg.dataset("MINE-FROM-FILE").path == card_file
    assert reg.plugins["ds-plugin"].datasets == ["mine-from-file", "mine-generated"]


def test_misspelt_hook_disables_only_its_plugin_and_suggests_the_right_name():
    reg = load_registry([_MisspeltPlugin(), _GoodPlugin()], entry_points=False)
    assert reg.method("fake-method") is _FakeMethod
    info = reg.plugins["misspelt-plugin"]
    assert info.disabled and info.methods == [] and "other-method" not in reg.methods
    msg = info.errors[0]
    assert "'leanrec_register_method'" in msg and "did you mean 'leanrec_register_methods'?" in msg
    listed = msg.split("hooks: ")[1]
    assert "leanrec_register_method," not in listed + "," and listed.startswith("leanrec_register_datasets")
    # what the misspelt hook would have registered is known (not committed), so `-m other-method` can say why
    assert info.refused == {"methods": ["other-method"]}
    with pytest.raises(UnknownNameError, match="Plugin 'misspelt-plugin' would have registered it but is disabled: "
                                               "plugin 'misspelt-plugin' implements hook 'leanrec_register_method'"):
        reg.method("other-method")


def test_hook_function_without_hookimpl_decorator_disables_its_plugin():
    def leanrec_register_methods(register):
        register(_FakeMethod)

    plugin = types.SimpleNamespace(__name__="undecorated", leanrec_register_methods=leanrec_register_methods)
    reg = load_registry([plugin], entry_points=False)
    assert reg.plugins["undecorated"].disabled and "fake-method" not in reg.methods
    assert reg.plugins["undecorated"].refused == {"methods": ["fake-method"]}
    assert "without @leanrec.hookimpl" in reg.plugins["undecorated"].errors[0]


def test_hook_with_wrong_argument_name_disables_its_plugin():
    @leanrec.hookimpl
    def leanrec_register_methods(reg):  # the hook passes `register`
        reg(_FakeMethod)

    plugin = types.SimpleNamespace(__name__="bad-args", leanrec_register_methods=leanrec_register_methods)
    reg = load_registry([plugin, _plugin("fine", [_OtherMethod])], entry_points=False)
    assert reg.plugins["bad-args"].disabled and "reg" in reg.plugins["bad-args"].errors[0]
    assert reg.method("other-method") is _OtherMethod


def test_plugin_raising_during_registration_does_not_take_others_down():
    reg = load_registry([_BrokenPlugin(), _GoodPlugin()], entry_points=False)
    assert reg.method("fake-method") is _FakeMethod
    errors = reg.plugins["broken-plugin"].errors
    assert len(errors) == 1 and "boom while registering" in errors[0]


def test_registration_is_all_or_nothing():
    reg = load_registry([_HalfWayPlugin()], entry_points=False)
    info = reg.plugins["half-way-plugin"]
    assert info.disabled and info.methods == [] and reg.methods == {}
    assert info.refused == {"methods": ["other-method"]}
    with pytest.raises(UnknownNameError, match="Plugin 'half-way-plugin' would have registered it but is "
                                               "disabled: leanrec_register_methods raised IndexError"):
        reg.method("other-method")


def test_unknown_method_suggests_close_names():
    reg = load_registry([_GoodPlugin()], entry_points=False)
    with pytest.raises(UnknownNameError, match="Did you mean 'fake-method'"):
        reg.method("fake-methd")


def test_unknown_method_names_disabled_plugins_when_the_owner_is_not_known():
    reg = load_registry([_GoodPlugin(), _BrokenPlugin()], entry_points=False)
    with pytest.raises(UnknownNameError, match="Disabled plugin.*broken-plugin"):
        reg.method("something-else")
    reg = load_registry([_GoodPlugin()], entry_points=False)
    with pytest.raises(UnknownNameError) as exc:
        reg.method("something-else")
    assert "isabled" not in str(exc.value)


def test_duplicate_name_is_refused_for_the_newcomer_naming_both():
    clash = _method("fake-method")
    newcomer = _plugin("newcomer", [_OtherMethod, clash])
    reg = load_registry([_GoodPlugin(), newcomer], entry_points=False)
    assert reg.method("fake-method") is _FakeMethod  # the first owner keeps it
    assert reg.plugins["good-plugin"].methods == ["fake-method", "fake"] and not reg.plugins["good-plugin"].errors
    info = reg.plugins["newcomer"]
    assert info.disabled and info.methods == [] and "other-method" not in reg.methods  # all or nothing
    assert "'fake-method' is already registered by distribution 'good-plugin'" in info.errors[0]
    assert "'newcomer' registered nothing" in info.errors[0]
    assert info.refused == {"methods": ["other-method", "fake-method"]}


def test_alias_clash_and_double_registration_within_one_plugin():
    aliased = types.SimpleNamespace(__name__="alias-clash", leanrec_register_methods=leanrec.hookimpl(
        lambda register: register(_OtherMethod, aliases=["FAKE"])))
    reg = load_registry([_GoodPlugin(), aliased], entry_points=False)
    assert reg.plugins["alias-clash"].disabled and "'fake' is already registered" in reg.plugins["alias-clash"].errors[0]
    twice = _plugin("twice", [_method("dup"), _method("dup")])
    reg = load_registry([twice], entry_points=False)
    assert reg.plugins["twice"].disabled and "registers method 'dup' twice" in reg.plugins["twice"].errors[0]


def test_registered_objects_are_validated():
    cases = {
        "not-a-method": (object, "expects a subclass of leanrec.methods.Method"),
        "no-name": (type("NoName", (Method,), {}), "has no `name` class attribute"),
        "bad-family": (_method("fam", family="selectors"), "did you mean 'selector'?"),
    }
    reg = load_registry([_plugin(k, [cls]) for k, (cls, _) in cases.items()], entry_points=False)
    for plugin, (_, expected) in cases.items():
        assert reg.plugins[plugin].disabled and expected in reg.plugins[plugin].errors[0], plugin


def test_warn_disabled_writes_one_line_per_disabled_plugin():
    reg = load_registry([_BrokenPlugin(), _GoodPlugin(), _MisspeltPlugin()], entry_points=False)
    out = io.StringIO()
    reg.warn_disabled(out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("warning: plugin 'broken-plugin' is disabled") and "boom" in lines[0]
    assert lines[1].startswith("warning: plugin 'misspelt-plugin' is disabled")


class _FakeDist:
    def __init__(self, name: str):
        self.name, self.version = name, "1.0"


class _FakeEntryPoint:
    def __init__(self, dist: str, plugin):
        self.dist, self.name, self.value, self._plugin = _FakeDist(dist), dist, f"{dist}.plugin", plugin

    def load(self):
        return self._plugin


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.permutations(range(5)))
def test_who_owns_a_name_does_not_depend_on_listing_order(monkeypatch, order):
    """Entry points listed in any order (= any install order): built-ins keep their names, a clash between
    third parties is decided by distribution name, and the losers are disabled whole."""
    shared = _method("shared")
    plugins = [
        _FakeEntryPoint("leanrec-selectors", _plugin("sel", [shared, _method("lasso")])),
        _FakeEntryPoint("zz-newcomer", _plugin("zz", [_method("shared"), _method("zz-own")])),
        _FakeEntryPoint("aa-newcomer", _plugin("aa", [_method("aa-own"), _method("lasso")])),
        _FakeEntryPoint("mm-third", _plugin("mm", [_method("third"), _method("zz-own")])),
        _FakeEntryPoint("leanrec-baselines", _plugin("bl", [_method("dnn")])),
    ]
    monkeypatch.setattr("leanrec.plugins.md.entry_points", lambda group: [plugins[i] for i in order])
    monkeypatch.delenv("LEANREC_LOAD_PLUGINS", raising=False)
    reg = load_registry()
    owners = {k: e.plugin for k, e in reg.methods.items()}
    assert owners == {"shared": "leanrec-selectors", "lasso": "leanrec-selectors", "dnn": "leanrec-baselines",
                      "third": "mm-third", "zz-own": "mm-third"}
    assert {p.name for p in reg.disabled()} == {"aa-newcomer", "zz-newcomer"}
    assert "'lasso' is already registered by distribution 'leanrec-selectors'" in reg.plugins["aa-newcomer"].errors[0]
    assert "'zz-own' is already registered by distribution 'mm-third'" in reg.plugins["zz-newcomer"].errors[0]
    assert reg.plugins["leanrec-selectors"].builtin and not reg.plugins["mm-third"].builtin


def test_builtin_distribution_list_matches_the_repository():
    names = {tomllib.loads(p.read_text())["project"]["name"] for p in REPO.glob("plugins/*/pyproject.toml")}
    assert set(BUILTIN_DISTRIBUTIONS) == names | {"leanrec"}


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
    assert out.returncode == 0, out.stdout + out.stderr
    listed = {p["distribution"]: p for p in json.loads(out.stdout)}
    for pyproject in sorted(REPO.glob("plugins/*/pyproject.toml")):
        meta = tomllib.loads(pyproject.read_text())["project"]
        assert meta["name"] in listed, f"{meta['name']} is not installed/discovered"
        assert listed[meta["name"]]["version"] == meta["version"]
        assert listed[meta["name"]]["status"] == "ok", listed[meta["name"]]["errors"]
        assert listed[meta["name"]]["builtin"]


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
