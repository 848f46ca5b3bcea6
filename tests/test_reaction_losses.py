"""REACTION's Dynamic Tower Fusion losses (eqs. 9-13) against hand computations on tiny batches."""
from __future__ import annotations

import math

import pytest
import torch

from leanrec_reaction.losses import (binary_entropy_from_logits, distillation_loss, info_nce,
                                     relational_fusion_loss, spatial_fusion_loss)

S2 = 1 / math.sqrt(2)


def test_spatial_fusion_loss_by_hand_with_margin():
    Zp = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])          # B=1, P=2, c=2
    Fm = torch.tensor([[[2.0, 0.0], [1.0, 1.0]]])          # cosines: 1 and 1/sqrt(2)
    # m1 = 0.1: ReLU(0.9 - 1) = 0, ReLU(0.9 - 0.7071) = 0.1929; mean over the 2 positions.
    assert spatial_fusion_loss(Zp, Fm, 0.1).item() == pytest.approx((0.9 - S2) / 2, abs=1e-6)
    # m1 = 0: the aligned position still costs nothing, the other 1 - 1/sqrt(2).
    assert spatial_fusion_loss(Zp, Fm, 0.0).item() == pytest.approx((1 - S2) / 2, abs=1e-6)
    # a margin above 1 - cos silences every position
    assert spatial_fusion_loss(Zp, Fm, 0.5).item() == pytest.approx(0.0, abs=1e-7)


def test_relational_fusion_loss_by_hand_with_margin():
    Zp = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])   # relations: (0,1)=0, (0,2)=(1,2)=1/sqrt2
    Fm = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [0.0, 1.0]]])   # relations: (0,1)=1, (0,2)=(1,2)=0
    # |differences| off the diagonal: 1, 1/sqrt2, 1/sqrt2 (each twice); diagonal 0. Mean over N^2 = 9.
    m2 = 0.2
    expected = 2 * ((1 - m2) + 2 * (S2 - m2)) / 9
    assert relational_fusion_loss(Zp, Fm, m2).item() == pytest.approx(expected, abs=1e-6)
    assert relational_fusion_loss(Zp, Fm, 0.0).item() == pytest.approx(2 * (1 + 2 * S2) / 9, abs=1e-6)
    assert relational_fusion_loss(Zp, Fm, 1.0).item() == pytest.approx(0.0, abs=1e-7)
    # a batch of two samples averages the per-sample losses
    both = relational_fusion_loss(torch.cat([Zp, Zp]), torch.cat([Fm, Zp]), m2).item()
    assert both == pytest.approx(expected / 2, abs=1e-6)


def _ell(a: torch.Tensor, b: torch.Tensor, i: int, tau: float) -> float:
    """-log softmax of row i of a b^T / tau at column i, from eq. 11 written out with math."""
    a = a / a.norm(dim=1, keepdim=True)
    b = b / b.norm(dim=1, keepdim=True)
    sims = [float(a[i] @ b[j]) / tau for j in range(len(b))]
    return -(sims[i] - math.log(sum(math.exp(s) for s in sims)))


def test_info_nce_by_hand_and_symmetric():
    torch.manual_seed(0)
    z1, z2, tau = torch.randn(3, 4), torch.randn(3, 4), 0.5
    expected = sum(_ell(z1, z2, i, tau) + _ell(z2, z1, i, tau) for i in range(3)) / (2 * 3)   # eq. 13
    assert info_nce(z1, z2, tau).item() == pytest.approx(expected, rel=1e-5)
    assert info_nce(z1, z2, tau).item() == pytest.approx(info_nce(z2, z1, tau).item(), rel=1e-6)
    # only one direction would differ from the symmetric loss in general
    one_way = sum(_ell(z1, z2, i, tau) for i in range(3)) / 3
    assert one_way != pytest.approx(expected, rel=1e-3)


def test_info_nce_minimal_for_aligned_towers():
    tau = 0.2
    aligned = torch.eye(4)                                    # orthonormal rows, the two towers agree
    low = info_nce(aligned, 3.0 * aligned, tau).item()        # invariant to scale (L2 normalised)
    # closed form at alignment: log(1 + (B - 1) exp(-1 / tau))
    assert low == pytest.approx(math.log(1 + 3 * math.exp(-1 / tau)), rel=1e-5)
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        assert info_nce(aligned, aligned + 0.5 * torch.randn(4, 4, generator=gen), tau).item() > low
    assert info_nce(aligned, aligned[[1, 0, 3, 2]], tau).item() > low   # swapped partners
    # gradient vanishes-ish relative to a misaligned start: one step of descent moves towards alignment
    z2 = (aligned + 0.3 * torch.randn(4, 4, generator=gen)).requires_grad_()
    before = info_nce(aligned, z2, tau)
    before.backward()
    after = info_nce(aligned, (z2 - 0.1 * z2.grad).detach(), tau)
    assert after.item() < before.item()


def test_binary_entropy_and_distillation_by_hand():
    z = torch.tensor([0.0, 2.0, -30.0])
    p = torch.sigmoid(z).double()
    h = -(p * p.log() + (1 - p) * (1 - p).log())
    h[2] = 0.0  # limit; computed stably by the implementation
    assert torch.allclose(binary_entropy_from_logits(z).double(), h, atol=1e-6)
    assert binary_entropy_from_logits(torch.tensor(0.0)).item() == pytest.approx(math.log(2))
    s, t, T = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.0]), 2.0
    q = torch.sigmoid(t / T)
    ps = torch.sigmoid(s / T)
    expected = -(q * ps.log() + (1 - q) * (1 - ps).log()).mean() * T * T
    assert distillation_loss(s, t, T).item() == pytest.approx(expected.item(), rel=1e-5)
