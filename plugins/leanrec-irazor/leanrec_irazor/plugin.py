"""Entry point: registers i-Razor and its argmax (AutoDim-style) variant with leanrec."""
from __future__ import annotations

from typing import Callable

import leanrec

from leanrec_irazor.method import IRazor, IRazorArgmax


@leanrec.hookimpl
def leanrec_register_methods(register: Callable[..., None]) -> None:
    register(IRazor)
    register(IRazorArgmax)
