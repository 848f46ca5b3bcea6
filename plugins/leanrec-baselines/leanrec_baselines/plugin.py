"""Entry point of the leanrec-baselines distribution: registers every backbone in the zoo, magnitude pruning
and the synthetic logs' ceiling (`oracle`)."""
from __future__ import annotations

from typing import Callable

import leanrec
from leanrec_baselines.methods import ALL_METHODS
from leanrec_baselines.oracle import Oracle
from leanrec_baselines.pruning import MagnitudePruning


@leanrec.hookimpl
def leanrec_register_methods(register: Callable[..., None]) -> None:
    """Register one BackboneMethod per baseline architecture, one-shot magnitude pruning of any of them, and the
    synthetic logs' ceiling (`oracle`)."""
    for method in [*ALL_METHODS, MagnitudePruning, Oracle]:
        register(method)
