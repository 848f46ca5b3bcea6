"""load_dataset: card -> (cached) encoded dataset of memory-mapped int32 codes and float32 labels.

Pipeline (each step in its own module): cards (what) -> readers or synthetic (raw rows) -> preprocess (split,
labels, vocabularies from train, codes) -> cache (atomic, keyed by everything that changes the result).
"""
from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from leanrec.data import cache, readers, synthetic
from leanrec.data.cards import DatasetCard, FieldSpec, LabelSpec, load_card
from leanrec.data.preprocess import (SPLIT_NAMES, TRAIN, FieldEncoder, GroupIndexer, PrepConfig, ValueCounter,
                                     check_classes, cross_tokens, encode, label_matrix, split_codes, time_split,
                                     vocab_from_counts)
from leanrec.data.readers import RawTable, iter_source, to_time
from leanrec.errors import ConfigError, UnknownNameError, check_keys

SPLITS = SPLIT_NAMES
REPLAY_BYTES = 64 << 20   # sources smaller than this are parsed once and replayed from memory between passes
CROSS_CHUNK_ROWS = 1 << 20
DISK_HEADROOM = 0.9       # a cache may take at most this share of the free space on its disk
CROSS_MEMORY_SHARE = 0.5  # cross-field counts may hold at most this share of the memory available at the start


@dataclass(frozen=True)
class FieldInfo:
    """One encoded field. vocab_size counts every code (incl. missing = 0 and OOV = 1); cardinality is the
    number of distinct raw values seen in train (before min_count)."""

    name: str
    kind: str
    vocab_size: int
    cardinality: int


@dataclass(frozen=True)
class Split:
    """One split: X int32 (N, F) codes, y float32 (N, L) 0/1 labels, optional group ids and dense numerics."""

    X: np.ndarray
    y: np.ndarray
    group: np.ndarray | None = None
    dense: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.X)


class SplitAccess:
    """``train`` / ``valid`` / ``test`` shortcuts over a ``splits`` dict (shared with in-memory test datasets)."""

    splits: dict[str, Split]
    fields: list[FieldInfo]
    labels: list[str]

    def fingerprint(self) -> str:
        """A hash of the encoded content (fields, labels and every split's arrays): the data's part of a run's
        identity. Unlike the cache key it ignores how the content was produced, so a change to the data code
        that does not change the encoding does not invalidate finished runs, and any change that does, does."""
        cached = getattr(self, "_fingerprint", None)
        if cached is None:
            h = hashlib.blake2b(digest_size=16)
            h.update(json.dumps([[asdict(f) for f in self.fields], list(self.labels)], sort_keys=True).encode())
            for name in sorted(self.splits):
                for part in ("X", "y", "group", "dense"):
                    arr = getattr(self.splits[name], part)
                    h.update(f"|{name}.{part}".encode())
                    if arr is not None:
                        mapped, arr = arr, np.asarray(arr)
                        h.update(f"{arr.dtype.str}{arr.shape}".encode())
                        flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
                        for i in range(0, flat.size, 1 << 26):   # 64 MB at a time: bounded memory on big splits
                            h.update(flat[i:i + (1 << 26)])
                            _drop_pages(mapped)
            cached = h.hexdigest()
            self._fingerprint = cached
        return cached

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def valid(self) -> Split:
        return self.splits["valid"]

    @property
    def test(self) -> Split:
        return self.splits["test"]


class EncodedDataset(SplitAccess):
    """An encoded dataset opened from its cache directory (arrays are read-only memory maps)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta = cache.load_meta(self.path)
        self.meta = meta
        self.name: str = meta["name"]
        self.cache_key: str = meta["cache_key"]
        self.fields: list[FieldInfo] = [FieldInfo(**f) for f in meta["fields"]]
        self.labels: list[str] = list(meta["labels"])
        self.dense_fields: list[str] = list(meta.get("dense_fields", []))
        self.ground_truth: dict[str, Any] | None = meta.get("ground_truth")
        self.splits: dict[str, Split] = {
            s: Split(cache.load_array(self.path, f"{s}_X"), cache.load_array(self.path, f"{s}_y"),
                     cache.load_array(self.path, f"{s}_group"), cache.load_array(self.path, f"{s}_dense"))
            for s in SPLITS
        }

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def vocab(self, field: str) -> pa.Table:
        """The vocabulary of `field`: code (2 = first value; 0 missing and 1 OOV are implicit), value, count."""
        import pyarrow.parquet as pq

        if field not in self.field_names:
            raise UnknownNameError("field", field, self.field_names)
        t = pq.read_table(self.path / "vocab.parquet", filters=[("field", "=", field)])
        return t.select(["code", "value", "count"]).sort_by("code")

    def info(self) -> dict[str, Any]:
        """Fields, vocabulary sizes, split sizes, positive rates, cache key and path."""
        return {
            "name": self.name,
            "fields": [asdict(f) for f in self.fields],
            "labels": self.labels,
            "splits": {s: {"rows": len(sp), "positive_rate": [float(r) for r in np.asarray(sp.y).mean(axis=0)]}
                       for s, sp in self.splits.items()},
            "group": self.meta.get("group"),
            "dense_fields": self.dense_fields,
            "ground_truth": self.ground_truth,
            "config": self.meta["config"],
            "cache_key": self.cache_key,
            "cache_path": str(self.path),
            "build_seconds": self.meta.get("build_seconds"),
        }

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(sp)}" for s, sp in self.splits.items())
        return f"EncodedDataset({self.name!r}, fields={len(self.fields)}, labels={self.labels}, {sizes})"


# ---- resolving what to load ----------------------------------------------------------------------------------
def resolve_card(name_or_card: str | Path | DatasetCard) -> DatasetCard:
    """A DatasetCard from a card object, a path to a TOML card, or a registered dataset name."""
    if isinstance(name_or_card, DatasetCard):
        return name_or_card
    s = str(name_or_card)
    if isinstance(name_or_card, Path) or s.endswith(".toml") or Path(s).is_file():
        return load_card(s)
    from leanrec.plugins import builtin_dataset, registry

    return builtin_dataset(s) or registry().dataset(s)


def resolve_options(card: DatasetCard, overrides: dict[str, Any] | None
                    ) -> tuple[PrepConfig, synthetic.SyntheticConfig | None]:
    """Preprocessing config (defaults < card < overrides) and, for synthetic cards, the generator config."""
    overrides = dict(overrides or {})
    check_keys(overrides.keys(), [*PrepConfig.__dataclass_fields__, "synthetic"], "dataset override")
    default_split = "fixed" if "train" in card.source.files else "random"
    split = {"split": card.split.get("method", default_split)}
    if "ratios" in card.split:
        split["ratios"] = card.split["ratios"]
    where = str(card.path or card.name)
    cfg = PrepConfig.from_options(card.preprocess, where=f"{where} [preprocess]",
                                  base=PrepConfig.from_options(split, where=f"{where} [split]"))
    synth_over = overrides.pop("synthetic", None)
    cfg = PrepConfig.from_options(overrides, where="dataset override", base=cfg)
    if card.source.format != "synthetic":
        if synth_over:
            raise ConfigError(f"override 'synthetic' only applies to synthetic datasets, not {card.name!r}")
        return cfg, None
    scfg = synthetic.SyntheticConfig.from_options(card.synthetic, where=f"{where} [synthetic]")
    if synth_over:
        if not isinstance(synth_over, dict):
            raise ConfigError("override 'synthetic' must be a table of generator options")
        scfg = synthetic.SyntheticConfig.from_options(synth_over, where="synthetic override", base=scfg)
    return cfg, scfg


def source_files(card: DatasetCard) -> list[Path]:
    """Every raw file the card reads (main files and joined attribute files)."""
    return [card.resolve(f) for f in card.source.files.values()] + [card.resolve(j.file) for j in card.source.join]


def cache_dir_for(card: DatasetCard, cfg: PrepConfig, scfg: synthetic.SyntheticConfig | None, seed: int,
                  cache_dir: str | Path | None = None) -> tuple[str, Path]:
    """(cache key, cache directory) for these inputs."""
    key = cache.cache_key({"card": card.identity(), "prep": asdict(cfg),
                           "synthetic": asdict(scfg) if scfg else None, "seed": seed,
                           "sources": cache.fingerprint(source_files(card))})
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", card.name)
    return key, cache.cache_root(cache_dir) / "datasets" / f"{safe}-{key}"


def load_dataset(name_or_card: str | Path | DatasetCard, *, seed: int = 0, overrides: dict[str, Any] | None = None,
                 cache_dir: str | Path | None = None, progress: bool = True) -> EncodedDataset:
    """Prepare (or reuse from cache) and open an encoded dataset.

    `name_or_card`: a registered dataset name, a path to a TOML card, or a DatasetCard. `seed` fixes the
    split. `overrides`: PrepConfig keys (min_count, max_rows, numeric, n_buckets, cross_fields, dense, split,
    ratios) and, for synthetic data, {"synthetic": {...SyntheticConfig options}}.
    """
    card = resolve_card(name_or_card)
    cfg, scfg = resolve_options(card, overrides)
    key, path = cache_dir_for(card, cfg, scfg, seed, cache_dir)
    if not cache.is_complete(path):
        cache.write_atomic(path, lambda tmp: build(card, cfg, scfg, seed, key, tmp, progress=progress))
    return EncodedDataset(path)


# ---- building ------------------------------------------------------------------------------------------------
class _Stages:
    """A transient rich progress bar over preparation stages (silent when disabled or not on a terminal)."""

    def __init__(self, name: str, enabled: bool):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn(f"[bold]{name}[/bold] {{task.description}}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True),
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task("reading", total=4)

    def step(self, message: str, *, add_total: int = 0) -> None:
        if self.bar is not None:
            task = self.bar.tasks[0]
            self.bar.update(self.task, advance=1, description=message, total=task.total + add_total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def build(card: DatasetCard, cfg: PrepConfig, scfg: synthetic.SyntheticConfig | None, seed: int, key: str,
          out: Path, *, progress: bool = True) -> None:
    """Read, split, encode and write one dataset into directory `out` (see leanrec.data.cache for the layout).

    Streaming, in bounded memory for any source size: [time split only: pass 0 reads the time column], pass 1
    streams the batches to validate labels, assign splits (a seeded hash of the row index) and count train
    frequencies; vocabularies are built; pass 2 streams again and encodes every batch straight into
    preallocated memory-mapped .npy files; cross fields (if any) are then counted and encoded chunk by chunk
    from those memory maps. Small sources (< REPLAY_BYTES) are parsed once and replayed between passes.
    """
    t0 = time.perf_counter()
    stages = _Stages(card.name, progress)
    try:
        ground_truth = None
        if scfg is not None:
            table, ground_truth = synthetic.generate(scfg)
            table = table if cfg.max_rows is None else table.slice(0, cfg.max_rows)
            labels = [LabelSpec(n) for n in synthetic.label_names(scfg)]
            specs = [FieldSpec(n) for n in table.column_names if n not in synthetic.LABEL_NAMES]
            chunks = [RawTable(b, start=s) for b, s in _slices(table, readers.BATCH_ROWS)]
            batches = lambda: iter(chunks)  # noqa: E731
        else:
            labels = list(card.labels)
            specs = list(card.fields) or None
            batches = _replayable(card, cfg)
        label_names = [lab.name for lab in labels]
        where = str(card.path or card.name)
        if cfg.split == "fixed" and not {"train", "test"} <= set(card.source.files):
            raise ConfigError("split = \"fixed\" needs a card with files = { train = ..., test = ... }")
        has_valid = "valid" in card.source.files

        time_codes = time_dest = None
        if cfg.split == "time":  # pass 0: every timestamp (16 bytes per row held)
            if not card.time:
                raise ConfigError("split = \"time\" needs a card naming a `time` column")
            time_codes, time_dest = time_split(np.concatenate([to_time(b, card.time) for b in batches()]), cfg)

        def assign(raw: RawTable) -> np.ndarray:
            rows = np.arange(raw.start, raw.start + raw.table.num_rows)
            if time_codes is not None:
                return time_codes[rows]
            return split_codes(rows, raw.part, cfg, seed, has_valid=has_valid)

        # pass 1: labels, split sizes and positives, train frequencies
        stages.step("counting", add_total=1 if cfg.cross_fields else 0)
        sizes, positives, encoders = np.zeros(3, np.int64), np.zeros((3, len(labels)), np.int64), None
        for raw in batches():
            if specs is None:
                specs = _infer_fields(raw, card)
            if encoders is None:
                encoders = [FieldEncoder(sp, cfg) for sp in specs]
            y = label_matrix(raw, labels)
            code = assign(raw)
            sizes += np.bincount(code, minlength=3)
            for k in range(3):
                positives[k] += y[code == k].sum(axis=0).astype(np.int64)
            train = code == TRAIN
            for enc in encoders:
                enc.observe(raw, train)
        check_classes(sizes, positives, label_names, where)
        vocabs = [enc.finish() for enc in encoders]
        names, kinds = [sp.name for sp in specs], [sp.kind for sp in specs]
        pairs = [(a, b) for a in range(len(specs)) for b in range(a + 1, len(specs))] if cfg.cross_fields else []
        numeric = [j for j, sp in enumerate(specs) if sp.kind == "numeric"] if cfg.dense else []

        # pass 2: encode into preallocated memory maps
        stages.step("encoding")
        n_f = len(specs) + len(pairs)
        check_disk_space(out, where, int(sizes.sum()), n_f, len(pairs), len(labels), len(numeric), bool(card.group))
        arrays = {s: {"X": _open(out, f"{s}_X", np.int32, (n, n_f)),
                      "y": _open(out, f"{s}_y", np.float32, (n, len(labels))),
                      "group": _open(out, f"{s}_group", np.int64, (n,)) if card.group else None,
                      "dense": _open(out, f"{s}_dense", np.float32, (n, len(numeric))) if numeric else None}
                  for s, n in zip(SPLITS, sizes.tolist())}
        group_col = None
        if card.group:
            spec = next((sp for sp in specs if sp.name == card.group), None)
            group_col, groups = (spec.source if spec else card.group), GroupIndexer()
        offsets = np.zeros(3, np.int64)
        for raw in batches():
            code = assign(raw)
            X = np.empty((raw.table.num_rows, n_f), dtype=np.int32)
            dense_cols = []
            for j, enc in enumerate(encoders):
                X[:, j], d = enc.encode(raw)
                if cfg.dense and d is not None:
                    dense_cols.append(d)
            cols = {"X": X, "y": label_matrix(raw, labels),
                    "group": groups.ids(raw.table[group_col]) if group_col else None,
                    "dense": np.stack(dense_cols, axis=1) if dense_cols else None}
            for k, s in enumerate(SPLITS):
                sel = np.flatnonzero(code == k)
                if time_dest is not None:
                    dest = time_dest[raw.start + sel]
                else:
                    dest = slice(int(offsets[k]), int(offsets[k]) + len(sel))
                    offsets[k] += len(sel)
                for name, values in cols.items():
                    if values is not None:
                        arrays[s][name][dest] = values[sel]
                        _release(arrays[s][name])

        # cross fields (i-Razor FG): counted on train codes, then encoded, chunk by chunk from the memory maps
        if pairs:
            stages.step("crossing")
            base = len(specs)
            sizes_b = [v.size for v in vocabs]
            counters = [ValueCounter() for _ in pairs]
            limit, seen = int(CROSS_MEMORY_SHARE * available_memory()), 0
            for chunk in _row_chunks(arrays["train"]["X"]):
                for c, (a, b) in zip(counters, pairs):
                    c.add(cross_tokens(chunk[:, a], chunk[:, b], sizes_b[b]))
                _release(arrays["train"]["X"])
                seen += len(chunk)
                held = sum(c.nbytes for c in counters)
                if held > limit:
                    raise ConfigError(
                        f"{where}: counting the {len(pairs)} cross fields (cross_fields = true) holds "
                        f"{_gb(held)} after {seen:,} of {int(sizes[TRAIN]):,} training rows, over "
                        f"{CROSS_MEMORY_SHARE:.0%} of the {_gb(available_memory() + held)} of memory available: "
                        "all pairwise crosses of high-cardinality fields do not fit; set max_rows, drop fields "
                        "from the card, or leave cross_fields off")
            cross_vocabs = [vocab_from_counts(*c.result(), cfg.min_count) for c in counters]
            for s in SPLITS:
                for chunk in _row_chunks(arrays[s]["X"]):
                    for p, (a, b) in enumerate(pairs):
                        chunk[:, base + p] = encode(cross_tokens(chunk[:, a], chunk[:, b], sizes_b[b]),
                                                    cross_vocabs[p])
                    _release(arrays[s]["X"])
            vocabs += cross_vocabs
            names += [f"{specs[a].name}*{specs[b].name}" for a, b in pairs]
            kinds += ["categorical"] * len(pairs)
        stages.step("writing")
        for per_split in arrays.values():
            for arr in per_split.values():
                if arr is not None:
                    arr.flush()
        del arrays
        _save_vocab(out, names, vocabs)
        fields = [FieldInfo(n, k, v.size, v.cardinality) for n, k, v in zip(names, kinds, vocabs)]
        cache.save_meta(out, {
            "name": card.name, "cache_key": key, "labels": label_names, "fields": [asdict(f) for f in fields],
            "group": card.group, "dense_fields": [specs[j].name for j in numeric], "ground_truth": ground_truth,
            "config": {"preprocess": asdict(cfg), "synthetic": asdict(scfg) if scfg else None, "seed": seed},
            "card": str(card.path) if card.path else None,
            "sources": cache.fingerprint(source_files(card)) if scfg is None else [],
            "build_seconds": round(time.perf_counter() - t0, 3),
        })
        stages.step("done")
    finally:
        stages.close()


def _slices(table: pa.Table, rows: int):
    """(slice, start row) pieces of an in-memory table."""
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows), start


def _replayable(card: DatasetCard, cfg: PrepConfig):
    """A function returning a fresh iterator over the source batches; small sources are parsed only once."""
    if sum(p.stat().st_size for p in source_files(card) if p.is_file()) < REPLAY_BYTES:
        held: list[RawTable] = []

        def replay():
            if not held:
                held.extend(iter_source(card, max_rows=cfg.max_rows))
            return iter(held)
        return replay
    return lambda: iter_source(card, max_rows=cfg.max_rows)


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.1f} MB"


def available_memory() -> int:
    """Bytes of memory available to new allocations (Linux MemAvailable; else physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def cache_bytes(rows: int, n_fields: int, n_labels: int, n_dense: int, grouped: bool) -> int:
    """Bytes of the encoded arrays of `rows` rows (int32 codes, float32 labels and dense values, int64 groups)."""
    return rows * (4 * n_fields + 4 * n_labels + 4 * n_dense + (8 if grouped else 0))


def check_disk_space(out: Path, where: str, rows: int, n_fields: int, n_cross: int, n_labels: int, n_dense: int,
                     grouped: bool) -> None:
    """Refuse, before writing anything, a cache that would not fit on its disk (a memory map written past the
    end of a full disk kills the process with SIGBUS instead of raising)."""
    need = cache_bytes(rows, n_fields, n_labels, n_dense, grouped)
    free = shutil.disk_usage(out).free
    if need > DISK_HEADROOM * free:
        crosses = (f", {n_cross:,} of them cross fields (cross_fields = true: leave it off or set max_rows)"
                   if n_cross else "")
        raise ConfigError(f"{where}: the encoded cache needs {_gb(need)} ({rows:,} rows x {n_fields:,} fields"
                          f"{crosses}) but {out.parent} has {_gb(free)} free; free space there or point "
                          "LEANREC_CACHE_DIR at a larger disk")


def _open(out: Path, name: str, dtype, shape: tuple[int, ...]) -> np.ndarray:
    """A preallocated .npy file opened as a writable memory map."""
    return np.lib.format.open_memmap(out / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)


def _release(arr: np.memmap) -> None:
    """Write a memory map's dirty pages to its file and drop them from this process (they stay in the page
    cache), so resident memory stays bounded by one batch however large the output grows."""
    arr.flush()
    mm = getattr(arr, "_mmap", None)
    if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


def _drop_pages(arr: np.ndarray) -> None:
    """Unmap the pages a read-only memory map has touched (they stay in the page cache), so reading a large
    cached split end to end does not grow this process's resident memory to the file's size."""
    mm = getattr(arr, "_mmap", None)
    if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


def _row_chunks(X: np.ndarray):
    for a in range(0, len(X), CROSS_CHUNK_ROWS):
        yield X[a:a + CROSS_CHUNK_ROWS]


def _infer_fields(raw: RawTable, card: DatasetCard) -> list[FieldSpec]:
    """Every column except labels, the time column and `drop`, as categorical fields."""
    skip = {lab.source for lab in card.labels} | set(card.source.drop) | ({card.time} if card.time else set())
    return [FieldSpec(c) for c in raw.table.column_names if c not in skip]


def _save_vocab(out: Path, names: list[str], vocabs: list) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parts = []
    for name, v in zip(names, vocabs):
        n = len(v.values)
        parts.append(pa.table({
            "field": pa.repeat(pa.scalar(name, pa.string()), n),
            "code": pa.array(np.arange(2, 2 + n, dtype=np.int32)),
            "value": pc.cast(v.values, pa.string()),
            "count": pa.array(v.counts.astype(np.int64)),
        }))
    pq.write_table(pa.concat_tables(parts), out / "vocab.parquet")
