"""Plugin manager: discovers plugins through the ``leanrec`` entry-point group and collects what they register.

Rules (docs/plugins.md, "How plugins are loaded"):

* Each distribution registers all or nothing. Everything it registers is staged first and committed only when
  every hook of the distribution ran without error and no name clashed.
* Distributions are loaded in a fixed order that does not depend on how they were installed: the built-in
  ones (:data:`BUILTIN_DISTRIBUTIONS`) first, then third-party ones sorted by name. A name that an earlier
  distribution already registered is refused for the later one, with an error naming both; the earlier one
  keeps it. So a built-in never loses a name to a newcomer.
* A distribution that fails to import, raises in a hook, implements a hook that does not exist (misspelt:
  the error suggests the right name) or clashes is *disabled*: it registers nothing, the others load as
  usual, every command says once on stderr which plugin is disabled and why, and ``leanrec plugins`` exits 1.

Environment:
  LEANREC_LOAD_PLUGINS  comma-separated distribution names to load (unset = all installed; empty = none).
"""
from __future__ import annotations

import difflib
import importlib.metadata as md
import os
import sys
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, TextIO

import pluggy

from leanrec import hookspecs
from leanrec.errors import PluginError, UnknownNameError

ENTRY_POINT_GROUP = "leanrec"
ENV_LOAD = "LEANREC_LOAD_PLUGINS"
# Loaded first, in this order; they never lose a name to a third-party distribution.
BUILTIN_DISTRIBUTIONS = ("leanrec", "leanrec-baselines", "leanrec-selectors", "leanrec-lightfmp",
                         "leanrec-irazor", "leanrec-reaction", "leanrec-ssr")
# The order in which one distribution's hooks are called (datasets first: methods may refer to them).
HOOK_ORDER = ("leanrec_register_datasets", "leanrec_register_methods")
_KINDS = {"leanrec_register_methods": "method", "leanrec_register_datasets": "dataset"}


def _norm(dist: str) -> str:
    return dist.lower().replace("_", "-").replace(".", "-")


@dataclass
class PluginInfo:
    """What one plugin (usually one distribution) contributed, for `leanrec plugins`.

    ``errors`` non-empty means the plugin is disabled: it registered nothing, and ``refused`` lists the names
    (per kind: "methods", "datasets") it had staged before it failed (for a misspelt or undecorated hook:
    what that function registers when dry-run), so that an unknown-name error can say which disabled plugin
    would have provided the name.
    """

    name: str
    distribution: str | None
    version: str | None
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refused: dict[str, list[str]] = field(default_factory=dict)

    @property
    def disabled(self) -> bool:
        return bool(self.errors)

    @property
    def reason(self) -> str:
        """One line saying why the plugin is disabled ("" when it is not)."""
        return self.errors[0].splitlines()[0] if self.errors else ""

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "status": "disabled" if self.disabled else "ok"}


@dataclass
class Entry:
    """One registered object and the plugin that registered it."""

    name: str
    obj: Any
    plugin: str


class Registry:
    """Everything the loaded plugins registered: methods and datasets by name, and each plugin's status."""

    def __init__(self) -> None:
        self.methods: dict[str, Entry] = {}
        self.datasets: dict[str, Entry] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self.load_filter: list[str] | None = None

    # ---- lookup -------------------------------------------------------------------------------------
    def method(self, name: str):
        """The Method class registered as `name` (case-insensitive); suggests close names when unknown and
        names a disabled plugin that would have registered it."""
        return self._get(self.methods, "method", name).obj

    def dataset(self, name: str):
        """The DatasetCard registered as `name` (case-insensitive)."""
        return self._get(self.datasets, "dataset", name).obj

    def disabled(self) -> list[PluginInfo]:
        """The plugins that failed to load or register (they registered nothing)."""
        return [p for p in self.plugins.values() if p.disabled]

    def _get(self, table: dict[str, Entry], kind: str, name: str) -> Entry:
        key = name.lower()
        if key not in table:
            raise UnknownNameError(kind, name, table, note=self._unknown_note(kind, key))
        return table[key]

    def _unknown_note(self, kind: str, key: str) -> str:
        disabled = self.disabled()
        owners = [p for p in disabled if key in p.refused.get(kind + "s", [])]
        if owners:
            return " ".join(f"Plugin {p.name!r} would have registered it but is disabled: {p.reason.rstrip('.')}."
                            for p in owners)
        if disabled:
            return (f"Disabled plugin(s) that may have registered it: {', '.join(p.name for p in disabled)} "
                    "(`leanrec plugins` says why).")
        return ""

    def warn_disabled(self, stream: TextIO | None = None) -> None:
        """Write one line per disabled plugin (which one and why) to `stream` (default: stderr)."""
        stream = stream or sys.stderr
        for p in self.disabled():
            print(f"warning: plugin {p.name!r} is disabled (the others are loaded): {p.reason} "
                  "-- `leanrec plugins` shows the details.", file=stream)


class _Staging:
    """What one plugin registers, held back until all of its hooks succeeded (all-or-nothing)."""

    def __init__(self, reg: Registry, plugin: str):
        self.reg, self.plugin = reg, plugin
        self.items: dict[str, dict[str, Any]] = {"method": {}, "dataset": {}}
        self.clashes: list[str] = []

    def _add(self, kind: str, name: str, obj: Any) -> None:
        if not isinstance(name, str) or not name.strip():
            raise PluginError(f"{kind} names must be non-empty strings, got {name!r}")
        key = name.lower()
        mine = self.items[kind]
        if key in mine and mine[key] is not obj:
            raise PluginError(f"{self.plugin!r} registers {kind} {key!r} twice: {mine[key]!r} and {obj!r}")
        table = self.reg.methods if kind == "method" else self.reg.datasets
        if key in table and table[key].obj is not obj:  # noted, not raised: the rest is still recorded
            self.clashes.append(f"{kind} {key!r} is already registered by distribution {table[key].plugin!r}")
        mine[key] = obj

    def register_method(self, method_cls: Any, aliases: Iterable[str] = ()) -> None:
        """The ``register`` passed to ``leanrec_register_methods``."""
        from leanrec.methods import FAMILIES, Method

        if not (isinstance(method_cls, type) and issubclass(method_cls, Method)):
            raise PluginError(f"register() expects a subclass of leanrec.methods.Method, got {method_cls!r}")
        name = getattr(method_cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"{method_cls.__qualname__} has no `name` class attribute (e.g. name = \"my-method\")")
        if method_cls.family not in FAMILIES:
            close = difflib.get_close_matches(str(method_cls.family), FAMILIES, n=1)
            raise PluginError(f"{method_cls.__qualname__}.family = {method_cls.family!r} is not one of "
                              f"{', '.join(FAMILIES)}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        if isinstance(aliases, str):
            raise PluginError(f"aliases must be a list of names, got the string {aliases!r}")
        for n in (name, *aliases):
            self._add("method", n, method_cls)

    def register_dataset(self, card: Any) -> None:
        """The ``register`` passed to ``leanrec_register_datasets``."""
        from leanrec.data.cards import DatasetCard, load_card

        if not isinstance(card, DatasetCard):
            card = load_card(card)
        self._add("dataset", card.name, card)

    def commit(self, info: PluginInfo) -> None:
        for kind, table in (("dataset", self.reg.datasets), ("method", self.reg.methods)):
            for key, obj in self.items[kind].items():
                if key not in table:  # (an identical object another plugin registered keeps its owner)
                    table[key] = Entry(key, obj, self.plugin)
                getattr(info, kind + "s").append(key)

    def refuse(self, info: PluginInfo) -> None:
        info.refused = {kind + "s": list(items) for kind, items in self.items.items() if items}


def _load_filter() -> list[str] | None:
    """Distributions named in LEANREC_LOAD_PLUGINS (None: load every plugin)."""
    env = os.environ.get(ENV_LOAD)
    return None if env is None else [w.strip() for w in env.split(",") if w.strip()]


def _selected(dist: str, wanted: list[str] | None) -> bool:
    return wanted is None or _norm(dist) in {_norm(w) for w in wanted}


def _is_builtin(dist: str) -> bool:
    return _norm(dist) in BUILTIN_DISTRIBUTIONS


def _load_order(dist: str) -> tuple[int, str]:
    """Built-ins first (in BUILTIN_DISTRIBUTIONS order), then third-party distributions by name."""
    norm = _norm(dist)
    return (BUILTIN_DISTRIBUTIONS.index(norm), "") if norm in BUILTIN_DISTRIBUTIONS else (len(BUILTIN_DISTRIBUTIONS), norm)


def _hook_problems(pm: pluggy.PluginManager, obj: Any) -> tuple[list[str], list[tuple[Callable[..., Any], str]]]:
    """Misspelt hooks (with a suggestion) and leanrec_* functions that lack @leanrec.hookimpl, and for each
    such function the hook it was probably meant to be (to learn, without committing, what it registers)."""
    known = hookspecs.hook_names()
    problems: list[str] = []
    guesses: list[tuple[Callable[..., Any], str]] = []

    def closest(name: str) -> str | None:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        return close[0] if close else None

    def listing(name: str) -> str:
        close = closest(name)
        return (f"did you mean {close!r}? " if close else "") + f"hooks: {', '.join(known)}"

    for caller in pm.get_hookcallers(obj) or []:
        if caller.name not in known:
            problems.append(f"implements hook {caller.name!r}, which leanrec does not define ({listing(caller.name)})")
            if closest(caller.name):
                guesses += [(impl.function, closest(caller.name)) for impl in caller.get_hookimpls()
                            if impl.plugin is obj]
    impl_attr = hookspecs.PROJECT + "_impl"
    for attr in dir(obj):
        fn = getattr(obj, attr, None)
        if attr.startswith("leanrec_") and callable(fn) and not hasattr(fn, impl_attr) and not isinstance(fn, type):
            what = "the hook of that name" if attr in known else f"it ({listing(attr)})"
            problems.append(f"defines {attr!r} without @leanrec.hookimpl, so leanrec would never call {what}")
            if attr in known or closest(attr):
                guesses.append((fn, attr if attr in known else closest(attr)))
    return problems, guesses


def _where(exc: BaseException) -> str:
    """' (at file.py, line N)': the innermost frame outside leanrec itself (the plugin's line that failed),
    for one-line messages."""
    harness = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frames = traceback.extract_tb(exc.__traceback__)
    theirs = [f for f in frames if not os.path.abspath(f.filename).startswith(harness)]
    frame = (theirs or frames or [None])[-1]
    return f" (at {frame.filename}, line {frame.lineno})" if frame is not None else ""


def _load_plugin(reg: Registry, pm: pluggy.PluginManager, info: PluginInfo,
                 loaders: list[tuple[str, Callable[[], Any]]]) -> None:
    """Import, validate and register one plugin (all of a distribution's entry points) all-or-nothing."""
    reg.plugins[info.name] = info
    objs: list[Any] = []
    staging = _Staging(reg, info.name)
    registrars = {"leanrec_register_methods": staging.register_method,
                  "leanrec_register_datasets": staging.register_dataset}

    def fail(message: str, with_traceback: bool = True) -> None:
        info.errors.append(message + (f"\n{traceback.format_exc()}" if with_traceback else ""))
        for obj in objs:
            if pm.is_registered(obj):
                pm.unregister(obj)

    for i, (what, load) in enumerate(loaders):
        try:
            obj = load()
        except Exception as exc:
            return fail(f"import of {what} failed: {type(exc).__name__}: {exc}{_where(exc)}")
        objs.append(obj)
        try:
            pm.register(obj, name=f"{info.name}#{i}")
        except Exception as exc:  # pluggy rejects an impl whose arguments the hookspec does not provide
            return fail(f"{what}: {type(exc).__name__}: {exc}")
        problems, guesses = _hook_problems(pm, obj)
        if problems:
            for function, hook_name in guesses:  # only to say which names the plugin would have registered
                try:
                    function(register=registrars[hook_name])
                except Exception:
                    pass
            staging.refuse(info)
            return fail(f"{what} " + "; ".join(problems), with_traceback=False)

    for hook_name in HOOK_ORDER:
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if not any(impl.plugin is obj for obj in objs):
                continue
            info.hooks.append(hook_name)
            try:
                impl.function(register=registrars[hook_name])
            except Exception as exc:
                staging.refuse(info)
                return fail(f"{hook_name} raised {type(exc).__name__}: {exc}{_where(exc)}")
    if staging.clashes:
        staging.refuse(info)
        return fail(f"name clash: {'; '.join(staging.clashes)}. {info.name!r} registered nothing; "
                    "rename yours (names are shared by every installed plugin)", with_traceback=False)
    staging.commit(info)


def load_registry(extra_plugins: Iterable[Any] = (), *, entry_points: bool = True) -> Registry:
    """Build a fresh registry: entry-point plugins (honouring LEANREC_LOAD_PLUGINS), then `extra_plugins`.

    Entry-point distributions load built-ins first, then third-party ones by name (never by install order);
    `extra_plugins` (objects with hook functions, named by their ``__name__``) load last, in the order given.
    A plugin that fails in any way is disabled (``PluginInfo.errors``) and registers nothing; the others load.
    """
    reg = Registry()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    wanted = _load_filter()
    reg.load_filter = wanted

    plugins: dict[str, tuple[PluginInfo, list[tuple[str, Callable[[], Any]]]]] = {}
    if entry_points:
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else ep.name
            if not _selected(dist, wanted):
                continue
            info, loaders = plugins.setdefault(dist, (PluginInfo(dist, dist, ep.dist.version if ep.dist else None,
                                                                 builtin=_is_builtin(dist)), []))
            loaders.append((f"entry point {ep.name} = {ep.value!r}", ep.load))
    for dist in sorted(plugins, key=_load_order):
        _load_plugin(reg, pm, *plugins[dist])
    for i, obj in enumerate(extra_plugins):
        name = getattr(obj, "__name__", None) or f"{type(obj).__name__}-{i}"
        _load_plugin(reg, pm, PluginInfo(name, None, None), [(f"plugin {name!r}", lambda obj=obj: obj)])
    return reg


def builtin_dataset(name: str) -> Any:
    """The core distribution's built-in card `name`, read without loading every plugin (method plugins
    import torch: seconds); None when there is no such card or LEANREC_LOAD_PLUGINS leaves the core out.
    Equal to ``registry().dataset(name)``: the core loads first, so no plugin can take a built-in card's name."""
    from leanrec.builtin_datasets import builtin_card

    if not _selected("leanrec", _load_filter()):
        return None
    return builtin_card(name)


@lru_cache(maxsize=1)
def registry() -> Registry:
    """The process-wide registry, loaded once on first use; says once (stderr) which plugins are disabled."""
    reg = load_registry()
    reg.warn_disabled()
    return reg
