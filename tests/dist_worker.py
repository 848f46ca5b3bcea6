"""A torchrun worker for tests/test_scale.py (not a test module): runs a tiny grid on every rank, checks
gradient averaging, or saves each rank's trained weights, under torch.distributed (gloo, CPU).

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/dist_worker.py MODE RESULTS_DIR
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import leanrec  # noqa: E402
from leanrec import distributed  # noqa: E402
from leanrec.methods import FitResult, field_specs  # noqa: E402
from leanrec.plugins import load_registry  # noqa: E402
from leanrec.protocol import Budget  # noqa: E402
from leanrec.runner import MethodSpec, run_grid  # noqa: E402
from leanrec.trainer import bce_loss  # noqa: E402
from test_harness import SYNTHETIC_CARD, TinyMethod  # noqa: E402

FAIL_AT_STEP = 5


class RankFailsMethod(TinyMethod):
    """Trains like tiny-dnn, but rank 1 raises (mode raise) or is killed (mode kill) inside its 5th loss."""

    name = "rank1-fails"

    def fit(self, data, ctx):
        steps = [0]

        def loss(model, X, y):
            steps[0] += 1
            if distributed.rank_world()[0] == 1 and steps[0] == FAIL_AT_STEP:
                if os.environ["DIST_TEST_MODE"] == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError("planted failure on rank 1")
            return bce_loss(model, X, y)

        model = self.build_model(field_specs(data)).to(ctx.device)
        ctx.train(model, data, self.config, loss_fn=loss)
        return FitResult(model)


class WeightSavingMethod(TinyMethod):
    """tiny-dnn that saves each rank's trained weights (mode deferred: the replicas must stay bit-identical)."""

    name = "tiny-dnn-saves"

    def fit(self, data, ctx):
        result = super().fit(data, ctx)
        rank = distributed.rank_world()[0]
        torch.save(result.model.state_dict(), Path(os.environ["DIST_TEST_OUT"]) / f"weights{rank}.pt")
        return result


class _Plugin:
    __name__ = "dist-test-plugin"

    @staticmethod
    @leanrec.hookimpl
    def leanrec_register_methods(register):
        register(TinyMethod)
        register(RankFailsMethod)
        register(WeightSavingMethod)


def grid(results: Path, method: str, memory_budget: int | None, **config) -> None:
    import leanrec.builtin_datasets as builtin

    reg = load_registry([_Plugin(), builtin], entry_points=False)
    overrides = {"synthetic": {"n_rows": 3000, "n_fields": 12}}
    spec = MethodSpec(method, {"epochs": 2, "batch_size": 128, "lr": 0.01, **config})
    try:
        run_grid([str(SYNTHETIC_CARD)], [spec], [0], results,
                 budget=Budget(min_steps=10, eval_every=5), data_overrides=overrides, device="cpu",
                 progress=False, reg=reg, memory_budget=memory_budget)
    except distributed.RunAborted:
        distributed.leave_after_failure()
        sys.exit(1)


def check_sync(results: Path) -> None:
    """Every rank computes gradients on its own rows, saves them, averages them, saves the result."""
    from torch import nn

    rank = distributed.rank_world()[0]
    torch.manual_seed(0)
    model = nn.ModuleDict({"emb": nn.Embedding(50, 4, sparse=True), "head": nn.Linear(12, 1),
                           "unused": nn.Linear(3, 3),        # no rank has a gradient for it
                           "dense_emb": nn.Embedding(20, 2)})
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sync = distributed.GradientSync(model, opt)
    g = torch.Generator().manual_seed(100 + rank)
    X = torch.randint(0, 50, (8, 3), generator=g)
    out = model["head"](model["emb"](X).flatten(1)).sum() + model["dense_emb"](X[:, :1] % 20).pow(2).sum() * (rank + 1)
    out.backward()
    local = {n: (p.grad.to_dense() if p.grad is not None else None) for n, p in model.named_parameters()}
    sync.average_gradients()
    synced = {n: (p.grad.to_dense() if p.grad is not None else None) for n, p in model.named_parameters()}
    torch.save({"local": local, "synced": synced, "sparse": model["emb"].weight.grad.is_sparse},
               results / f"grads{rank}.pt")


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    os.environ["DIST_TEST_MODE"] = mode
    distributed.init_from_env("cpu", timeout_s=60)
    try:
        if mode == "sync":
            check_sync(out)
        elif mode == "deferred":   # every row-wise optimizer rank by rank; deferred Adam syncs rows at lookup
            os.environ["DIST_TEST_OUT"] = str(out)
            grid(out, "tiny-dnn-saves", None, embedding_optimizer="deferred_adam")
        else:
            grid(out, "tiny-dnn" if mode in ("ok", "stream") else "rank1-fails",
                 400_000 if mode == "stream" else None)
    except BaseException:
        distributed.shutdown()
        raise
    if distributed.rank_world()[0] != 0:
        distributed.leave_after_success()   # what `leanrec run` does on ranks > 0 after a finished grid
    distributed.shutdown(wait_for_peers=True)
