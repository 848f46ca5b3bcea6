"""Entry point of the leanrec-selectors distribution (group "leanrec")."""
from __future__ import annotations

from typing import Callable

import leanrec


@leanrec.hookimpl
def leanrec_register_methods(register: Callable[..., None]) -> None:
    from leanrec_selectors import SELECTORS

    for cls in SELECTORS:
        register(cls)
