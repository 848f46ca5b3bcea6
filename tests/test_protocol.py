"""The training protocol: step budgets, the minimum of steps, validation every N steps, patience in
validations, best weights never from inside the minimum (leanrec.protocol, leanrec.trainer)."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from leanrec.context import RunContext
from leanrec.errors import ConfigError
from leanrec.methods import MethodConfig
from leanrec.protocol import Budget, plan
from leanrec.testing import tiny_dataset
from test_harness import TinyDNN, TinyMethod, field_specs


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 100_000), bs=st.integers(1, 4096), epochs=st.integers(1, 50),
       max_epochs=st.one_of(st.none(), st.integers(1, 50)), max_steps=st.one_of(st.none(), st.integers(200, 5000)),
       min_steps=st.integers(0, 200), eval_every=st.one_of(st.none(), st.integers(1, 300)),
       max_bs=st.one_of(st.none(), st.integers(1, 4096)))
def test_schedule_by_brute_force(n, bs, epochs, max_epochs, max_steps, min_steps, eval_every, max_bs):
    budget = Budget(max_epochs=max_epochs, max_steps=max_steps, min_steps=min_steps, eval_every=eval_every,
                    max_batch_size=max_bs)
    s = plan(n, MethodConfig(batch_size=bs, epochs=epochs), budget)
    bs = min(bs, max_bs or bs)
    assert s.batch_size == bs
    per_epoch = -(-n // bs) - (n % bs == 1 and n > bs)     # no last batch of one row (BatchNorm)
    capped = per_epoch * (min(epochs, max_epochs) if max_epochs else epochs)
    if max_steps:
        capped = min(capped, max_steps)
    assert s.total_steps == max(capped, min_steps, 1)
    assert s.min_steps == min(min_steps, s.total_steps)
    evals = [k for k in range(1, s.total_steps + 1) if s.is_eval_step(k)]
    assert evals[-1] == s.total_steps and all(k >= s.min_steps for k in evals)
    assert s.eval_every == (eval_every or min(max(per_epoch, 20), 1000))


def test_budget_rejects_nonsense():
    with pytest.raises(ConfigError, match="max_steps"):
        Budget(max_steps=50, min_steps=100)
    with pytest.raises(ConfigError, match="eval_every"):
        Budget(eval_every=0)


def _train(budget, **cfg):
    ds = tiny_dataset(2000, seed=4)
    ctx = RunContext(torch.device("cpu"), budget=budget, progress=False)
    TinyMethod.from_overrides({"batch_size": 256, **cfg}).fit(ds, ctx)
    return ctx.train_results["train"]


def test_minimum_steps_override_epoch_caps_and_early_stopping():
    # 1600 train rows / 256 = 7 steps per epoch; 1 epoch allowed, but the floor is 60 steps
    tr = _train(Budget(max_epochs=1, min_steps=60, eval_every=10), epochs=20, lr=0.2, patience=0)
    assert tr.steps >= 60 and tr.best_step >= 60
    assert tr.history[0]["step"] == 60                       # the first validation is at the floor
    assert all(h["step"] >= 60 for h in tr.history)


def test_validation_every_n_steps_and_patience_in_validations():
    tr = _train(Budget(min_steps=0, eval_every=5), epochs=30, lr=0.05, patience=3)
    steps = [h["step"] for h in tr.history]
    assert steps[:3] == [5, 10, 15]
    if tr.stopped == "early":
        tail = [h["valid_auc"] for h in tr.history[-3:]]
        assert max(tail) <= tr.best_valid_auc and len(tr.history) - 1 - next(
            i for i, h in enumerate(tr.history) if h["step"] == tr.best_step) == 3
    assert tr.steps == steps[-1]


def test_keep_last_runs_every_planned_step():
    ds = tiny_dataset(1000, seed=2)
    ctx = RunContext(torch.device("cpu"), budget=Budget(min_steps=0, eval_every=3), progress=False)
    model = TinyDNN(field_specs(ds))
    cfg = MethodConfig(batch_size=100, epochs=4, lr=0.5, patience=0)
    tr = ctx.train(model, ds, cfg, keep="last")
    assert tr.steps == 4 * 8 and tr.stopped == "budget" and tr.best_step == tr.steps
    assert math.isclose(tr.epochs_run, 4.0)

