"""Optimizers of the harness trainer: exact dense Adam, or row-wise updates for the embedding tables whose cost
follows the rows a batch touches, not the vocabulary.

``embedding_optimizer`` (a key of every method's config):

* ``"adam"``: torch's (fused) Adam over every parameter, embedding tables included. Exact: every row's
  moments decay every step, even rows the batch did not touch. What the papers (and FuxiCTR) use; its cost
  per step grows with the table size (the dense gradient, the moment update and gradient clipping all touch
  every row).
* ``"lazy_adam"``: the tables get sparse gradients and :class:`RowwiseLazyAdam` updates only the rows in
  the batch (moments of other rows are left as they are: TensorFlow's LazyAdam, torch's SparseAdam);
  ``embedding_l2`` decays only those rows. The rest of the model keeps fused dense Adam.
* ``"rowwise_adagrad"``: sparse gradients and one Adagrad accumulator per row (FBGEMM/TorchRec's
  EXACT_ROWWISE_ADAGRAD): the least optimizer state (one float per row).
* ``"auto"`` (the default): ``"adam"`` while the model's tables hold fewer than ``AUTO_SPARSE_ROWS`` rows in
  all, ``"lazy_adam"`` above. Below it the dense update is cheap and exact; above it it dominates a step
  (2M rows x 10 dims: 47 ms of a 58 ms DNN step on 2 CPU threads, see benchmarks/results/scale.md).

Gradient clipping (:func:`clip_grad_norm`) computes the global norm over sparse gradients' values without
densifying them.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch
from torch import nn

from leanrec.errors import ConfigError

EMBEDDING_OPTIMIZERS = ("auto", "adam", "lazy_adam", "rowwise_adagrad")
AUTO_SPARSE_ROWS = 1_000_000


class _RowwiseOptimizer(torch.optim.Optimizer):
    """Steps each parameter on the rows its (sparse or dense) gradient touches: subclasses implement
    :meth:`update_rows` with the rows, their gradient (L2 weight decay already added) and the state."""

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # noqa: D102 - torch.optim.Optimizer.step
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                rows, values = touched_rows(p.grad)
                if rows.numel() == 0:
                    continue
                if group["weight_decay"]:
                    values = values + group["weight_decay"] * p.index_select(0, rows)
                self.update_rows(p, rows, values, group, self.state[p])

    def update_rows(self, p: torch.Tensor, rows: torch.Tensor, values: torch.Tensor, group: dict[str, Any],
                    state: dict[str, Any]) -> None:
        raise NotImplementedError


class RowwiseLazyAdam(_RowwiseOptimizer):
    """Adam that updates only the rows present in a (sparse or dense) gradient of 2-D parameters.

    For a sparse gradient the rows are its (coalesced) indices; for a dense one, the rows with a non-zero
    gradient. Bias correction uses the parameter's step count, as torch.optim.SparseAdam does. Weight decay
    is L2 added to the gradient of the touched rows only.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    def update_rows(self, p: torch.Tensor, rows: torch.Tensor, values: torch.Tensor, group: dict[str, Any],
                    state: dict[str, Any]) -> None:
        b1, b2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        m = state["exp_avg"].index_select(0, rows).mul_(b1).add_(values, alpha=1 - b1)
        v = state["exp_avg_sq"].index_select(0, rows).mul_(b2).addcmul_(values, values, value=1 - b2)
        state["exp_avg"].index_copy_(0, rows, m)
        state["exp_avg_sq"].index_copy_(0, rows, v)
        bc1, bc2 = 1 - b1 ** state["step"], 1 - b2 ** state["step"]
        denom = (v / bc2).sqrt_().add_(group["eps"])
        p.index_add_(0, rows, m.div_(denom), alpha=-group["lr"] / bc1)


class RowwiseAdagrad(_RowwiseOptimizer):
    """Adagrad with one accumulator per row (the mean squared gradient of the row), updating touched rows only."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "eps": eps, "weight_decay": weight_decay})

    def update_rows(self, p: torch.Tensor, rows: torch.Tensor, values: torch.Tensor, group: dict[str, Any],
                    state: dict[str, Any]) -> None:
        if not state:
            state["sum"] = torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
        acc = state["sum"].index_select(0, rows).add_(values.pow(2).mean(dim=1))
        state["sum"].index_copy_(0, rows, acc)
        p.index_add_(0, rows, values / (acc.sqrt().add_(group["eps"]).unsqueeze(1)), alpha=-group["lr"])


def touched_rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row indices, their gradient rows) of a 2-D gradient: a sparse one's coalesced entries, or a dense
    one's non-zero rows."""
    if grad.is_sparse and grad.sparse_dim() == 1:
        g = grad.coalesce()
        return g.indices()[0], g.values()
    if grad.is_sparse:
        grad = grad.to_dense()
    rows = grad.abs().sum(dim=1).nonzero().squeeze(1)
    return rows, grad.index_select(0, rows)


class OptimizerChain:
    """Several optimizers stepped as one (dense Adam for the model, a row-wise one for the tables). Exposes
    what the trainer and methods use: ``param_groups`` (LR decay), ``zero_grad``, ``step``,
    ``add_param_group`` (added to the first, dense, optimizer), ``state_dict``."""

    def __init__(self, optimizers: Sequence[torch.optim.Optimizer]):
        self.optimizers = list(optimizers)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for o in self.optimizers for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def add_param_group(self, group: dict[str, Any]) -> None:
        self.optimizers[0].add_param_group(group)

    def state_dict(self) -> list[dict[str, Any]]:
        return [o.state_dict() for o in self.optimizers]

    def load_state_dict(self, states: list[dict[str, Any]]) -> None:
        for o, s in zip(self.optimizers, states):
            o.load_state_dict(s)

    def sparse_parameters(self) -> list[nn.Parameter]:
        """Parameters updated row-wise: their embedding modules may produce sparse gradients."""
        return [p for o in self.optimizers if isinstance(o, _RowwiseOptimizer)
                for g in o.param_groups for p in g["params"]]


def embedding_tables(model: nn.Module) -> list[nn.Embedding]:
    return [m for m in model.modules() if isinstance(m, nn.Embedding)]


def resolve_embedding_optimizer(model: nn.Module, choice: str) -> str:
    """The optimizer `choice` means for this model ("auto" decided by the tables' total rows)."""
    if choice not in EMBEDDING_OPTIMIZERS:
        raise ConfigError(f"embedding_optimizer must be one of {EMBEDDING_OPTIMIZERS}, got {choice!r}")
    if choice != "auto":
        return choice
    rows = sum(t.num_embeddings for t in embedding_tables(model))
    return "lazy_adam" if rows >= AUTO_SPARSE_ROWS else "adam"


def make_optimizer(model: nn.Module, cfg: Any, extra_groups: Sequence[dict[str, Any]] = ()
                   ) -> torch.optim.Optimizer | OptimizerChain:
    """The harness's optimizer for `model` under `cfg` (lr, weight_decay, embedding_l2, embedding_optimizer).

    Embedding tables get cfg.embedding_l2, everything else cfg.weight_decay; `extra_groups` are parameter
    groups of their own (e.g. ``{"params": [gate], "lr": 0.01}``, any Adam option), taken out of the
    defaults. With a row-wise embedding optimizer the tables are updated by it and the rest by fused Adam.
    """
    extra_ids = {id(p) for g in extra_groups for p in g["params"]}
    emb_ids = {id(t.weight) for t in embedding_tables(model)}
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in extra_ids]
    emb = [p for p in params if id(p) in emb_ids]
    rest = [p for p in params if id(p) not in emb_ids]
    extra = [{**g, "params": list(g["params"])} for g in extra_groups]
    kind = resolve_embedding_optimizer(model, getattr(cfg, "embedding_optimizer", "adam"))
    if kind == "adam" or not emb:
        return _adam([{"params": emb, "weight_decay": cfg.embedding_l2},
                      {"params": rest, "weight_decay": cfg.weight_decay}, *extra], cfg.lr)
    dense = _adam([{"params": rest, "weight_decay": cfg.weight_decay}, *extra], cfg.lr)
    sparse_cls = RowwiseLazyAdam if kind == "lazy_adam" else RowwiseAdagrad
    sparse = sparse_cls(emb, lr=cfg.lr, weight_decay=cfg.embedding_l2)
    return OptimizerChain([dense, sparse])


def _adam(groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    """torch Adam over the non-empty groups, fused where torch has a kernel (float params on CPU/CUDA); an
    Adam with an empty placeholder group when there is nothing to optimise (e.g. a model of tables only)."""
    groups = [g for g in groups if g["params"]]
    everything = [p for g in groups for p in g["params"]]
    fused = bool(everything) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in everything)
    if not groups:
        groups = [{"params": [torch.zeros(0, requires_grad=True)]}]
    return torch.optim.Adam(groups, lr=lr, fused=fused or None)


def use_sparse_gradients(model: nn.Module, optimizer: Any, on: bool) -> None:
    """Switch the embedding modules whose weights a row-wise optimizer updates to sparse gradients (or back)."""
    sparse = {id(p) for p in optimizer.sparse_parameters()} if isinstance(optimizer, OptimizerChain) else set()
    for t in embedding_tables(model):
        if id(t.weight) in sparse:
            t.sparse = on


def clip_grad_norm(parameters: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Scale all gradients so their global L2 norm is at most max_norm; sparse gradients are coalesced and
    measured by their values (never densified). No host-device sync (the scale is clamped, not branched on).
    Returns the norm before clipping (a 0-d tensor)."""
    grads = []
    for p in parameters:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            grads.append(p.grad._values())   # shares storage with the coalesced gradient
        else:
            grads.append(p.grad)
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
    return total
