"""Every hook is documented and tested (in the style of datasette's test_docs.py): each hookspec has a
docstring, a section heading in docs/plugins.md, and a test named test_hook_<hook name> in tests/."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from leanrec import hookspecs

REPO = Path(__file__).resolve().parents[1]
HOOKS = hookspecs.hook_names()


def test_hook_names_lists_exactly_the_hookspecs():
    marked = sorted(n for n, obj in vars(hookspecs).items() if hasattr(obj, "leanrec_spec"))
    assert HOOKS == marked == ["leanrec_register_datasets", "leanrec_register_methods"]


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_has_a_docstring(hook):
    doc = getattr(hookspecs, hook).__doc__
    assert doc and len(doc.strip()) > 40, f"{hook} needs a docstring saying what to register and how"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_is_documented_in_plugins_md(hook):
    docs = (REPO / "docs" / "plugins.md").read_text()
    assert re.search(rf"^### `{hook}\(register\)`$", docs, re.M), f"docs/plugins.md needs a section on {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_has_a_test(hook):
    tests = "\n".join(p.read_text() for p in (REPO / "tests").glob("test_*.py"))
    assert re.search(rf"^def test_hook_{hook}\(", tests, re.M), f"add a test named test_hook_{hook}"
