"""Where the trainer's minibatches come from: device tensors held whole, or a split streamed from the cache.

A split whose arrays fit the run's memory budget (``RunContext.memory_budget_bytes``; ``leanrec run
--memory-budget``; unset = no budget) is copied to the device once (:class:`leanrec.trainer.Tensors`) and
minibatches are gathered from it by a permutation of its rows -- exactly as before budgets existed, so the
results there are bit-identical. A larger split stays in the memory-mapped cache (:class:`MappedSplit`) and is
read in **blocks**:

* training (:class:`StreamedSource`): each epoch permutes the order of the blocks, then the rows inside each
  block (a NumPy generator seeded from the trainer's torch generator, so the same seed gives the same
  order); minibatches are cut from that stream in a background thread that reads, shuffles and (for CUDA)
  pins the next ``prefetch`` batches while the model computes the current one; each batch is moved to the
  device when it is used;
* scoring (:func:`predict_logits` on a :class:`MappedRows`): consecutive chunks read ahead the same way.

Blocks are read with ``pread`` from the ``.npy`` file rather than through the memory map, so the pages read
live in the page cache, not in the process (resident memory stays bounded by the blocks in flight instead of
growing to the file's size as mapped pages would). The memory a streamed split needs is bounded by
:func:`stream_bytes`; a split (or a gather from it) that does not fit the budget raises :class:`MemoryBudgetError`
naming the budget and the size.

Under ``torch.distributed`` (:mod:`leanrec.distributed`), every source yields only the calling rank's shard:
a contiguous range of the rows, cut into as many batches as the schedule has steps, so every rank takes the
same number of steps with about ``batch_size / world_size`` rows each (the global batch is the config's
``batch_size``).
"""
from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from leanrec.errors import LeanrecError
from leanrec.prefetch import prefetched

DEFAULT_PREFETCH = 4          # batches read ahead of the one being computed
BLOCK_SHARE = 8               # a block is at most budget / BLOCK_SHARE bytes (a few blocks are in flight at once)
MAX_BLOCK_ROWS = 1 << 20      # ... and at most this many rows
SCORE_CHUNK = 16384           # rows per scoring batch
MMAP_THRESHOLD = 8 << 20      # glibc: buffers this large are mapped and unmapped (see return_freed_memory)


class MemoryBudgetError(LeanrecError):
    """A split, or what a method asks of it, does not fit the run's memory budget."""


def parse_bytes(text: str | int | None) -> int | None:
    """'512M', '2G', '1.5GiB', '1000000' -> bytes (K/M/G/T are powers of 1024); None stays None."""
    if text is None or isinstance(text, int):
        return text
    s = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(s[-1:], 1)
    try:
        value = float(s[:-1] if scale > 1 else s) * scale
    except ValueError:
        raise LeanrecError(f"memory budget {text!r}: expected a size such as 512M, 2G or 1000000 (bytes)") from None
    if value < 1:
        raise LeanrecError(f"memory budget {text!r} must be positive")
    return int(value)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def row_bytes(X: np.ndarray, y: np.ndarray) -> int:
    """Bytes of one row on the device: int32 codes and float32 labels."""
    return 4 * (int(np.prod(X.shape[1:], dtype=np.int64)) + int(np.prod(y.shape[1:], dtype=np.int64)))


def split_bytes(X: np.ndarray, y: np.ndarray) -> int:
    """Bytes of a split held whole on the device (what :class:`leanrec.trainer.Tensors` allocates)."""
    return len(X) * row_bytes(X, y)


def rank_world() -> tuple[int, int]:
    """(rank, world size) of this process under torch.distributed; (0, 1) outside it."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def shard(n: int, rank: int, world: int) -> tuple[int, int]:
    """The rows [lo, hi) of `n` that `rank` of `world` reads (contiguous, sizes differing by at most one)."""
    return n * rank // world, n * (rank + 1) // world


def return_freed_memory() -> bool:
    """Make glibc hand freed buffers of ``MMAP_THRESHOLD`` bytes and more back to the system, so resident memory
    follows what is live rather than what was once allocated. By default glibc raises its threshold to the
    largest buffer freed (up to 32 MiB), after which scoring batches' activations (26 MiB each for a 400-wide
    layer at 16,384 rows) come from heaps that do not shrink: on the 2M-row benchmark the first validation
    then added 449 MiB of resident memory (benchmarks/results/memory_budget.md). A fixed threshold above a
    training batch's activations keeps those on the fast heap. Called when a memory budget is set; returns
    False where the C library is not glibc."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, MMAP_THRESHOLD))   # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


# ---- rows read on demand from a (memory-mapped) array ---------------------------------------------------------
class MappedRows:
    """The rows [start, stop) of a 2-D array read on demand and handed out as tensors on `device`.

    Stands in for a split's ``X`` / ``y`` tensor where a split is streamed: ``rows[a:b]`` (contiguous read),
    ``rows[index]`` / ``rows.index_select(0, index)`` (a gather), ``len``, ``shape``, ``device``, ``dtype``.
    A read larger than `budget` bytes raises :class:`MemoryBudgetError`.
    """

    def __init__(self, array: np.ndarray, dtype: torch.dtype, device: torch.device, budget: int | None,
                 name: str = "split", start: int = 0, stop: int | None = None):
        self.array, self.dtype, self.device, self.budget, self.name = array, dtype, torch.device(device), budget, name
        self.start, self.stop = start, len(array) if stop is None else stop
        self.width = int(np.prod(array.shape[1:], dtype=np.int64)) if array.ndim > 1 else 1
        self._np_dtype = np.int32 if dtype == torch.int32 else np.float32
        self._file = _file_of(array)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.stop - self.start, self.width))

    def __len__(self) -> int:
        return self.stop - self.start

    def view(self, lo: int, hi: int) -> "MappedRows":
        """Rows [lo, hi) of these rows, still unread."""
        lo, hi = max(0, lo), min(len(self), hi)
        return MappedRows(self.array, self.dtype, self.device, self.budget, self.name,
                          self.start + lo, self.start + max(lo, hi))

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Rows [lo, hi) as a fresh C-contiguous (hi - lo, width) array of the target dtype (in host memory)."""
        a, b = self.start + lo, self.start + hi
        if self._file is not None:
            path, offset, stored = self._file
            out = np.empty((b - a, self.width), dtype=stored)
            if b > a:
                _pread_into(path, offset + a * self.width * stored.itemsize, out)
        else:
            out = np.asarray(self.array[a:b]).reshape(b - a, self.width)
        return np.ascontiguousarray(out, dtype=self._np_dtype)

    def gather(self, index: np.ndarray) -> np.ndarray:
        """The rows at `index` (positions within these rows), in that order, in host memory."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        self._check(len(index), f"gathering {len(index):,} rows")
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        order = np.argsort(index, kind="stable")
        sorted_rows = np.asarray(self.array[self.start + index[order]]).reshape(len(index), self.width)
        out = np.empty_like(sorted_rows, dtype=self._np_dtype)
        out[order] = sorted_rows
        return out

    def to_device(self, host: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(host)
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def __getitem__(self, key: Any) -> torch.Tensor:
        cols = None
        if isinstance(key, tuple):
            key, cols = key[0], key[1:]
        if isinstance(key, slice):
            lo, hi, step = key.indices(len(self))
            if step != 1:
                raise MemoryBudgetError(f"streamed {self.name}: only unit-step row slices are supported")
            self._check(max(0, hi - lo), f"reading rows {lo}:{hi}")
            out = self.to_device(self.read(lo, max(lo, hi)))
        elif isinstance(key, int):
            i = key + len(self) if key < 0 else key
            if not 0 <= i < len(self):
                raise IndexError(f"row {key} out of range for {len(self)} rows")
            out = self.to_device(self.read(i, i + 1))[0]
        else:
            idx = key.detach().cpu().numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            out = self.to_device(self.gather(idx))
        return out[(slice(None), *cols)] if cols else out

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        if dim != 0:
            raise MemoryBudgetError(f"streamed {self.name}: index_select only along rows (dim 0)")
        return self[index]

    def chunks(self, rows: int, prefetch: int = DEFAULT_PREFETCH) -> Iterator[torch.Tensor]:
        """Consecutive chunks of `rows` rows on the device, read ahead in a background thread."""
        def produce() -> Iterator[torch.Tensor]:
            for lo in range(0, len(self), rows):
                host = torch.from_numpy(self.read(lo, min(lo + rows, len(self))))
                yield host.pin_memory() if self.device.type == "cuda" else host
        for host in prefetched(produce(), prefetch):
            yield host.to(self.device, non_blocking=True)

    def _check(self, n_rows: int, what: str) -> None:
        need = n_rows * self.width * 4
        if self.budget is not None and need > self.budget:
            raise MemoryBudgetError(
                f"streamed {self.name}: {what} needs {human(need)} in memory, over the memory budget of "
                f"{human(self.budget)} (raise --memory-budget, or use a method that trains through ctx.train)")

    def __repr__(self) -> str:
        return f"MappedRows({self.name}, rows {self.start}:{self.stop}, width {self.width}, {self.device})"


def _file_of(array: np.ndarray) -> tuple[str, int, np.dtype] | None:
    """(path, byte offset of row 0, stored dtype) when `array` is a whole C-contiguous memory-mapped .npy."""
    if (isinstance(array, np.memmap) and getattr(array, "filename", None) and isinstance(array.base, mmap.mmap)
            and array.flags.c_contiguous and array.dtype.isnative):
        return str(array.filename), int(array.offset), array.dtype
    return None


def _pread_into(path: str, offset: int, out: np.ndarray) -> None:
    view = memoryview(out).cast("B")
    fd = os.open(path, os.O_RDONLY)
    try:
        done = 0
        while done < len(view):
            n = os.preadv(fd, [view[done:]], offset + done)
            if n <= 0:
                raise LeanrecError(f"{path}: file ends before byte {offset + len(view)} (a truncated cache?)")
            done += n
    finally:
        os.close(fd)


@dataclass
class MappedSplit:
    """A split streamed from the cache: ``X`` (int32 codes) and ``y`` (float32 labels) as :class:`MappedRows`."""

    X: MappedRows
    y: MappedRows
    block_rows: int
    prefetch: int = DEFAULT_PREFETCH

    def __len__(self) -> int:
        return len(self.X)

    @classmethod
    def open(cls, X: np.ndarray, y: np.ndarray, device: torch.device, budget: int, name: str,
             batch_size: int = 0, prefetch: int = DEFAULT_PREFETCH) -> "MappedSplit":
        """Stream `name` (X, y) under `budget` bytes; :class:`MemoryBudgetError` if even streaming does not fit."""
        y2 = y if y.ndim > 1 else y.reshape(len(y), 1)
        rb = row_bytes(X, y2)
        block_rows = int(max(1, min(MAX_BLOCK_ROWS, budget // (BLOCK_SHARE * rb))))
        split = cls(MappedRows(X, torch.int32, device, budget, f"{name} X"),
                    MappedRows(y2, torch.float32, device, budget, f"{name} y"), block_rows, prefetch)
        need = split.stream_bytes(batch_size)
        if need > budget:
            raise MemoryBudgetError(
                f"split {name!r} ({len(X):,} rows, {human(split_bytes(X, y2))}) is over the memory budget of "
                f"{human(budget)}, and streaming it needs {human(need)} (blocks of {block_rows:,} rows, "
                f"{prefetch} batches of {batch_size:,} read ahead, labels and scores of every row): raise "
                f"--memory-budget to at least {human(need)}")
        return split

    def stream_bytes(self, batch_size: int) -> int:
        """An upper bound on the host memory streaming this split takes: a block as read and shuffled, the
        batches read ahead, and (to score it) one label and one logit per row."""
        rb = 4 * (self.X.width + self.y.width)
        return 3 * self.block_rows * rb + (self.prefetch + 2) * batch_size * rb + 8 * len(self)


def first_label(split: Any) -> np.ndarray:
    """The first label column of a split (Tensors or MappedSplit) as a float32 NumPy vector."""
    if isinstance(split.y, MappedRows):
        return np.concatenate([c[:, 0].cpu().numpy() for c in split.y.chunks(1 << 20)] or
                              [np.zeros(0, np.float32)])
    return split.y[:, 0].cpu().numpy()


# ---- training batch sources -------------------------------------------------------------------------------------
def batch_bounds(n: int, steps: int, batch_size: int, world: int) -> np.ndarray:
    """Row offsets [b_0 = 0, ..., b_steps] of one epoch's `steps` batches over `n` (shuffled) rows.

    One process: batches of `batch_size`, the last one shorter (the schedule already leaves out a last
    batch of one row). Several: this rank's `n` rows are cut into `steps` near-equal batches, so every rank
    steps the same number of times."""
    if world == 1:
        return np.minimum(np.arange(steps + 1, dtype=np.int64) * batch_size, n)
    return np.arange(steps + 1, dtype=np.int64) * n // max(steps, 1)


class InMemorySource:
    """Minibatches gathered from device tensors by a fresh permutation per epoch (the harness's original path:
    with one process the same torch generator calls and indexing as before, hence bit-identical runs)."""

    def __init__(self, split: Any, batch_size: int, steps: int):
        self.split, self.batch_size, self.steps = split, batch_size, steps
        self.rank, self.world = rank_world()
        self.device = split.X.device

    def epoch(self, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        X, y, bs = self.split.X, self.split.y, self.batch_size
        if self.world == 1:
            perm = torch.randperm(len(X), generator=gen).to(self.device)
            for b in range(self.steps):
                idx = perm[b * bs:(b + 1) * bs]
                yield X[idx], y[idx]
            return
        lo, hi = shard(len(X), self.rank, self.world)
        perm = (torch.randperm(hi - lo, generator=gen) + lo).to(self.device)
        bounds = batch_bounds(hi - lo, self.steps, bs, self.world)
        for b in range(self.steps):
            idx = perm[bounds[b]:bounds[b + 1]]
            yield X[idx], y[idx]


class StreamedSource:
    """Minibatches of a :class:`MappedSplit` read block by block (block order, then rows within a block,
    permuted each epoch), `prefetch` batches ahead in a background thread, moved to the device when used."""

    def __init__(self, split: MappedSplit, batch_size: int, steps: int):
        self.split, self.batch_size, self.steps = split, batch_size, steps
        self.rank, self.world = rank_world()
        self.device = split.X.device
        need, budget = split.stream_bytes(batch_size), split.X.budget
        if budget is not None and need > budget:
            raise MemoryBudgetError(
                f"streaming {split.X.name.removesuffix(' X')} ({len(split):,} rows) in batches of {batch_size:,} "
                f"needs {human(need)}, over the memory budget of {human(budget)}: raise --memory-budget to at "
                f"least {human(need)}")

    def epoch(self, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        pin = self.device.type == "cuda"
        for xb, yb in prefetched(self._host_batches(epoch_seed, pin), self.split.prefetch):
            yield xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)

    def _host_batches(self, epoch_seed: int, pin: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's batches in host memory: this rank's rows in shuffled blocks, cut at batch_bounds."""
        sp = self.split
        lo, hi = shard(len(sp), self.rank, self.world)
        n, block = hi - lo, sp.block_rows
        bounds = batch_bounds(n, self.steps, self.batch_size, self.world)
        rng = np.random.default_rng(epoch_seed)
        starts = lo + rng.permutation(-(-n // block)) * block
        carry_x: list[np.ndarray] = []
        carry_y: list[np.ndarray] = []
        have, b = 0, 0
        for s in starts:
            e = min(s + block, hi)
            p = rng.permutation(e - s)
            carry_x.append(sp.X.read(s, e)[p])
            carry_y.append(sp.y.read(s, e)[p])
            have += e - s
            while b < self.steps and have >= bounds[b + 1] - bounds[b]:
                size = int(bounds[b + 1] - bounds[b])
                xs, ys = _take(carry_x, size), _take(carry_y, size)
                have -= size
                b += 1
                tx, ty = torch.from_numpy(xs), torch.from_numpy(ys)
                yield (tx.pin_memory(), ty.pin_memory()) if pin else (tx, ty)
            if b == self.steps:
                return


def _take(parts: list[np.ndarray], n: int) -> np.ndarray:
    """Remove and return the first `n` rows of the concatenation of `parts` (a copy only across parts)."""
    head = parts[0]
    if len(head) >= n:
        parts[0] = head[n:]
        if not len(parts[0]):
            parts.pop(0)
        return head[:n]
    out, got = [], 0
    while got < n:
        take = parts[0][: n - got]
        out.append(take)
        got += len(take)
        parts[0] = parts[0][len(take):]
        if not len(parts[0]):
            parts.pop(0)
    return np.concatenate(out)


def batch_source(split: Any, batch_size: int, steps: int) -> InMemorySource | StreamedSource:
    """The source of `split`'s training batches: streamed for a :class:`MappedSplit`, in memory otherwise."""
    if isinstance(split, MappedSplit):
        return StreamedSource(split, batch_size, steps)
    return InMemorySource(split, batch_size, steps)


def row_chunks(X: Any, batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive row chunks of X (a tensor or :class:`MappedRows`, the latter read ahead) for scoring."""
    if isinstance(X, MappedRows):
        yield from X.chunks(batch_size)
    else:
        for i in range(0, X.shape[0], batch_size):
            yield X[i:i + batch_size]

