"""SSR: Explicit Sparsity for Scalable Recommendation (Yu et al., SIGIR 2026) as leanrec backbones.

``ssr-s`` uses the static random filter (a gather), ``ssr-d`` a projection followed by Iterative Competitive
Sparse (ICS). See docs/ssr.md.
"""
from leanrec_ssr.ics import ics, topk_ste
from leanrec_ssr.methods import SSRConfig, SSRDMethod, SSRSMethod
from leanrec_ssr.model import FILTERS, SSRLayer, SSRModel

__all__ = ["ics", "topk_ste", "SSRConfig", "SSRSMethod", "SSRDMethod", "SSRLayer", "SSRModel", "FILTERS"]
