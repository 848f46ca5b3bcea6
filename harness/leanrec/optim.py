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
* ``"deferred_adam"``: sparse gradients and :class:`DeferredAdam`: lazy Adam's cost per step, dense Adam's
  updates (the moves dense Adam makes to rows a batch does not touch are applied, in closed form, when the row
  is next looked up or at the trainer's flush before each validation).
* ``"rowwise_adagrad"``: sparse gradients and one Adagrad accumulator per row (FBGEMM/TorchRec's
  EXACT_ROWWISE_ADAGRAD): the least optimizer state (one float per row).
* ``"auto"`` (the default): ``"adam"`` while the model's tables hold fewer than ``AUTO_SPARSE_ROWS`` rows in
  all, ``"lazy_adam"`` above. Below it the dense update is cheap and exact; above it it dominates a step
  (2M rows x 10 dims: 47 ms of a 58 ms DNN step on 2 CPU threads, see benchmarks/results/scale.md).

Gradient clipping (:func:`clip_grad_norm`) computes the global norm over sparse gradients' values without
densifying them.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from leanrec.errors import ConfigError

EMBEDDING_OPTIMIZERS = ("auto", "adam", "lazy_adam", "deferred_adam", "rowwise_adagrad")
AUTO_SPARSE_ROWS = 1_000_000
# "auto" is part of a run's identity, not what it resolves to: changing this rule changes what an "auto" run
# trains with, so it must change the identity too (records name the resolved optimizer: training.<stage>).


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


class DeferredAdam(_RowwiseOptimizer):
    """Dense Adam's trajectory at lazy Adam's cost: the updates dense Adam makes to a row while batches do not
    touch it are deferred until the row is next looked up (or :meth:`flush`) and applied then, in closed form.

    A row untouched for k steps has a zero gradient in dense Adam, so over those steps its moments only decay
    (m β1^j, v β2^j) and each step still moves it by lr·β1^j·m/bc1 / (sqrt(β2^j·v/bc2) + eps). With eps taken
    out of the sum, the k moves add up to lr · m/(sqrt(v) + eps) · Σ_j (β1/√β2)^j · √bc2(s_j)/bc1(s_j): a
    scalar per row: the difference of two entries of a table over steps of the infinite sums
    W[s] = Σ_{j≥1} (β1/√β2)^j · √bc2(s+j)/bc1(s+j), so a row costs one gather and three powers (float64, on
    one number per row). The table stops where the bias corrections reach 1 in float64 (~37K steps at
    β2 = 0.999): W is constant beyond.

    :meth:`watch` puts a hook before each table's lookup that brings the looked-up rows up to date, so the
    batch's forward pass sees the weights dense Adam would have; rows read another way catch up at their
    update instead (their gradient then comes from the weights before the catch-up; and a read that autograd
    saves, followed by a hooked lookup of the same table in one forward pass, fails in backward). The trainer
    flushes before every validation, where the lr may change. With a constant lr between flushes and
    ``weight_decay = 0`` this is dense Adam except for eps: in the skipped steps it acts as
    eps·β2^(j/2)/√bc2 instead of eps, which matters only while √v̂ is near eps (the first steps of training,
    rows whose gradients have fallen to ~1e-6): there the weights differ from dense Adam's by less than a
    tenth of one step in the tests (against torch's Adam, also at the default eps). Weight decay, as in lazy
    Adam, applies to touched rows only. State per row: the moments and the step they were last brought up to
    date at. A step counts for a table only when it has a gradient, as in torch's Adam.
    """

    FLUSH_ROWS = 65536   # rows brought up to date at a time by flush (bounds its temporary memory)

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        b1, b2 = betas
        if not (0.0 <= b1 < b2 ** 0.5 < 1.0):
            raise ConfigError(f"deferred_adam needs 0 <= beta1 < sqrt(beta2) < 1 (the deferred moves must form a "
                              f"converging series), got betas={tuple(betas)}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})
        self._tail_tables: dict[tuple[float, float, str], torch.Tensor] = {}
        self._hooks: list[Any] = []

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # noqa: D102 - torch.optim.Optimizer.step
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:   # a step with no gradient for p does not exist for it (torch's Adam)
                    self._state(p)["step"] += 1
        super().step(closure)

    def _state(self, p: torch.Tensor) -> dict[str, Any]:
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            state["synced_at"] = torch.zeros(p.shape[0], dtype=torch.int64, device=p.device)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # noqa: D102 - torch.optim.Optimizer's
        # torch casts every state tensor to its parameter's dtype (bf16 would round step numbers): keep them apart
        ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        synced = {i: s["synced_at"] for i, s in state_dict["state"].items() if "synced_at" in s}
        super().load_state_dict({**state_dict, "state": {i: {k: v for k, v in s.items() if k != "synced_at"}
                                                        for i, s in state_dict["state"].items()}})
        params = [p for g in self.param_groups for p in g["params"]]
        for i, p in zip(ids, params):
            if i in synced:
                self.state[p]["synced_at"] = synced[i].to(device=p.device, dtype=torch.int64)

    def _group(self, p: torch.Tensor) -> dict[str, Any]:
        return next(g for g in self.param_groups if any(q is p for q in g["params"]))

    def _catch_up(self, since: torch.Tensor, m: torch.Tensor, v: torch.Tensor, until: int,
                  group: dict[str, Any]) -> torch.Tensor:
        """For rows last synced at steps `since` with moments `m`, `v`: return the move dense Adam's zero-gradient
        steps up to step `until` made to them, and decay `m`, `v` (in place) to step `until`."""
        b1, b2 = group["betas"]
        k = (until - since).to(torch.float64)                              # skipped steps per row
        if b1 > 0:
            last = _constant_from(b1, b2)                                 # W is constant from this step on
            tails = self._tails(min(until, last), b1, b2, m.device)
            # Σ_{j=1..k} r^j·ratio(since + j) = W[since] − r^k·W[until]
            total = tails.index_select(0, since.clamp(max=last)) - (b1 / b2 ** 0.5) ** k * tails[min(until, last)]
            move = m / (v.sqrt() + group["eps"]) * (total * -group["lr"]).to(m.dtype).unsqueeze(1)
        else:   # no momentum: dense Adam does not move a row without a gradient
            move = torch.zeros_like(m)
        m.mul_((b1 ** k).to(m.dtype).unsqueeze(1))
        v.mul_((b2 ** k).to(m.dtype).unsqueeze(1))
        return move

    def _tails(self, upto: int, b1: float, b2: float, device: torch.device) -> torch.Tensor:
        """W[s] = Σ_{j≥1} (β1/√β2)^j · ratio(s + j) for steps s = 0..`upto` (at least; cached, grown 4096 steps
        at a time up to where W is constant), float64; the terms are summed until they fall below 1e-16 of the
        first, a bounded block of steps at a time."""
        key = (b1, b2, str(device))
        table = self._tail_tables.get(key)
        have = 0 if table is None else table.numel()
        if have <= upto:
            r = b1 / b2 ** 0.5
            j = torch.arange(1, math.ceil(math.log(1e-16) / math.log(r)) + 1, dtype=torch.float64, device=device)
            end = min(max(upto + 1, have + 4096), _constant_from(b1, b2) + 1)
            block = max(1, (1 << 22) // j.numel())   # steps per block: 32 MB of float64 terms
            parts = [] if table is None else [table]
            for lo in range(have, end, block):
                s = torch.arange(lo, min(lo + block, end), dtype=torch.float64, device=device).unsqueeze(1)
                parts.append((r ** j * _bias_ratio(s + j, b1, b2)).sum(dim=1))
            table = torch.cat(parts)
            self._tail_tables[key] = table
        return table

    def _sync(self, p: torch.Tensor, rows: torch.Tensor) -> None:
        """Bring `rows` of `p` up to the current step and store their moments. `rows` may repeat (a batch's
        lookups): every copy of a row computes the same values and writes them with index_copy_, so no
        `unique` (a host-device sync on CUDA) is needed, and p + move rounds as index_add_ would."""
        state = self._state(p)
        m, v = state["exp_avg"].index_select(0, rows), state["exp_avg_sq"].index_select(0, rows)
        move = self._catch_up(state["synced_at"].index_select(0, rows), m, v, state["step"], self._group(p))
        p.index_copy_(0, rows, p.index_select(0, rows).add_(move))
        state["exp_avg"].index_copy_(0, rows, m)
        state["exp_avg_sq"].index_copy_(0, rows, v)
        state["synced_at"].index_fill_(0, rows, state["step"])

    def update_rows(self, p: torch.Tensor, rows: torch.Tensor, values: torch.Tensor, group: dict[str, Any],
                    state: dict[str, Any]) -> None:
        b1, b2 = group["betas"]
        step = state["step"]
        m, v = state["exp_avg"].index_select(0, rows), state["exp_avg_sq"].index_select(0, rows)
        # rows synced at their lookup owe nothing (a zero move); others catch up here, then take the step. The
        # catch-up is added on its own, as at a lookup, so both paths round alike (torchrun ranks look up
        # different rows but must hold the same weights)
        p.index_add_(0, rows, self._catch_up(state["synced_at"].index_select(0, rows), m, v, step - 1, group))
        m.mul_(b1).add_(values, alpha=1 - b1)
        v.mul_(b2).addcmul_(values, values, value=1 - b2)
        state["exp_avg"].index_copy_(0, rows, m)
        state["exp_avg_sq"].index_copy_(0, rows, v)
        state["synced_at"].index_fill_(0, rows, step)
        bc1, bc2 = 1 - b1 ** step, 1 - b2 ** step
        p.index_add_(0, rows, m.div_((v / bc2).sqrt_().add_(group["eps"])), alpha=-group["lr"] / bc1)

    def watch(self, tables: Iterable[nn.Embedding]) -> None:
        """Hook the lookups of those `tables` whose weights this optimizer updates (replacing earlier hooks):
        before a lookup in training mode, the rows it reads are brought up to date. :meth:`unwatch` ends it."""
        self.unwatch()
        mine = {id(p) for g in self.param_groups for p in g["params"]}

        @torch.no_grad()
        def before_lookup(table: nn.Embedding, args: tuple[Any, ...]) -> None:
            if table.training:
                rows = args[0].flatten()
                # on CPU, sorting out the repeats (Zipf codes: most of a batch) is cheaper than catching them up;
                # on CUDA, unique() would add a wait for the device (the sparse gradient's coalesce has one)
                self._sync(table.weight, rows.unique() if rows.device.type == "cpu" else rows)

        self._hooks = [t.register_forward_pre_hook(before_lookup) for t in tables if id(t.weight) in mine]

    def unwatch(self) -> None:
        """Remove the lookup hooks of :meth:`watch`."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    @torch.no_grad()
    def flush(self) -> None:
        """Bring every row up to the current step (the weights dense Adam would hold now): call before the
        weights are read (validation, saving) and before the lr changes."""
        for group in self.param_groups:
            for p in group["params"]:
                state = self._state(p)
                for lo in range(0, p.shape[0], self.FLUSH_ROWS):   # slices: views, no gathers
                    hi = lo + self.FLUSH_ROWS
                    p[lo:hi].add_(self._catch_up(state["synced_at"][lo:hi], state["exp_avg"][lo:hi],
                                                 state["exp_avg_sq"][lo:hi], state["step"], group))
                state["synced_at"].fill_(state["step"])


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


ROWWISE_OPTIMIZERS: dict[str, type[_RowwiseOptimizer]] = {
    "lazy_adam": RowwiseLazyAdam, "deferred_adam": DeferredAdam, "rowwise_adagrad": RowwiseAdagrad}


def _constant_from(b1: float, b2: float) -> int:
    """The step from which Adam's bias corrections are 1 in float64 (β^s < 2^-54 for both betas), so that
    DeferredAdam's tail sums W[s] no longer change."""
    return math.ceil(54 * math.log(2) / -math.log(max(b1, b2))) + 1


def _bias_ratio(step: torch.Tensor, b1: float, b2: float) -> torch.Tensor:
    """Adam's √(1 − β2^step) / (1 − β1^step): how bias correction scales a step taken at `step`."""
    return (1 - b2 ** step).sqrt() / (1 - b1 ** step)


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
        return _rowwise_parameters(self.optimizers)


def _members(optimizer: Any) -> list[Any]:
    """The optimizers `optimizer` is made of: an :class:`OptimizerChain`'s, or itself."""
    return optimizer.optimizers if isinstance(optimizer, OptimizerChain) else [optimizer]


def _rowwise_parameters(optimizers: Iterable[Any]) -> list[nn.Parameter]:
    return [p for o in optimizers if isinstance(o, _RowwiseOptimizer) for g in o.param_groups for p in g["params"]]


def flush_deferred(optimizer: Any) -> None:
    """Apply the updates a :class:`DeferredAdam` (alone or in an :class:`OptimizerChain`) still owes to rows
    untouched since their last batch, so the weights are dense Adam's; a no-op for every other optimizer."""
    for o in _members(optimizer):
        if isinstance(o, DeferredAdam):
            o.flush()


def embedding_optimizer_name(optimizer: Any) -> str:
    """Which embedding optimizer `optimizer` is (one of EMBEDDING_OPTIMIZERS but "auto", as resolved), for the
    record: a run configured "auto" says what it trained with; another optimizer is named by its class."""
    names = {cls: name for name, cls in ROWWISE_OPTIMIZERS.items()}
    if isinstance(optimizer, OptimizerChain):
        return next((names[type(o)] for o in optimizer.optimizers if type(o) in names), "adam")
    return "adam" if type(optimizer) is torch.optim.Adam else names.get(type(optimizer), type(optimizer).__name__)


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
    sparse = ROWWISE_OPTIMIZERS[kind](emb, lr=cfg.lr, weight_decay=cfg.embedding_l2)
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
    """Switch the embedding modules whose weights a row-wise optimizer updates to sparse gradients (or back),
    and hook (or unhook) their lookups for a :class:`DeferredAdam`."""
    optimizers = _members(optimizer)
    sparse = {id(p) for p in _rowwise_parameters(optimizers)}
    tables = [t for t in embedding_tables(model) if id(t.weight) in sparse]
    for t in tables:
        t.sparse = on
    for o in optimizers:
        if isinstance(o, DeferredAdam):
            o.watch(tables) if on else o.unwatch()


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
