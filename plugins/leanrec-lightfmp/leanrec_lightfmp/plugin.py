"""Entry point: registers Light-FMP (default DNN backbone) and one convenience name per paper backbone."""
from __future__ import annotations

from typing import Callable

import leanrec

from leanrec_lightfmp.method import BACKBONE_VARIANTS, LightFMP


@leanrec.hookimpl
def leanrec_register_methods(register: Callable[..., None]) -> None:
    register(LightFMP)
    for method_cls in BACKBONE_VARIANTS.values():
        register(method_cls)
