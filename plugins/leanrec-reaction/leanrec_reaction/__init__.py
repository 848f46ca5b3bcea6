"""REACTION: parameter-efficient learning for recommendation (Wu, Du, Jia, Dong; AAAI 2026).

* :mod:`leanrec_reaction.afe`    -- Adaptive Feature Extraction: greedy forward field selection on J = PI + BI + CI.
* :mod:`leanrec_reaction.losses` -- Dynamic Tower Fusion losses (spatial, relational, contrastive; eqs. 9-13).
* :mod:`leanrec_reaction.model`  -- the MLP tower (serving model) and the K-tower training cohort.
* :mod:`leanrec_reaction.methods` -- the registered methods (REACTION and its Table 3/4 ablations).
"""
from leanrec_reaction.afe import AFEResult, afe_select, afe_statistics, greedy_select, plot_afe
from leanrec_reaction.losses import info_nce, relational_fusion_loss, spatial_fusion_loss

__all__ = ["AFEResult", "afe_select", "afe_statistics", "greedy_select", "plot_afe", "info_nce",
           "relational_fusion_loss", "spatial_fusion_loss"]
