"""Layers shared by the model zoo. Every forward is vectorised over fields (no Python loops over fields)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from leanrec import _native


def field_columns(dims: Sequence[int], keep: Sequence[int]) -> list[int]:
    """Column indices, in a flattened field-major embedding of per-field widths `dims`, of the fields `keep`."""
    starts = [0]
    for d in dims:
        starts.append(starts[-1] + d)
    return [c for i in keep for c in range(starts[i], starts[i + 1])]


def select_linear_inputs(linear: nn.Linear, columns: Sequence[int]) -> nn.Linear:
    """A new Linear reading only the input `columns` of `linear` (weights copied)."""
    cols = torch.as_tensor(list(columns), dtype=torch.long, device=linear.weight.device)
    new = nn.Linear(len(cols), linear.out_features, bias=linear.bias is not None).to(linear.weight.device)
    with torch.no_grad():
        new.weight.copy_(linear.weight[:, cols])
        if linear.bias is not None:
            new.bias.copy_(linear.bias)
    return new


def _native_dropout(t: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    t = t.detach().contiguous()
    out = torch.empty_like(t)
    _native.dropout(t.view(-1).numpy(), out.view(-1).numpy(), p, seed)
    return out


class _NativeDropoutFn(torch.autograd.Function):
    """Dropout whose mask is a function of (seed, position): backward regenerates it, nothing is stored."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float, seed: int) -> torch.Tensor:  # type: ignore[override]
        ctx.p, ctx.seed = p, seed
        return _native_dropout(x, p, seed)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return _native_dropout(grad, ctx.p, ctx.seed), None, None


class Dropout(nn.Dropout):
    """nn.Dropout that, training on CPU in float32, applies the native extension's counter-based dropout.

    torch's CPU ``bernoulli_`` draws from one sequential generator, and on a DNN [400, 400, 400] training
    step its masks are a large share of the time. ``leanrec._native.dropout`` hashes (seed, position)
    instead and applies the mask in the same pass; the backward pass regenerates the mask from the seed
    rather than storing it (``python benchmarks/bench_dropout.py`` measures both). The distribution is
    the same (each unit kept with probability 1 - p and scaled by 1 / (1 - p)), and the seed is drawn
    from torch's global generator, so runs stay reproducible under ``seed_everything``. Otherwise (CUDA,
    other dtypes, eval, in-place) it is nn.Dropout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (not self.training or self.p == 0 or self.p >= 1 or self.inplace or x.device.type != "cpu"
                or x.dtype != torch.float32):
            return super().forward(x)
        seed = int(torch.randint(0, 2**62, (1,)).item())
        return _NativeDropoutFn.apply(x, self.p, seed)


class MLP(nn.Module):
    """Linear -> [BatchNorm] -> activation -> [Dropout] blocks, optionally followed by an output Linear."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int | None = 1, dropout: float = 0.0,
                 batch_norm: bool = False, activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_dim
        for h in hidden:
            layers.append(nn.Linear(prev, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(activation())
            if dropout > 0:
                layers.append(Dropout(dropout))
            prev = h
        if out_dim is not None:
            layers.append(nn.Linear(prev, out_dim))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_features = in_dim, (out_dim if out_dim is not None else prev)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def select_inputs(self, columns: Sequence[int]) -> None:
        """Keep only the given input columns of the first Linear, copying their weights (weight transfer)."""
        first = self.net[0]
        assert isinstance(first, nn.Linear)
        self.net[0] = select_linear_inputs(first, columns)
        self.in_dim = self.net[0].in_features


class FactorizationMachine(nn.Module):
    """Second-order FM term: 0.5 * sum_k ((sum_f e_fk)^2 - sum_f e_fk^2), for E of shape (B, F, d)."""

    def forward(self, E: torch.Tensor) -> torch.Tensor:
        square_of_sum = E.sum(dim=1).pow(2)
        sum_of_square = E.pow(2).sum(dim=1)
        return 0.5 * (square_of_sum - sum_of_square).sum(dim=1)
