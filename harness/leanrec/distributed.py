"""Data-parallel training across processes and machines with torch.distributed (started by torchrun).

``leanrec run --nproc N ...`` starts N local processes through ``torch.distributed.run`` (torchrun); on
several machines run ``torchrun --nnodes M --nproc-per-node N --rdzv-endpoint HOST:PORT -m leanrec run ...``
on each (docs/scale.md). Each process (rank) runs the same grid:

* **Data**: every rank trains on its own contiguous shard of the train split (:func:`leanrec.batches.shard`),
  ``batch_size / world_size`` rows a step, so the **global batch** is the config's ``batch_size`` and the
  schedule (steps, validations) is the one-process schedule. Splits over the memory budget are streamed
  from the cache, each rank reading only its shard.
* **Gradients**: averaged over ranks after every backward pass (:class:`GradientSync`): the dense gradients
  in one flat all-reduce, the embedding tables' sparse gradients (row-wise optimizers) by all-gathering
  their rows, which works on gloo and NCCL alike and keeps the update's cost following the rows touched.
  This is what DDP's reducer does, done explicitly after ``backward`` because methods' losses call
  arbitrary model methods (``m.tower_logits(X)``, gates), which a ``DistributedDataParallel`` wrapper only
  synchronises through its ``forward``. (No overlap of communication with the backward pass.)
* **State**: all ranks start from the same seed; parameters and buffers are broadcast from rank 0 when a
  trainer call starts and buffers (BatchNorm statistics) before every validation, so every rank holds the
  same model. Validation is scored on shards and gathered: every rank gets the same AUC, hence the same
  early-stopping and LR decisions. Dropout masks repeat across ranks (same seed).
* **Records**: rank 0 decides which runs of the grid to do (broadcast to all), measures the serving model
  and writes the record (``distributed.world_size``, ``global_batch``, backend).
* **Failure**: an exception on any rank ends the job on every rank (a rank cannot leave a collective its
  peers are blocked in). The failing rank posts its rank and error to the rendezvous store; rank 0 (or,
  when rank 0 itself died, the ``--nproc`` launcher from torchrun's report) writes the run's record as
  failed naming the rank and why; rerunning resumes the grid. Collectives time out after
  ``--dist-timeout`` seconds (a hung rank), and gloo fails at once when a peer's process is gone.
"""
from __future__ import annotations

import datetime as dt
import glob
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

import numpy as np
import torch
from torch import nn

from leanrec.batches import MappedRows, rank_world, shard
from leanrec.errors import LeanrecError

DEFAULT_TIMEOUT_S = 1800
FAILURE_KEY = "leanrec/failure/"


def dist() -> Any:
    return torch.distributed


def is_distributed() -> bool:
    """True in a process group of more than one rank."""
    return rank_world()[1] > 1


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("WORLD_SIZE" in os.environ and "RANK" in os.environ)


def init_from_env(device: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """Join the process group torchrun describes in the environment (gloo on CPU, NCCL on CUDA) and return the
    device this rank trains on ('cuda:<LOCAL_RANK>' for CUDA)."""
    if not dist().is_available():
        raise LeanrecError("this torch build has no torch.distributed: run without torchrun / --nproc")
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    elif device == "auto":
        device = "cpu"
    if not dist().is_initialized():
        dist().init_process_group("nccl" if cuda else "gloo", timeout=dt.timedelta(seconds=timeout_s))
    _defer_sigterm()
    return device


def _defer_sigterm(grace_s: float = 10.0) -> None:
    """torchrun sends SIGTERM to every rank as soon as one exits. A rank whose peer just failed is then
    usually about to record why (rank 0 writes the failed run's record as its next collective fails), so
    SIGTERM ends the process `grace_s` seconds later instead of at once."""
    def later(signum: int, frame: Any) -> None:
        timer = threading.Timer(grace_s, lambda: os._exit(128 + signum))
        timer.daemon = True
        timer.start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, later)


def shutdown(wait_for_peers: bool = False) -> None:
    """Close the process group (a no-op outside one). `wait_for_peers` (the success path: every rank gets
    here) first waits at a barrier, so no rank tears its connections down while a peer still works with
    them: gloo can abort a process ("terminate called without an active exception") whose peer closed
    the connection under it at exit, which torchrun then reports as a failed job after a successful grid."""
    if dist().is_available() and dist().is_initialized():
        if wait_for_peers and is_distributed():
            dist().barrier()
        dist().destroy_process_group()


def leave_after_success() -> NoReturn:
    """End a rank other than 0 after a grid every rank finished: wait for the peers, close the process group,
    flush the output and leave without the interpreter's teardown. gloo's threads and the process group's
    C++ objects can abort a process during that teardown ("terminate called without an active exception"),
    which torchrun reports as a failed job after a successful grid; rank 0 writes the records and the
    leaderboard, so nothing is lost by skipping it here (records are fsync'd when written)."""
    shutdown(wait_for_peers=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


FAILURE_GRACE_S = 5.0


def leave_after_failure() -> None:
    """End this rank's part after a failed run: close the process group at once (peers blocked in a
    collective with this rank then fail instead of waiting for the timeout), and on ranks other than 0 wait a
    few seconds before exiting, since torchrun stops every rank as soon as one process exits and rank 0 still
    has the record to write."""
    rank = rank_world()[0]
    shutdown()
    if rank != 0:
        time.sleep(FAILURE_GRACE_S)


def info(batch_size: int | None = None) -> dict[str, Any]:
    """What a record says about the process group (world size, backend, global batch)."""
    rank, world = rank_world()
    out: dict[str, Any] = {"world_size": world}
    if world > 1:
        out["backend"] = dist().get_backend()
        out["nnodes"] = int(os.environ.get("GROUP_WORLD_SIZE", os.environ.get("NNODES", "1")) or 1)
    return out


def rank0_first(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) on rank 0, then on the other ranks (e.g. preparing a dataset cache once, which all
    ranks then open)."""
    if not is_distributed():
        return fn(*args, **kwargs)
    if rank_world()[0] == 0:
        out = fn(*args, **kwargs)
        dist().barrier()
        return out
    dist().barrier()
    return fn(*args, **kwargs)


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (the identity outside a process group)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist().broadcast_object_list(box, src=0)
    return box[0]


def _comm_device() -> torch.device:
    """The device collectives run on: CUDA for NCCL, CPU for gloo."""
    if dist().get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class GradientSync:
    """Averages the gradients of `optimizer`'s parameters over ranks, broadcasts rank 0's model, gathers
    scores (see the module docstring). Built by the trainer once per trainer call (broadcasting the model)."""

    def __init__(self, model: nn.Module, optimizer: Any):
        self.model = model
        seen: set[int] = set()
        self.params: list[nn.Parameter] = []
        for group in optimizer.param_groups:
            for p in group["params"]:
                if id(p) not in seen and p.requires_grad:
                    seen.add(id(p))
                    self.params.append(p)
        self.world = rank_world()[1]
        self.device = _comm_device()
        self.broadcast_state(buffers_only=False)

    def broadcast_state(self, buffers_only: bool = True) -> None:
        """Rank 0's buffers (and parameters) on every rank."""
        tensors = list(self.model.buffers()) + ([] if buffers_only else list(self.model.parameters()))
        for t in tensors:
            if t.numel():
                if t.device == self.device:
                    dist().broadcast(t.data, src=0)
                else:
                    tmp = t.data.to(self.device)
                    dist().broadcast(tmp, src=0)
                    t.data.copy_(tmp)

    @torch.no_grad()
    def average_gradients(self) -> None:
        """Every parameter's gradient := its mean over ranks (a rank without a gradient counts as zeros; a
        parameter no rank has a gradient for keeps None, so its optimizer state is not stepped)."""
        dense = [p for p in self.params if p.grad is None or not p.grad.is_sparse]
        sparse = [p for p in self.params if p.grad is not None and p.grad.is_sparse]
        # One flat all-reduce: the dense gradients, which of them exist, and the count of sparse ones (which
        # must agree across ranks).
        flags = torch.tensor([float(p.grad is not None) for p in dense], dtype=torch.float32)
        parts = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float() for p in dense]
        flat = torch.cat([*(x.to(self.device) for x in parts), flags.to(self.device),
                          torch.tensor([float(len(sparse))], device=self.device)])
        dist().all_reduce(flat)
        n_sparse = flat[-1].item()
        if n_sparse != len(sparse) * self.world:
            raise LeanrecError("ranks disagree on which embedding gradients are sparse; cannot average them")
        present = flat[-1 - len(dense):-1]
        offset = 0
        for i, p in enumerate(dense):
            n = p.numel()
            if present[i] > 0:
                g = flat[offset:offset + n].view_as(p).to(p.device, p.dtype) / self.world
                p.grad = g if p.grad is None else p.grad.copy_(g)
            offset += n
        for p in sparse:
            p.grad = self._average_sparse(p.grad)

    def _average_sparse(self, grad: torch.Tensor) -> torch.Tensor:
        """All-gather the (coalesced) rows of a sparse gradient and sum them: the mean over ranks."""
        g = grad.coalesce()
        idx, val = g.indices()[0].to(self.device), g.values().to(self.device)
        counts = [torch.zeros(1, dtype=torch.long, device=self.device) for _ in range(self.world)]
        dist().all_gather(counts, torch.tensor([idx.numel()], device=self.device))
        top = int(max(c.item() for c in counts))
        pad_i = torch.zeros(top, dtype=idx.dtype, device=self.device)
        pad_v = torch.zeros((top, *val.shape[1:]), dtype=val.dtype, device=self.device)
        pad_i[:idx.numel()], pad_v[:idx.numel()] = idx, val
        all_i = [torch.empty_like(pad_i) for _ in range(self.world)]
        all_v = [torch.empty_like(pad_v) for _ in range(self.world)]
        dist().all_gather(all_i, pad_i)
        dist().all_gather(all_v, pad_v)
        keep_i = torch.cat([a[:int(c.item())] for a, c in zip(all_i, counts)]).to(grad.device)
        keep_v = torch.cat([a[:int(c.item())] for a, c in zip(all_v, counts)]).to(grad.device)
        return torch.sparse_coo_tensor(keep_i.unsqueeze(0), keep_v / self.world, grad.shape,
                                       check_invariants=False).coalesce()

    def mean_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        t = value.detach().reshape(1).float().to(self.device)
        dist().all_reduce(t)
        return t[0] / self.world

    def gather_logits(self, X: Any, predict: Callable[[Any], np.ndarray]) -> np.ndarray:
        """Every rank scores its shard of X's rows; returns all scores in row order on every rank."""
        self.broadcast_state(buffers_only=True)
        rank = rank_world()[0]
        n = len(X)
        lo, hi = shard(n, rank, self.world)
        local = predict(X.view(lo, hi) if isinstance(X, MappedRows) else X[lo:hi])
        top = max(hi_ - lo_ for lo_, hi_ in (shard(n, r, self.world) for r in range(self.world)))
        buf = torch.zeros(top, dtype=torch.float32, device=self.device)
        buf[:len(local)] = torch.from_numpy(np.asarray(local, dtype=np.float32)).to(self.device)
        out = [torch.empty_like(buf) for _ in range(self.world)]
        dist().all_gather(out, buf)
        return np.concatenate([o[:b - a].cpu().numpy() for o, (a, b) in
                               zip(out, (shard(n, r, self.world) for r in range(self.world)))])


# ---- failures ---------------------------------------------------------------------------------------------------
class RunAborted(Exception):
    """A rank failed: every rank leaves the grid (the record, rank 0's to write, says which rank and why)."""

    def __init__(self, record: dict[str, Any]):
        super().__init__(record["error"]["message"])
        self.record = record


def inflight_path(record_file: Path) -> Path:
    """The marker rank 0 keeps next to a record while the run is in flight (for the --nproc launcher)."""
    return record_file.with_name(f".{record_file.name}.inflight")


def _failure_file(record_file: Path, rank: int) -> Path:
    return record_file.with_name(f".{record_file.name}.rank{rank}.failure")


def clear_inflight(record_file: Path) -> None:
    """Remove the run's in-flight marker and failure posts (rank 0, once the record is written)."""
    for p in [inflight_path(record_file), *_failure_files(record_file)]:
        p.unlink(missing_ok=True)


def _store() -> Any | None:
    try:
        return dist().distributed_c10d._get_default_store()
    except Exception:  # noqa: BLE001 - no store: nothing to post to
        return None


def post_failure(exc: BaseException, record_file: Path | None) -> dict[str, Any]:
    """Tell the other ranks that this rank failed and why: in the rendezvous store (every machine) and in a
    file next to the record (the --nproc launcher)."""
    rank = rank_world()[0]
    failure = {"rank": rank, "host": os.uname().nodename, "type": type(exc).__name__, "message": str(exc),
               "time": time.time()}
    text = json.dumps(failure)
    store = _store()
    if store is not None:
        try:
            store.set(f"{FAILURE_KEY}{rank}", text)
        except Exception:  # noqa: BLE001 - the store may be gone with rank 0's agent
            pass
    if record_file is not None:
        from leanrec.records import atomic_write_text

        atomic_write_text(_failure_file(record_file, rank), text)
    return failure


def posted_failures(record_file: Path | None) -> list[dict[str, Any]]:
    """Failures the ranks posted for this run (in files next to the record, and in the store)."""
    store, world = _store(), rank_world()[1]
    found = {f["rank"]: f for f in (_posted_files(record_file) if record_file is not None else [])}
    for r in range(world):
        if r in found or store is None:
            continue
        try:
            if store.check([f"{FAILURE_KEY}{r}"]):
                found[r] = json.loads(store.get(f"{FAILURE_KEY}{r}"))
        except Exception:  # noqa: BLE001 - the store went with a dead agent
            break
    return list(found.values())


def root_cause(failures: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The first failure posted (the later ones are ranks seeing the group break)."""
    return min(failures, key=lambda f: (f.get("time", math.inf), f["rank"]))


def failure_error(cause: dict[str, Any], world: int, own_traceback: str) -> dict[str, Any]:
    """A record's ``error`` for a run that failed on `cause["rank"]`."""
    who = f"rank {cause['rank']} of {world} ({cause.get('host', '?')})" if cause["rank"] is not None else \
        f"a rank of {world}"
    return {"type": cause["type"], "rank": cause["rank"], "world_size": world, "message": f"{who}: {cause['message']}",
            "traceback": own_traceback}


def is_peer_loss(exc: BaseException) -> bool:
    """Whether `exc` is a collective failing because another rank went away (gloo raises a plain RuntimeError
    naming its transport; NCCL and the store raise torch.distributed.DistError)."""
    text = str(exc).lower()
    return isinstance(exc, getattr(dist(), "DistError", ())) or (
        isinstance(exc, RuntimeError) and any(s in text for s in ("gloo", "connection reset", "connection closed",
                                                                   "nccl", "timed out", "timeout")))


def agree_on_failure(exc: BaseException, tb: str, record_file: Path | None) -> dict[str, Any]:
    """Post this rank's failure; on rank 0 return the record's error naming the rank that failed first.

    A rank that raises posts before its process exits, and its peers' collectives fail only once it has
    exited, so rank 0 finds the post without waiting. A rank killed by a signal posts nothing: rank 0 then
    says a peer was lost (the --nproc launcher, which sees the signal, names the rank)."""
    own = post_failure(exc, record_file)
    rank, world = rank_world()
    if rank != 0:
        return failure_error(own, world, tb)
    others = [f for f in posted_failures(record_file) if f["rank"] != rank]
    if others:
        return failure_error(root_cause(others), world, tb)
    if is_peer_loss(exc):
        own = {**own, "rank": None, "type": "PeerLost",
               "message": f"a rank was lost without reporting an error (killed, or hung past --dist-timeout); "
                          f"rank 0 saw: {own['message']}"}
    return failure_error(own, world, tb)


# ---- the local launcher -----------------------------------------------------------------------------------------
def strip_nproc(argv: Sequence[str]) -> list[str]:
    """`argv` without --nproc (and its value), so the ranks run the grid themselves."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        out.append(a)
    return out


def launch(nproc: int, argv: Sequence[str], results_dir: Path) -> int:
    """Run ``leanrec <argv>`` on `nproc` local processes through torch.distributed.run (torchrun); returns the
    exit status. When a rank died before rank 0 recorded why (rank 0 itself killed, or torchrun ending it
    first), the run in flight gets its failed record here, from the ranks' posted failures or torchrun's
    report (exit code, signal)."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = torchrun.get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", "-m", "leanrec", *argv])
    try:
        torchrun.run(args)
        return 0
    except ChildFailedError as exc:
        for marker in Path(results_dir).glob("runs/*/.*.inflight"):
            record_launch_failure(marker, exc)
        return 1


def record_launch_failure(marker: Path, exc: Any) -> None:
    """Write the failed record of the run `marker` names (unless rank 0 did) and remove the marker."""
    from leanrec.records import read_record, write_record

    pending = json.loads(marker.read_text(encoding="utf8"))
    path = Path(pending["path"])
    record = dict(pending["record"])
    old = read_record(path) if path.exists() else {}
    done = old.get("identity_hash") == record.get("identity_hash") and (
        old.get("status") == "ok" or (old.get("error") or {}).get("rank") is not None)
    if not done:
        world = record.get("distributed", {}).get("world_size", 0)
        posted = {f["rank"]: f for f in _posted_files(path)}
        killed = [(rank, f) for rank, f in (getattr(exc, "failures", {}) or {}).items()
                  if rank not in posted and f.exitcode < 0]
        if killed:   # a rank killed by a signal posts nothing: it is the cause, not those who saw it go
            rank, f = min(killed, key=lambda kv: kv[1].timestamp)
            cause = {"rank": rank, "type": "RankKilled", "host": os.uname().nodename,
                     "message": f"killed by signal {-f.exitcode} ({f.signal_name()})"}
        elif posted:
            cause = root_cause(list(posted.values()))
        else:
            cause = {"rank": None, "type": "RankFailed", "host": os.uname().nodename, "message": str(exc)}
        record.update(status="failed", error=failure_error(cause, world, str(exc)))
        write_record(path, record)
        print(f"✗ {record['dataset']} · {record['variant']} · seed {record['seed']}: {record['error']['message']}",
              file=sys.stderr)
    clear_inflight(path)


def _failure_files(record_file: Path) -> list[Path]:
    return list(record_file.parent.glob(f"{glob.escape('.' + record_file.name)}.rank*.failure"))


def _posted_files(record_file: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf8")) for p in _failure_files(record_file)]
