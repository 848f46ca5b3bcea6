"""RunContext: what the harness hands a method's ``fit``: device, seed, budget, stage timing and the trainer."""
from __future__ import annotations

import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from leanrec.batches import MappedSplit, split_bytes
from leanrec.protocol import Budget, Schedule, plan
from leanrec.trainer import Tensors, TrainResult, bce_loss, default_predict, train_model

if TYPE_CHECKING:
    from leanrec.data import EncodedDataset
    from leanrec.methods import MethodConfig


def pick_device(name: str = "auto") -> torch.device:
    """'auto' = CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def flush_denormals() -> bool:
    """Make CPU kernels treat denormal floats (|x| < 1.2e-38 in float32) as zero; returns whether the CPU
    supports it (x86 with SSE3). A model that fits its sample closely drives gradients into the denormal range,
    where x86 arithmetic falls back to microcode: a backward pass then takes tens of times longer (an SSR-D
    without its filter ran 4 s a step instead of 0.4 s; benchmarks/bench_denormals.py). Values that small change
    no trained weight measurably (benchmarks/rerun_records.py: on the CPU kind that made them, committed
    records rerun bit for bit)."""
    return bool(torch.set_flush_denormal(True))


def denormals_flushed() -> bool:
    """Whether CPU arithmetic flushes denormals now (a float32 denormal times one comes out zero)."""
    return float(torch.tensor([1e-39]) * 1.0) == 0.0


def prepare_fit(seed: int) -> None:
    """What the harness does before every fit: flush denormals (:func:`flush_denormals`) and seed every
    generator (:func:`seed_everything`). Flushing is process-wide: callers restore the state they found
    (:func:`restoring_denormals`)."""
    flush_denormals()
    seed_everything(seed)


@contextmanager
def restoring_denormals() -> Iterator[None]:
    """Give the process back the denormal handling it had (fits flush; a library must not leave that set for
    its caller, whose own float code, e.g. hypothesis' subnormal floats, relies on IEEE behaviour)."""
    was = denormals_flushed()
    try:
        yield
    finally:
        torch.set_flush_denormal(was)


@dataclass
class RunContext:
    device: torch.device
    seed: int = 0
    budget: Budget = field(default_factory=Budget)
    progress: bool = True
    stage_times: dict[str, float] = field(default_factory=dict)
    train_results: dict[str, TrainResult] = field(default_factory=dict)
    # on_eval(step, valid_auc) after every validation of every ctx.train call, steps counted over the whole
    # run (a second stage's step 1 follows the first stage's last step); `leanrec tune` prunes trials from it
    on_eval: Callable[[int, float], None] | None = None
    _steps_done: int = 0
    memory_budget_bytes: int | None = None   # splits larger than this are streamed from the cache (leanrec.batches)
    _tensors: dict[tuple[int, str], "Tensors | MappedSplit"] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a named stage (search, pretrain, prune, retrain, ...); repeated names accumulate."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.stage_times[name] = self.stage_times.get(name, 0.0) + time.perf_counter() - start

    def tensors(self, data: "EncodedDataset", split: str) -> "Tensors | MappedSplit":
        """A split as device tensors (converted once per run and reused), or, when its arrays exceed
        ``memory_budget_bytes``, a :class:`leanrec.batches.MappedSplit` streamed from the cache (``.X`` / ``.y``
        then read rows on demand: slices, gathers and ``len`` work, whole-split tensor operations do not)."""
        key = (id(data), split)
        if key not in self._tensors:
            s = data.splits[split]
            if self.memory_budget_bytes is not None and split_bytes(s.X, s.y) > self.memory_budget_bytes:
                self._tensors[key] = MappedSplit.open(s.X, s.y, self.device, self.memory_budget_bytes, split)
            else:
                self._tensors[key] = Tensors.from_numpy(s.X, s.y, self.device)
        return self._tensors[key]

    def streamed(self) -> list[str]:
        """The splits this run streams from the cache."""
        return [name for (_, name), t in self._tensors.items() if isinstance(t, MappedSplit)]

    def train(self, model: nn.Module, data: "EncodedDataset | tuple[Tensors, Tensors]", config: "MethodConfig",
              *, name: str = "train", **kwargs: Any) -> TrainResult:
        """Train `model` with the harness trainer on data's train split, early-stopping on its valid split.

        `data` may also be a (train, valid) pair of Tensors (e.g. a method's pretraining subset). Keyword
        arguments go to :func:`leanrec.trainer.train_model` (loss_fn, predict_fn, optimizer, on_step, keep).
        Every call follows the run's budget (:mod:`leanrec.protocol`): at least ``budget.min_steps`` steps.
        """
        if isinstance(data, tuple):
            train, valid = data
        else:
            train, valid = self.tensors(data, "train"), self.tensors(data, "valid")
        kwargs.setdefault("loss_fn", bce_loss)
        kwargs.setdefault("predict_fn", default_predict)
        if self.on_eval is not None:
            kwargs["on_eval"] = self._run_on_eval(kwargs.get("on_eval"))
        result = train_model(model, train, valid, config, budget=self.budget,
                             seed=self.seed, progress=self._progress_callback(name), **kwargs)
        self.train_results[name] = result
        self._steps_done += result.steps
        return result

    def _run_on_eval(self, own: Callable[[int, float], None] | None) -> Callable[[int, float], None]:
        offset, hook = self._steps_done, self.on_eval

        def on_eval(step: int, auc: float) -> None:
            if own is not None:
                own(step, auc)
            hook(offset + step, auc)
        return on_eval

    def schedule(self, n_rows: int, config: "MethodConfig") -> Schedule:
        """The schedule ``ctx.train`` will follow for `n_rows` training rows and `config` (e.g. to anneal a
        temperature over ``total_steps``)."""
        return plan(n_rows, config, self.budget)

    def _progress_callback(self, name: str):
        if not self.progress:
            return None
        from leanrec.progress import batch_progress

        return batch_progress(name)
