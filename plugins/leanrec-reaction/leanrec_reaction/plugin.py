"""Entry point of the leanrec-reaction distribution: registers REACTION and its ablations."""
from __future__ import annotations

from typing import Callable

import leanrec
from leanrec_reaction.methods import METHODS


@leanrec.hookimpl
def leanrec_register_methods(register: Callable[..., None]) -> None:
    for method in METHODS:
        register(method)
