"""i-Razor for leanrec: differentiable joint field selection and embedding-dimension search.

Yao, Liu, He, Sheng, Wang, Xiao, Cao. "i-Razor: A Differentiable Neural Input Razor for Feature Selection
and Dimension Search in DNN-Based Recommender Systems", IEEE TKDE 2023 (arXiv:2204.00281).
"""
from leanrec_irazor.search import (IRazorSearch, cardinality_shares, cpt_prune, region_masks, region_widths,
                                   resolve_candidates)
from leanrec_irazor.method import (IRazor, IRazorArgmax, IRazorConfig, IRazorFDE, IRazorTransfer,
                                   ProjectedFieldEmbedding)

__all__ = ["IRazor", "IRazorArgmax", "IRazorConfig", "IRazorFDE", "IRazorTransfer", "IRazorSearch",
           "ProjectedFieldEmbedding", "cardinality_shares", "cpt_prune", "region_masks", "region_widths",
           "resolve_candidates"]
