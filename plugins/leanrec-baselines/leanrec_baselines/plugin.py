"""Entry point of the leanrec-baselines distribution: registers every backbone in the zoo."""
from __future__ import annotations

from typing import Callable

import leanrec
from leanrec_baselines.methods import ALL_METHODS


@leanrec.hookimpl
def leanrec_register_methods(register: Callable[..., None]) -> None:
    """Register one BackboneMethod per baseline architecture."""
    for method in ALL_METHODS:
        register(method)
