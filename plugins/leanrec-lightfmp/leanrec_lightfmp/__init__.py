"""Light-FMP for leanrec: hard-concrete field gates, Lagrangian sparsity, pruning with weight transfer."""
from leanrec_lightfmp.gates import HardConcreteGate, Lagrangian
from leanrec_lightfmp.method import LightFMP, LightFMPConfig, keep_count, prune, rank_fields, stratified_subset

__all__ = ["HardConcreteGate", "Lagrangian", "LightFMP", "LightFMPConfig", "keep_count", "prune", "rank_fields",
           "stratified_subset"]
