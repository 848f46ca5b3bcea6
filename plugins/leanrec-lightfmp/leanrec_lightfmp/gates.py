"""Field-level hard-concrete gates (Louizos et al., 2018) and the Lagrangian sparsity constraint of Light-FMP.

Light-FMP (Bui, Ning, Wang) eq. 3: alpha ~ N(mu, sigma^2), u ~ U(0, 1),
s = sigmoid((log(u / (1 - u)) + log alpha) / beta), s_bar = s (zeta - gamma) + gamma, z = clamp(s_bar, 0, 1);
eq. 4: lambda (mean z - t) + phi (mean z - t)^2 with (lambda, phi) maximised and everything else minimised
(as in CoFi / Sheared-LLaMA). ``t`` is the target *keep* ratio, 1 - prune ratio.
"""
from __future__ import annotations

import math

import torch
from torch import nn

BETA, ZETA, GAMMA = 0.83, 1.1, -0.1
ALPHA_MIN = 1e-2  # the N(0.5, 0.0625) draw of alpha is clipped here so that log(alpha) stays finite
_EPS = 1e-6       # keeps u away from 0 and 1 (log(u / (1 - u)) finite)


class HardConcreteGate(nn.Module):
    """One hard-concrete gate per field, parameterised by ``log_alpha`` (F,).

    ``sample()`` draws one stochastic mask z (F,) in [0, 1] (exact 0s and 1s have positive probability);
    ``deterministic()`` is the test-time gate clamp(sigmoid(log_alpha) (zeta - gamma) + gamma, 0, 1);
    ``expected_l0()`` is P(z > 0) per field, the differentiable expected number of open gates.
    """

    def __init__(self, num_fields: int, init_mean: float = 0.5, init_std: float = 0.25,
                 beta: float = BETA, zeta: float = ZETA, gamma: float = GAMMA):
        super().__init__()
        if not (gamma < 0 < 1 < zeta):
            raise ValueError(f"hard concrete needs gamma < 0 and zeta > 1, got gamma={gamma}, zeta={zeta}")
        alpha = torch.empty(num_fields).normal_(init_mean, init_std).clamp_min(ALPHA_MIN)
        self.log_alpha = nn.Parameter(alpha.log())
        self.beta, self.zeta, self.gamma = beta, zeta, gamma

    def sample(self, shape: tuple[int, ...] = ()) -> torch.Tensor:
        """A stochastic mask of shape ``shape + (F,)`` (reparameterised: differentiable in log_alpha)."""
        u = torch.rand(*shape, self.log_alpha.numel(), device=self.log_alpha.device).clamp(_EPS, 1 - _EPS)
        s = torch.sigmoid((u.log() - (-u).log1p() + self.log_alpha) / self.beta)
        return (s * (self.zeta - self.gamma) + self.gamma).clamp(0.0, 1.0)

    def deterministic(self) -> torch.Tensor:
        """The eval-time gate (F,)."""
        return (torch.sigmoid(self.log_alpha) * (self.zeta - self.gamma) + self.gamma).clamp(0.0, 1.0)

    def expected_l0(self) -> torch.Tensor:
        """P(z_m > 0) per field (F,): 1 - CDF of s_bar at 0 (Louizos et al., eq. 12)."""
        return torch.sigmoid(self.log_alpha - self.beta * math.log(-self.gamma / self.zeta))

    def forward(self) -> torch.Tensor:
        """Stochastic sample in training mode, deterministic gate in eval mode."""
        return self.sample() if self.training else self.deterministic()


class Lagrangian(nn.Module):
    """lambda (c - t) + phi (c - t)^2 for a constraint value c and target t; lambda, phi start at 0 and are
    trained by gradient *ascent* (put them in an optimiser group with ``maximize=True``)."""

    def __init__(self) -> None:
        super().__init__()
        self.lambda_ = nn.Parameter(torch.zeros(()))
        self.phi = nn.Parameter(torch.zeros(()))

    def forward(self, value: torch.Tensor, target: float) -> torch.Tensor:
        gap = value - target
        return self.lambda_ * gap + self.phi * gap * gap
