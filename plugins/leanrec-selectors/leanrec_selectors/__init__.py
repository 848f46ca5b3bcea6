"""leanrec-selectors: field-selection baselines run through the ERASE-style protocol of leanrec.selection."""
from leanrec_selectors.statistical import ChiSquare, GroupLasso, MutualInfo, PCARank, VarianceFilter
from leanrec_selectors.gated import AdaFS, AdaFSE2E, AutoField, LPFS, MvFS, MvFSE2E, OptFS

SELECTORS = [MutualInfo, ChiSquare, VarianceFilter, GroupLasso, PCARank, AutoField, AdaFS, OptFS, LPFS, MvFS,
             AdaFSE2E, MvFSE2E]

__all__ = [c.__name__ for c in SELECTORS] + ["SELECTORS"]
