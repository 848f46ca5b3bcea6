"""Dynamic Tower Fusion losses, REACTION section 4.2 (eqs. 9-13), and the ER / KD objectives of Table 3.

Feature maps are (B, P, c): P positions ("spatial features", N = h x w in the paper) of width c per sample.
Every loss is vectorised over the batch and the positions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def spatial_fusion_loss(Zp: torch.Tensor, Fm: torch.Tensor, m1: float) -> torch.Tensor:
    """L_srf (eq. 9): mean over samples and positions of ReLU(1 - m1 - cos(z'_p, f_p)).

    Zp is the projected map Z' = W Z and Fm the partner's map, both (B, P, c)."""
    cos = F.cosine_similarity(Zp, Fm, dim=-1, eps=1e-8)            # (B, P)
    return torch.relu(1.0 - m1 - cos).mean()


def relation_matrix(M: torch.Tensor) -> torch.Tensor:
    """Per-sample cosine similarity between positions: (B, P, c) -> (B, P, P)."""
    U = F.normalize(M, dim=-1, eps=1e-8)
    return U @ U.transpose(1, 2)


def relational_fusion_loss(Zp: torch.Tensor, Fm: torch.Tensor, m2: float) -> torch.Tensor:
    """L_rff (eq. 10): mean over samples and the P x P position pairs of ReLU(|R(Z')_ij - R(F)_ij| - m2)."""
    return torch.relu((relation_matrix(Zp) - relation_matrix(Fm)).abs() - m2).mean()


def info_nce(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """L_contra (eqs. 11-13): symmetric InfoNCE over the batch; (z1_i, z2_i) are positives, the other rows of
    the batch negatives. Inputs (B, d) are L2-normalised here."""
    u, v = F.normalize(z1, dim=-1, eps=1e-8), F.normalize(z2, dim=-1, eps=1e-8)
    logits = u @ v.T / tau                                          # [i, j] = z1_i . z2_j / tau
    target = torch.arange(u.shape[0], device=u.device)
    # ell_i: row i of logits; ell'_i: row i of logits.T (z2_i against every z1_j); eq. 13 averages both.
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def binary_entropy_from_logits(z: torch.Tensor) -> torch.Tensor:
    """H(sigmoid(z)) in nats, elementwise, computed stably: p softplus(-z) + (1 - p) softplus(z)."""
    p = torch.sigmoid(z)
    return p * F.softplus(-z) + (1 - p) * F.softplus(z)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float = 1.0) -> torch.Tensor:
    """Soft-label KD for a binary output: BCE(sigmoid(s / T), sigmoid(t / T)) * T^2 (Hinton et al. 2015)."""
    soft = torch.sigmoid(teacher_logits.detach() / temperature)
    return F.binary_cross_entropy_with_logits(student_logits / temperature, soft) * temperature ** 2
