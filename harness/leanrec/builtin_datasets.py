"""The core distribution's built-in dataset cards, registered through the same hook a third party uses.

Listed in pyproject.toml under ``[project.entry-points.leanrec]`` as ``leanrec-core-datasets``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from leanrec.hookspecs import hookimpl


def cards_dir() -> Path:
    """The folder of built-in cards: <repo root>/datasets."""
    from leanrec.data.cards import repo_root

    return repo_root() / "datasets"


@hookimpl
def leanrec_register_datasets(register: Callable[..., None]) -> None:
    """Register every card in datasets/*.toml."""
    for path in sorted(cards_dir().glob("*.toml")):
        register(path)
