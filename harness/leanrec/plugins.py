"""Plugin manager: discovers plugins through the ``leanrec`` entry-point group and collects what they register.

Environment:
  LEANREC_LOAD_PLUGINS  comma-separated distribution names to load (unset = all installed; empty = none).
"""
from __future__ import annotations

import importlib.metadata as md
import os
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable

import pluggy

from leanrec import hookspecs
from leanrec.errors import PluginError, UnknownNameError

ENTRY_POINT_GROUP = "leanrec"
ENV_LOAD = "LEANREC_LOAD_PLUGINS"


def _norm(dist: str) -> str:
    return dist.lower().replace("_", "-").replace(".", "-")


@dataclass
class PluginInfo:
    """What one plugin (usually one distribution) contributed, for `leanrec plugins`."""

    name: str
    distribution: str | None
    version: str | None
    hooks: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Entry:
    """One registered object and the plugin that registered it."""

    name: str
    obj: Any
    plugin: str


class Registry:
    """Everything the loaded plugins registered: methods, datasets and backbones, by name."""

    def __init__(self) -> None:
        self.methods: dict[str, Entry] = {}
        self.datasets: dict[str, Entry] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self.load_filter: list[str] | None = None

    # ---- lookup -------------------------------------------------------------------------------------
    def method(self, name: str):
        """The Method class registered as `name` (case-insensitive); suggests close names when unknown."""
        return self._get(self.methods, "method", name).obj

    def dataset(self, name: str):
        return self._get(self.datasets, "dataset", name).obj

    @staticmethod
    def _get(table: dict[str, Entry], kind: str, name: str) -> Entry:
        key = name.lower()
        if key not in table:
            raise UnknownNameError(kind, name, table)
        return table[key]

    # ---- registration -------------------------------------------------------------------------------
    def _add(self, table: dict[str, Entry], kind: str, name: str, obj: Any, plugin: str) -> None:
        key = name.lower()
        if key in table and table[key].obj is not obj:
            raise PluginError(f"{kind} {name!r} registered twice: by {table[key].plugin!r} and by {plugin!r}")
        table[key] = Entry(key, obj, plugin)
        getattr(self.plugins[plugin], kind + "s").append(key)

    def _method_register(self, plugin: str) -> Callable[..., None]:
        def register(method_cls: Any, aliases: Iterable[str] = ()) -> None:
            name = getattr(method_cls, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(f"{method_cls!r} has no `name` attribute")
            for n in (name, *aliases):
                self._add(self.methods, "method", n, method_cls, plugin)
        return register

    def _dataset_register(self, plugin: str) -> Callable[..., None]:
        def register(card: Any) -> None:
            from leanrec.data.cards import DatasetCard, load_card

            if not isinstance(card, DatasetCard):
                card = load_card(card)
            self._add(self.datasets, "dataset", card.name, card, plugin)
        return register


def _load_filter() -> list[str] | None:
    """Distributions named in LEANREC_LOAD_PLUGINS (None: load every plugin)."""
    env = os.environ.get(ENV_LOAD)
    return None if env is None else [w.strip() for w in env.split(",") if w.strip()]


def _selected(dist: str, wanted: list[str] | None) -> bool:
    return wanted is None or _norm(dist) in {_norm(w) for w in wanted}


def load_registry(extra_plugins: Iterable[Any] = (), *, entry_points: bool = True) -> Registry:
    """Build a fresh registry: load entry-point plugins (honouring LEANREC_LOAD_PLUGINS) plus `extra_plugins`.

    A hook implementation whose name matches no hookspec raises PluginError (a misspelt hook must not be
    silently ignored). A plugin that fails to import or raises while registering is recorded in
    ``PluginInfo.errors`` with its distribution name; the other plugins still load.
    """
    reg = Registry()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    wanted = _load_filter()
    reg.load_filter = wanted

    if entry_points:
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else ep.name
            if not _selected(dist, wanted):
                continue
            info = reg.plugins.setdefault(dist, PluginInfo(dist, dist, ep.dist.version if ep.dist else None))
            try:
                module = ep.load()
            except Exception:
                info.errors.append(f"import of {ep.value!r} failed:\n{traceback.format_exc()}")
                continue
            _register_checked(pm, module, dist)
    for i, obj in enumerate(extra_plugins):
        name = getattr(obj, "__name__", None) or f"{type(obj).__name__}-{i}"
        reg.plugins.setdefault(name, PluginInfo(name, None, None))
        _register_checked(pm, obj, name)

    registrars = {
        "leanrec_register_methods": reg._method_register,
        "leanrec_register_datasets": reg._dataset_register,
    }
    for hook_name in ("leanrec_register_datasets", "leanrec_register_methods"):
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            info = reg.plugins[impl.plugin_name]
            info.hooks.append(hook_name)
            try:
                impl.function(register=registrars[hook_name](impl.plugin_name))
            except Exception as exc:  # one broken plugin must not take the others down
                info.errors.append(f"{hook_name} raised {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    return reg


def _register_checked(pm: pluggy.PluginManager, obj: Any, name: str) -> None:
    pm.register(obj, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(obj)
        raise PluginError(
            f"plugin {name!r} implements a hook that leanrec does not define: {exc}. "
            f"Known hooks: {', '.join(sorted(h for h in dir(pm.hook) if h.startswith('leanrec_')))}"
        ) from exc


def builtin_dataset(name: str) -> Any:
    """The core distribution's built-in card `name`, read without loading every plugin (method plugins
    import torch: seconds); None when there is no such card or LEANREC_LOAD_PLUGINS leaves the core out.
    Equal to ``registry().dataset(name)``: the registry rejects a second dataset of the same name."""
    from leanrec.builtin_datasets import builtin_card

    if not _selected("leanrec", _load_filter()):
        return None
    return builtin_card(name)


@lru_cache(maxsize=1)
def registry() -> Registry:
    """The process-wide registry, loaded once on first use."""
    return load_registry()
