"""The core distribution's built-in dataset cards, registered through the same hook a third party uses.

Listed in pyproject.toml under ``[project.entry-points.leanrec]`` as ``leanrec-core-datasets``. The cards are
package data (``leanrec/datasets/*.toml``), read with :mod:`importlib.resources`, so they ship inside the wheel
and are found the same way in an editable checkout and in a normal install.
"""
from __future__ import annotations

from importlib.resources import as_file, files
from typing import TYPE_CHECKING, Callable

from leanrec.data.cards import DatasetCard, load_card
from leanrec.hookspecs import hookimpl

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


def cards_dir() -> Traversable:
    """The folder of built-in cards inside the installed package (``leanrec/datasets``)."""
    return files("leanrec") / "datasets"


def card_files() -> list[Traversable]:
    """Every built-in card file, sorted by file name."""
    return sorted((p for p in cards_dir().iterdir() if p.name.endswith(".toml")), key=lambda p: p.name)


def load_builtin(resource: Traversable) -> DatasetCard:
    """Read one built-in card (through a temporary file when the package is not on a file system)."""
    with as_file(resource) as path:
        return load_card(path)


def builtin_card(name: str) -> DatasetCard | None:
    """The built-in card `name` (its file is `<name>.toml`), or None when there is none."""
    resource = cards_dir() / f"{name}.toml"
    if not resource.is_file():
        return None
    card = load_builtin(resource)
    return card if card.name == name else None


@hookimpl
def leanrec_register_datasets(register: Callable[..., None]) -> None:
    """Register every built-in card (``leanrec/datasets/*.toml``)."""
    for resource in card_files():
        register(load_builtin(resource))
