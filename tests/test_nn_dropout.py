"""leanrec.nn.Dropout: the native counter-based mask behaves like nn.Dropout (distribution, gradient, modes)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from torch import nn

from leanrec import _native
from leanrec.nn import Dropout
from leanrec.nn.layers import _NativeDropoutFn


def mask_of(n: int, p: float, seed: int) -> np.ndarray:
    """The native dropout applied to ones: its mask (0 or 1 / (1 - p))."""
    mask = np.empty(n, dtype=np.float32)
    _native.dropout(np.ones(n, dtype=np.float32), mask, p, seed)
    return mask


@settings(max_examples=25, deadline=None)
@given(p=st.floats(0.01, 0.95), n=st.integers(1, 5000), seed=st.integers(0, 2**63 - 1))
def test_mask_values_and_kept_share(p: float, n: int, seed: int) -> None:
    mask = mask_of(n, p, seed)
    keep = np.float32(1 / (1 - p))
    assert set(np.unique(mask)) <= {np.float32(0), keep}
    # the kept count is Binomial(n, 1 - p): a two-sided test at 1e-6 only fails on a real bias
    kept = int((mask != 0).sum())
    assert sps.binomtest(kept, n, 1 - p).pvalue > 1e-6


def test_mask_depends_only_on_the_seed_and_is_uncorrelated() -> None:
    a, b, c = mask_of(200_001, 0.3, 5), mask_of(200_001, 0.3, 5), mask_of(200_001, 0.3, 6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    kept = (a != 0).astype(float)
    for lag in (1, 2, 3):  # neighbours share a hash (lag 1) or come from consecutive counters
        assert abs(np.corrcoef(kept[:-lag], kept[lag:])[0, 1]) < 0.015
    with pytest.raises(ValueError, match="dropout probability"):
        _native.dropout(a, b, 1.0, 1)
    with pytest.raises(ValueError, match="elements"):
        _native.dropout(a, b[:10], 0.5, 1)


@pytest.mark.filterwarnings("ignore:Input #0 requires gradient")  # gradcheck in float32: the native op's dtype
def test_dropout_module_forward_backward_and_modes() -> None:
    drop = Dropout(0.25)
    assert isinstance(drop, nn.Dropout)
    x = torch.randn(64, 300, requires_grad=True)
    torch.manual_seed(3)
    y = drop(x)
    torch.manual_seed(3)
    assert torch.equal(y, drop(x))  # reproducible under torch's seed
    mask = torch.where(y != 0, torch.tensor(1 / 0.75), torch.tensor(0.0))
    assert torch.allclose(y, x * mask)
    y.sum().backward()
    assert torch.allclose(x.grad, mask)  # gradient flows through kept units only, scaled like nn.Dropout
    drop.eval()
    assert torch.equal(drop(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))  # nn.Dropout's p = 1 behaviour
    assert Dropout(0.5)(x.double()).dtype == torch.float64
    # a non-contiguous input: backward regenerates the forward's mask
    xt = torch.randn(300, 64).t().requires_grad_()
    torch.manual_seed(4)
    yt = Dropout(0.5)(xt)
    (yt * 3).sum().backward()
    assert torch.allclose(xt.grad, 3 * torch.where(yt != 0, 2.0, 0.0))
    assert torch.autograd.gradcheck(lambda v: _NativeDropoutFn.apply(v, 0.4, 9),
                                    (torch.randn(6, 5, dtype=torch.float32, requires_grad=True),),
                                    eps=1e-2, atol=1e-2, rtol=1e-2)
