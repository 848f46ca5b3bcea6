"""Entry point of the leanrec-ssr distribution: registers ssr-s and ssr-d with the harness."""
from __future__ import annotations

from typing import Callable

import leanrec

from leanrec_ssr.methods import SSRDMethod, SSRSMethod


@leanrec.hookimpl
def leanrec_register_methods(register: Callable[..., None]) -> None:
    register(SSRSMethod)
    register(SSRDMethod)
