"""load_dataset: card -> (cached) encoded dataset of memory-mapped int32 codes and float32 labels.

Pipeline (each step in its own module): cards (what) -> readers or synthetic (raw rows) -> preprocess (split,
labels, vocabularies from train, codes) -> cache (atomic, keyed by everything that changes the result).
"""
from __future__ import annotations

import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from leanrec.data import cache, synthetic
from leanrec.data.cards import DatasetCard, FieldSpec, LabelSpec, load_card
from leanrec.data.preprocess import (PrepConfig, check_classes, encode_fields, group_ids, label_matrix,
                                     split_indices)
from leanrec.data.readers import RawTable, read_source, to_float
from leanrec.errors import ConfigError, UnknownNameError, check_keys

SPLITS = ("train", "valid", "test")


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


class EncodedDataset:
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
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def valid(self) -> Split:
        return self.splits["valid"]

    @property
    def test(self) -> Split:
        return self.splits["test"]

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
    from leanrec.plugins import registry

    return registry().dataset(s)


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
    """Read, split, encode and write one dataset into directory `out` (see leanrec.data.cache for the layout)."""
    t0 = time.perf_counter()
    stages = _Stages(card.name, progress)
    try:
        ground_truth = None
        if scfg is not None:
            table, ground_truth = synthetic.generate(scfg)
            raw = RawTable(table if cfg.max_rows is None else table.slice(0, cfg.max_rows))
            labels = [LabelSpec(n) for n in synthetic.label_names(scfg)]
            specs = [FieldSpec(n) for n in table.column_names if n not in synthetic.LABEL_NAMES]
        else:
            raw = read_source(card, max_rows=cfg.max_rows)
            labels = list(card.labels)
            specs = list(card.fields) or _infer_fields(raw, card)
        stages.step("splitting", add_total=len(specs))
        y = label_matrix(raw, labels)
        time_col = to_float(raw, card.time) if cfg.split == "time" and card.time else None
        splits = split_indices(raw.table.num_rows, cfg, seed, parts=raw.parts(), time=time_col)
        label_names = [lab.name for lab in labels]
        check_classes(y, splits, label_names, str(card.path or card.name))
        enc = encode_fields(raw, specs, cfg, splits["train"], on_field=lambda f: stages.step(f"encoding {f}"))
        group = None
        if card.group:
            spec = next((s for s in specs if s.name == card.group), None)
            group = group_ids(raw, spec.source if spec else card.group)
        stages.step("writing")
        for s, idx in splits.items():
            cache.save_array(out, f"{s}_X", enc.codes[idx])
            cache.save_array(out, f"{s}_y", y[idx])
            if group is not None:
                cache.save_array(out, f"{s}_group", group[idx])
            if enc.dense is not None:
                cache.save_array(out, f"{s}_dense", enc.dense[idx])
        _save_vocab(out, enc)
        fields = [FieldInfo(n, k, v.size, v.cardinality) for n, k, v in zip(enc.names, enc.kinds, enc.vocabs)]
        cache.save_meta(out, {
            "name": card.name, "cache_key": key, "labels": label_names, "fields": [asdict(f) for f in fields],
            "group": card.group, "dense_fields": enc.dense_names, "ground_truth": ground_truth,
            "config": {"preprocess": asdict(cfg), "synthetic": asdict(scfg) if scfg else None, "seed": seed},
            "card": str(card.path) if card.path else None,
            "sources": cache.fingerprint(source_files(card)) if scfg is None else [],
            "build_seconds": round(time.perf_counter() - t0, 3),
        })
        stages.step("done")
    finally:
        stages.close()


def _infer_fields(raw: RawTable, card: DatasetCard) -> list[FieldSpec]:
    """Every column except labels, the time column and `drop`, as categorical fields."""
    skip = {lab.source for lab in card.labels} | set(card.source.drop) | ({card.time} if card.time else set())
    return [FieldSpec(c) for c in raw.table.column_names if c not in skip]


def _save_vocab(out: Path, enc) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parts = []
    for name, v in zip(enc.names, enc.vocabs):
        n = len(v.values)
        parts.append(pa.table({
            "field": pa.repeat(pa.scalar(name, pa.string()), n),
            "code": pa.array(np.arange(2, 2 + n, dtype=np.int32)),
            "value": pc.cast(v.values, pa.string()),
            "count": pa.array(v.counts.astype(np.int64)),
        }))
    pq.write_table(pa.concat_tables(parts), out / "vocab.parquet")
