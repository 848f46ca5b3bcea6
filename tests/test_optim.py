"""Row-wise embedding optimizers against torch's SparseAdam / dense Adam / a numpy Adagrad, sparse gradient clipping against
torch's dense clipping, and every registered method training with sparse embedding gradients."""
from __future__ import annotations

import copy

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from leanrec.methods import MethodConfig
from leanrec.optim import (EMBEDDING_OPTIMIZERS, DeferredAdam, OptimizerChain, RowwiseAdagrad, RowwiseLazyAdam,
                           clip_grad_norm, embedding_optimizer_name, flush_deferred, make_optimizer, resolve_embedding_optimizer, use_sparse_gradients)


def _sparse_steps(opt_factory, seed, steps=5, rows=30, dim=4):
    torch.manual_seed(seed)
    emb = nn.Embedding(rows, dim, sparse=True)
    opt = opt_factory(emb.parameters())
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, rows, (17,), generator=gen)      # duplicates on purpose
        (emb(idx) ** 2).sum().backward()
        opt.step()
        opt.zero_grad()
    return emb.weight.detach().clone()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_lazy_adam_equals_torch_sparse_adam(seed):
    # SparseAdam adds eps to sqrt(v) before bias correction, torch's Adam (and ours) after: eps ~ 0 here
    ours = _sparse_steps(lambda p: RowwiseLazyAdam(p, lr=0.05, eps=1e-12), seed)
    torch_ = _sparse_steps(lambda p: torch.optim.SparseAdam(p, lr=0.05, eps=1e-12), seed)
    torch.testing.assert_close(ours, torch_, rtol=1e-5, atol=1e-6)


def test_lazy_adam_equals_dense_adam_when_every_row_is_touched():
    torch.manual_seed(1)
    a, b = nn.Embedding(6, 3, sparse=True), nn.Embedding(6, 3)
    b.weight.data.copy_(a.weight.data)
    oa = RowwiseLazyAdam(a.parameters(), lr=0.05, weight_decay=0.1)
    ob = torch.optim.Adam(b.parameters(), lr=0.05, weight_decay=0.1, foreach=False)
    for step in range(6):
        idx = torch.cat([torch.arange(6), torch.randint(0, 6, (5,))])
        for emb, opt in ((a, oa), (b, ob)):
            opt.zero_grad()
            (emb(idx) ** 3).sum().backward()
            opt.step()
    torch.testing.assert_close(a.weight, b.weight, rtol=1e-5, atol=1e-6)


def test_lazy_adam_touches_only_batch_rows_and_decays_only_them():
    emb = nn.Embedding(10, 3, sparse=True)
    before = emb.weight.detach().clone()
    opt = RowwiseLazyAdam(emb.parameters(), lr=0.1, weight_decay=0.5)
    emb(torch.tensor([2, 2, 7])).sum().backward()
    opt.step()
    changed = (emb.weight.detach() != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == [2, 7]


def _adam_pair(seed, steps, rows, touched, *, lr=0.05, weight_decay=0.0, schedule=None, watch=True):
    """The same sparse batches through DeferredAdam and torch's dense Adam (and RowwiseLazyAdam), from the same
    weights; `touched` row indices per batch (a few of `rows`, so most rows sit out most steps). `watch`: the
    deferred optimizer hooks the table's lookups (as the trainer has it do)."""
    torch.manual_seed(seed)
    embs = [nn.Embedding(rows, 3, sparse=True), nn.Embedding(rows, 3), nn.Embedding(rows, 3, sparse=True)]
    for e in embs[1:]:
        e.weight.data.copy_(embs[0].weight.data)
    opts = [DeferredAdam(embs[0].parameters(), lr=lr, eps=1e-12, weight_decay=weight_decay),
            torch.optim.Adam(embs[1].parameters(), lr=lr, eps=1e-12, weight_decay=weight_decay, foreach=False),
            RowwiseLazyAdam(embs[2].parameters(), lr=lr, eps=1e-12, weight_decay=weight_decay)]
    if watch:
        opts[0].watch([embs[0]])
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = schedule(step) if schedule else torch.randint(0, rows, (touched,), generator=gen)
        for emb, opt in zip(embs, opts):
            opt.zero_grad()
            (emb(idx) ** 2 + emb(idx)).sum().backward()   # gradients of order 1: eps plays no part
            opt.step()
    return embs, opts


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 60), touched=st.integers(1, 6))
def test_deferred_adam_equals_dense_adam_after_a_flush(seed, steps, touched):
    """The oracle is torch's dense Adam, which moves every row at every step; DeferredAdam owes the untouched
    rows those moves and pays them at their next lookup or at flush."""
    (deferred, dense, lazy), (opt, _, _) = _adam_pair(seed, steps, rows=12, touched=touched)
    opt.flush()
    torch.testing.assert_close(deferred.weight, dense.weight, rtol=1e-4, atol=1e-5)   # float32 sums differ
    synced = opt.state[deferred.weight]["synced_at"]
    assert (synced == steps).all()
    before = deferred.weight.detach().clone()
    opt.flush()   # a second flush owes nothing
    assert torch.equal(deferred.weight, before)


def test_deferred_adam_pays_a_long_gap_in_one_catch_up_and_lazy_adam_does_not():
    """A row trained for 5 steps, then left out for 300, then trained again: one catch-up
    pays 300 steps' moves; lazy Adam, which owes nothing, ends far from dense Adam."""
    schedule = lambda step: torch.tensor([0, 1] if step < 5 or step >= 305 else [1])   # noqa: E731
    (deferred, dense, lazy), (opt, _, _) = _adam_pair(0, 310, rows=3, touched=0, schedule=schedule)
    opt.flush()   # row 2, never touched, owes nothing: m = v = 0
    torch.testing.assert_close(deferred.weight, dense.weight, rtol=1e-4, atol=1e-5)
    gap_dense = (dense.weight[0] - lazy.weight[0]).abs().max()
    assert gap_dense > 100 * (dense.weight[0] - deferred.weight[0]).abs().max()


def test_deferred_adam_without_lookup_hooks_is_near_dense_adam_and_far_closer_than_lazy_adam():
    """Rows read without the hook catch up at their update, so their gradient comes from the weights before the
    catch-up: not exact, but the weights stay well within lazy Adam's distance to dense Adam."""
    (deferred, dense, lazy), (opt, _, _) = _adam_pair(7, 40, rows=12, touched=3, watch=False)
    opt.flush()
    off = (deferred.weight - dense.weight).abs().max()
    assert 0 < off < 0.5 * (lazy.weight - dense.weight).abs().max()


def test_deferred_adam_pays_its_debt_before_the_trainer_reads_the_weights():
    """Before a flush, untouched rows lag dense Adam; flush_deferred (what the trainer calls before every
    validation) catches them up, through an OptimizerChain too, and is a no-op for other optimizers."""
    (deferred, dense, _), (opt, _, _) = _adam_pair(3, 8, rows=12, touched=2)
    assert not torch.allclose(deferred.weight, dense.weight, rtol=1e-5, atol=1e-6)
    flush_deferred(OptimizerChain([torch.optim.Adam([nn.Parameter(torch.zeros(1))]), opt]))
    torch.testing.assert_close(deferred.weight, dense.weight, rtol=1e-4, atol=1e-5)
    flush_deferred(torch.optim.Adam([nn.Parameter(torch.zeros(1))]))   # nothing to do, no error


def test_deferred_adam_state_survives_a_state_dict_round_trip():
    (a, _, _), (opt, _, _) = _adam_pair(5, 6, rows=8, touched=2)
    b = nn.Embedding(8, 3, sparse=True)
    b.weight.data.copy_(a.weight.data)
    opt_b = DeferredAdam(b.parameters(), lr=0.05, eps=1e-12)
    opt_b.load_state_dict(copy.deepcopy(opt.state_dict()))   # as a checkpoint would: torch shares tensors
    assert opt_b.state[b.weight]["synced_at"].dtype == torch.int64
    for o in (opt, opt_b):
        o.flush()
    torch.testing.assert_close(a.weight, b.weight)


def test_rowwise_adagrad_matches_numpy():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 3)).astype(np.float32)
    p = nn.Parameter(torch.tensor(w))
    opt = RowwiseAdagrad([p], lr=0.1)
    acc = np.zeros(8, np.float32)
    for _ in range(4):
        rows = np.unique(rng.integers(0, 8, 5))
        g = np.zeros_like(w)
        g[rows] = rng.normal(size=(len(rows), 3))
        p.grad = torch.tensor(g).to_sparse(1)  # row-sparse, as an embedding's gradient
        opt.step()
        acc[rows] += (g[rows] ** 2).mean(axis=1)
        w[rows] -= 0.1 * g[rows] / (np.sqrt(acc[rows])[:, None] + 1e-8)
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-5, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), max_norm=st.floats(0.01, 100))
def test_sparse_clipping_equals_dense_clipping(seed, max_norm):
    torch.manual_seed(seed)
    idx = torch.randint(0, 20, (15,))
    a = nn.Embedding(20, 4, sparse=True)
    b = nn.Embedding(20, 4)
    b.weight.data.copy_(a.weight.data)
    lin_a, lin_b = nn.Linear(4, 1), nn.Linear(4, 1)
    lin_b.load_state_dict(lin_a.state_dict())
    lin_a(a(idx)).sum().backward()
    lin_b(b(idx)).sum().backward()
    na = clip_grad_norm(list(a.parameters()) + list(lin_a.parameters()), max_norm)
    nb = nn.utils.clip_grad_norm_(list(b.parameters()) + list(lin_b.parameters()), max_norm)
    torch.testing.assert_close(na, nb)
    torch.testing.assert_close(a.weight.grad.to_dense(), b.weight.grad)
    torch.testing.assert_close(lin_a.weight.grad, lin_b.weight.grad)


def test_auto_picks_dense_below_and_lazy_above_the_threshold(monkeypatch):
    import leanrec.optim as optim

    small = nn.Sequential(nn.Embedding(100, 4), nn.Linear(4, 1))
    assert resolve_embedding_optimizer(small, "auto") == "adam"
    monkeypatch.setattr(optim, "AUTO_SPARSE_ROWS", 50)
    assert resolve_embedding_optimizer(small, "auto") == "lazy_adam"
    opt = make_optimizer(small, MethodConfig(embedding_optimizer="lazy_adam"))
    assert isinstance(opt, OptimizerChain) and len(opt.sparse_parameters()) == 1
    use_sparse_gradients(small, opt, True)
    assert small[0].sparse
    use_sparse_gradients(small, opt, False)
    assert not small[0].sparse


def test_the_record_names_the_embedding_optimizer_auto_resolved_to(monkeypatch):
    import leanrec.optim as optim

    small = nn.Sequential(nn.Embedding(100, 4), nn.Linear(4, 1))
    for choice in EMBEDDING_OPTIMIZERS:
        opt = make_optimizer(small, MethodConfig(embedding_optimizer=choice))
        assert embedding_optimizer_name(opt) == ("adam" if choice == "auto" else choice)
    monkeypatch.setattr(optim, "AUTO_SPARSE_ROWS", 50)
    assert embedding_optimizer_name(make_optimizer(small, MethodConfig())) == "lazy_adam"
    assert embedding_optimizer_name(torch.optim.SGD(small.parameters(), lr=0.1)) == "SGD"


def test_deferred_adam_rows_synced_at_lookup_or_at_update_end_bit_identical():
    """torchrun ranks look up different rows, so a row is synced by the lookup hook on one rank and at the update
    on another; both must hold the same weights afterwards, to the bit."""
    torch.manual_seed(0)
    a, b = nn.Embedding(10, 3, sparse=True), nn.Embedding(10, 3, sparse=True)
    b.weight.data.copy_(a.weight.data)
    oa, ob = DeferredAdam(a.parameters(), lr=0.05), DeferredAdam(b.parameters(), lr=0.05)
    oa.watch([a])   # b's rows catch up only at their update
    gen = torch.Generator().manual_seed(1)
    for _ in range(30):
        idx = torch.randint(0, 10, (3,), generator=gen)
        grad = torch.randn(3, 3, generator=gen)
        for emb, opt in ((a, oa), (b, ob)):
            opt.zero_grad()
            (emb(idx) * grad).sum().backward()   # the same gradient values on both (they do not depend on w)
            opt.step()
    assert torch.equal(a.weight, b.weight)


def test_deferred_adam_catch_up_of_repeated_rows_equals_that_of_unique_rows():
    """On CUDA the lookup hook catches up a batch's rows with their repeats (unique() would wait for the
    device): every copy writes the same values, so the result is that of the unique rows, to the bit."""
    (a, _, _), (oa, _, _) = _adam_pair(2, 12, rows=10, touched=3, watch=False)
    b = nn.Embedding(10, 3, sparse=True)
    b.weight.data.copy_(a.weight.data)
    ob = DeferredAdam(b.parameters(), lr=0.05, eps=1e-12)
    ob.load_state_dict(copy.deepcopy(oa.state_dict()))
    rows = torch.tensor([4, 1, 4, 4, 7, 1, 0])
    with torch.no_grad():
        oa._sync(a.weight, rows.unique())
        ob._sync(b.weight, rows)
    assert torch.equal(a.weight, b.weight)
    for key in ("exp_avg", "exp_avg_sq", "synced_at"):
        assert torch.equal(oa.state[a.weight][key], ob.state[b.weight][key])
    assert not torch.equal(a.weight, _adam_pair(2, 12, rows=10, touched=3, watch=False)[0][0].weight)   # it moved


def test_deferred_adam_catch_up_over_200k_skipped_steps_equals_the_explicit_sum():
    """A row left out for 200K steps (past where float32 β2^k underflows, and past where the W table stops
    growing): its catch-up is the explicit float64 sum of dense Adam's zero-gradient moves (eps ≈ 0 here)."""
    emb = nn.Embedding(3, 2, sparse=True)
    opt = DeferredAdam(emb.parameters(), lr=1e-3, eps=1e-30)
    state = opt._state(emb.weight)
    with torch.no_grad():
        emb.weight.zero_()
        state["exp_avg"][1] = torch.tensor([0.02, -0.01])
        state["exp_avg_sq"][1] = torch.tensor([4e-4, 1e-4])
    since, until = 7, 200_007
    state["synced_at"].fill_(since)
    state["step"] = until
    opt.flush()
    b1, b2 = 0.9, 0.999
    s = np.arange(since + 1, until + 1, dtype=np.float64)
    j = s - since
    m, v = np.array([0.02, -0.01]), np.array([4e-4, 1e-4])
    moves = -1e-3 * (b1 ** j / (1 - b1 ** s))[:, None] * m / np.sqrt((b2 ** j / (1 - b2 ** s))[:, None] * v)
    np.testing.assert_allclose(emb.weight[1].detach().numpy(), moves.sum(axis=0), rtol=1e-5)
    assert torch.isfinite(emb.weight).all() and (emb.weight[[0, 2]] == 0).all()   # untouched rows owe nothing
    assert (state["exp_avg"][1] == 0).all() and (state["exp_avg_sq"][1] == 0).all()   # decayed away, no NaN


def _default_eps_pair(scale: float, steps: int = 300, lr: float = 1e-3):
    torch.manual_seed(4)
    a, b = nn.Embedding(40, 3, sparse=True), nn.Embedding(40, 3)
    b.weight.data.copy_(a.weight.data)
    oa, ob = DeferredAdam(a.parameters(), lr=lr), torch.optim.Adam(b.parameters(), lr=lr, foreach=False)
    oa.watch([a])
    gen = torch.Generator().manual_seed(4)
    for _ in range(steps):
        idx = torch.randint(0, 40, (4,), generator=gen)
        for emb, opt in ((a, oa), (b, ob)):
            opt.zero_grad()
            (scale * (emb(idx) ** 2).sum()).backward()
            opt.step()
    oa.flush()
    return a.weight.detach(), b.weight.detach()


def test_deferred_adam_at_the_default_eps_stays_within_a_tenth_of_a_step_of_dense_adam():
    """eps enters the skipped steps approximately (as β2^(j/2)/√bc2 · eps): with gradients of order 1 the
    flushed weights agree with torch's Adam to 1e-4 relative; where gradients fall to ~1e-6 (loss scaled by
    1e-3, rows driven to 0), near eps, they differ, by less than a tenth of one step (lr / 10)."""
    ours, dense = _default_eps_pair(1.0)
    torch.testing.assert_close(ours, dense, rtol=1e-4, atol=1e-5)
    ours, dense = _default_eps_pair(1e-3)
    assert 0 < (ours - dense).abs().max() < 1e-3 / 10


def test_deferred_adam_counts_only_steps_with_a_gradient_and_accepts_beta1_zero():
    """A step where a table gets no gradient does not exist for it in torch's Adam, nor here; β1 = 0 owes no
    moves (no momentum); betas whose deferred series diverges are refused."""
    import pytest

    from leanrec.errors import ConfigError

    for betas in ((0.9, 0.999), (0.0, 0.999)):
        torch.manual_seed(5)
        a, b = nn.Embedding(8, 2, sparse=True), nn.Embedding(8, 2)
        b.weight.data.copy_(a.weight.data)
        oa = DeferredAdam(a.parameters(), lr=0.05, betas=betas, eps=1e-12)
        ob = torch.optim.Adam(b.parameters(), lr=0.05, betas=betas, eps=1e-12, foreach=False)
        oa.watch([a])
        for step in range(12):
            for emb, opt in ((a, oa), (b, ob)):
                opt.zero_grad()
                if step % 3:   # every third step: no lookup, no gradient
                    (emb(torch.tensor([step % 8, 1])) ** 2).sum().backward()
                opt.step()
        oa.flush()
        torch.testing.assert_close(a.weight, b.weight, rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="sqrt"):
        DeferredAdam(nn.Embedding(2, 2).parameters(), betas=(0.95, 0.9))


def test_deferred_adam_checkpoint_of_a_bf16_table_keeps_exact_step_numbers():
    emb = nn.Embedding(4, 2, sparse=True).to(torch.bfloat16)
    opt = DeferredAdam(emb.parameters())
    state = opt._state(emb.weight)
    state["synced_at"].copy_(torch.tensor([1000, 999, 997, 301]))
    state["step"] = 1000
    other = DeferredAdam(emb.parameters())
    other.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert other.state[emb.weight]["synced_at"].tolist() == [1000, 999, 997, 301]
    assert other.state[emb.weight]["synced_at"].dtype == torch.int64


def test_a_bare_deferred_adam_gets_its_lookup_hooks_and_sparse_gradients():
    model = nn.Sequential(nn.Embedding(10, 2), nn.Flatten(), nn.Linear(4, 1))
    opt = DeferredAdam([model[0].weight])
    use_sparse_gradients(model, opt, True)
    assert model[0].sparse and len(opt._hooks) == 1
    use_sparse_gradients(model, opt, False)
    assert not model[0].sparse and not opt._hooks
