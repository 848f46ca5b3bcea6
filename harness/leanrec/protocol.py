"""The training protocol every method runs under: the budget the runner sets and the schedule derived from it.

A budget is the same for every method of a grid (the runner records it in every record, and it is part of
the run identity). Training counts optimizer steps, not epochs, so that small and large data are treated
alike:

* ``min_steps`` (default 100): every call of the harness trainer -- every stage of every method, pretraining
  on a subset and searches included -- takes at least this many optimizer steps, running further epochs when
  the method's own epoch count (or ``max_epochs``) would end sooner. Early stopping cannot end a stage
  before it, and the weights kept at the end are never from inside it: the first validation is at
  ``min_steps``.
* ``max_epochs`` / ``max_steps``: caps on the method's own epoch count (``epochs`` in its config); the
  floor above wins over them.
* ``max_batch_size``: caps every stage's batch size (small samples: at batch 1024 an 8K-row split is 8 steps
  an epoch, so 100 steps would be 12 epochs; at 256 it is 3).
* ``eval_every``: validation every N optimizer steps (None = one epoch, clamped to [20, 1000] steps), then
  after ``min_steps``; patience counts validations without improvement (the method's ``patience``), and
  the learning rate is multiplied by its ``lr_decay`` on each of them.

``PROTOCOL_VERSION`` names this protocol in every record. Version 1 (before 2026-12) counted epochs only:
patience and the LR cut were per epoch, with no floor, so on samples of a few thousand rows a stage could stop
after 8 optimizer steps. Records of different protocol versions are never ranked in one table.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from leanrec.errors import ConfigError

if TYPE_CHECKING:
    from leanrec.methods import MethodConfig

PROTOCOL_VERSION = 2
DEFAULT_MIN_STEPS = 100
AUTO_EVAL_RANGE = (20, 1000)   # eval_every=None: one epoch, clamped to this many steps


@dataclass(frozen=True)
class Budget:
    """What the runner grants every method of a grid (None = the method's own setting / the automatic one)."""

    max_epochs: int | None = None
    max_steps: int | None = None
    min_steps: int = DEFAULT_MIN_STEPS
    eval_every: int | None = None
    max_batch_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_epochs", "max_steps", "eval_every", "max_batch_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"budget {name} must be a positive integer or unset, got {value!r}")
        if not isinstance(self.min_steps, int) or self.min_steps < 0:
            raise ConfigError(f"budget min_steps must be an integer >= 0, got {self.min_steps!r}")
        if self.max_steps is not None and self.max_steps < self.min_steps:
            raise ConfigError(f"budget max_steps ({self.max_steps}) is below min_steps ({self.min_steps}); "
                              f"lower min_steps too (e.g. --min-steps {self.max_steps})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Budget":
        """A budget from a record's ``budget`` (version-1 records only have max_epochs and no floor)."""
        d = dict(d or {})
        return cls(**{k: d[k] for k in ("max_epochs", "max_steps", "min_steps", "eval_every", "max_batch_size")
                      if k in d})


@dataclass(frozen=True)
class Schedule:
    """The plan of one trainer call: how many optimizer steps, when to validate, when stopping may start."""

    batch_size: int
    steps_per_epoch: int
    total_steps: int      # the most steps this call takes (early stopping may end it sooner, never before min_steps)
    min_steps: int
    eval_every: int
    patience: int         # validations without improvement before stopping

    def is_eval_step(self, step: int) -> bool:
        """Validate at min_steps, every eval_every steps after it, and at the last step."""
        if step == self.total_steps:
            return True
        return step >= self.min_steps and (step - self.min_steps) % self.eval_every == 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def plan(n_rows: int, cfg: "MethodConfig", budget: Budget | None = None) -> Schedule:
    """The schedule for training on `n_rows` rows with `cfg` (batch_size, epochs, patience) under `budget`."""
    budget = budget or Budget()
    if n_rows < 1:
        raise ConfigError("cannot train on an empty split (0 rows)")
    bs = min(cfg.batch_size, budget.max_batch_size or cfg.batch_size)
    # A last batch of a single row would break BatchNorm in training mode: it is left out of that epoch
    # (each epoch reshuffles, so the row is trained on in the others).
    per_epoch = math.ceil(n_rows / bs) - (n_rows % bs == 1 and n_rows > bs)
    epochs = min(cfg.epochs, budget.max_epochs) if budget.max_epochs else cfg.epochs
    total = epochs * per_epoch
    if budget.max_steps is not None:
        total = min(total, budget.max_steps)
    total = max(total, budget.min_steps, 1)
    lo, hi = AUTO_EVAL_RANGE
    every = budget.eval_every or min(max(per_epoch, lo), hi)
    return Schedule(bs, per_epoch, total, min(budget.min_steps, total), every, cfg.patience)
