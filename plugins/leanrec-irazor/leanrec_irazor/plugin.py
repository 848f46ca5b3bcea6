"""Entry point: registers i-Razor, its argmax (AutoDim-style) variant, its cross-model transfer and its
field selection alone (w/ FDE) with leanrec."""
from __future__ import annotations

from typing import Callable

import leanrec

from leanrec_irazor.method import IRazor, IRazorArgmax, IRazorFDE, IRazorTransfer


@leanrec.hookimpl
def leanrec_register_methods(register: Callable[..., None]) -> None:
    register(IRazor)
    register(IRazorArgmax)
    register(IRazorTransfer)
    register(IRazorFDE)
