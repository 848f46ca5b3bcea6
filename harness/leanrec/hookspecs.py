"""Hook specifications: the contract between leanrec and its plugins.

Every built-in method and dataset is registered through these hooks by a separate distribution under
plugins/, exactly as a third-party package would. A plugin is a module listed under the entry-point group
``leanrec`` that defines functions decorated with ``@leanrec.hookimpl`` whose names match a hook below.
docs/plugins.md documents each hook; tests/test_plugin_hookspecs.py checks that every hook here has a
docstring, a section in docs/plugins.md and a test named ``test_hook_<hook name>``.
"""
from __future__ import annotations

import sys
from typing import Callable

import pluggy

PROJECT = "leanrec"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def leanrec_register_methods(register: Callable[..., None]) -> None:
    """Register methods (models, selectors, pruning/search methods) with the harness.

    Call ``register(method_class)`` once per method. ``method_class`` subclasses
    :class:`leanrec.methods.Method`, sets ``name`` (unique, lowercase, e.g. ``"dnn"``), a ``Config``
    dataclass whose defaults are the paper's settings, and implements ``fit``. Optional keyword
    ``aliases=[...]`` registers extra names for the same class. A name another distribution registered
    first is refused, and with it everything this distribution registers (see docs/plugins.md).
    """


@hookspec
def leanrec_register_datasets(register: Callable[..., None]) -> None:
    """Register datasets with the harness.

    Call ``register(card)`` with either a path to a dataset card (TOML) or a
    :class:`leanrec.data.cards.DatasetCard` instance (for generated datasets). Names must be unique.
    """


def hook_names() -> list[str]:
    """The names of every hook defined above, sorted (what a plugin's ``@hookimpl`` functions may be called)."""
    module = sys.modules[__name__]
    return sorted(name for name, obj in vars(module).items()
                  if callable(obj) and hasattr(obj, PROJECT + "_spec"))
