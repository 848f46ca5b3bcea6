"""The runner: a grid of datasets x methods x seeds, one atomic JSON record per run, resumable."""
from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import functools
import json
import os
import platform
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

import leanrec
from leanrec import distributed
from leanrec.batches import return_freed_memory
from leanrec.context import RunContext, flush_denormals, pick_device, prepare_fit, restoring_denormals
from leanrec.errors import ConfigError
from leanrec.measure import measure, quality
from leanrec.methods import Method, canonical_overrides, check_fit_result
from leanrec.plugins import Registry, registry
from leanrec.protocol import PROTOCOL_VERSION, Budget
from leanrec.records import (SCHEMA_VERSION, atomic_write_text, identity_changes, identity_hash, read_record,
                             record_path, run_identity, supersede, variant_name, write_record)
from leanrec.trainer import TrainingDiverged


@dataclass
class MethodSpec:
    """A method to run: its registered name and config overrides (validated before the grid starts)."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def variant(self) -> str:
        return variant_name(self.name, self.overrides)

    def canonical(self, reg: Registry | None = None) -> "MethodSpec":
        """The same method under its registered name with canonical overrides (coerced, defaults dropped), so
        `-m DNN:lr=1e-2` and `-m dnn:lr=0.01` are one variant. Unknown names and bad values raise."""
        cls = (reg or registry()).method(self.name)
        return MethodSpec(cls.name, canonical_overrides(cls.Config, self.overrides))


def parse_method(text: str) -> MethodSpec:
    """'dnn' or 'dnn:hidden=[64,64],lr=0.01' (values parsed as JSON where possible)."""
    name, _, rest = text.partition(":")
    overrides: dict[str, Any] = {}
    for item in filter(None, _split_top_level(rest)):
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"method spec {text!r}: expected key=value, got {item!r}")
        overrides[key.strip()] = value.strip()
    return MethodSpec(name.strip(), overrides)


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets (so hidden=[64,64] stays whole)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[{("
        depth -= ch in "]})"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


@functools.lru_cache(maxsize=1)
def cpu_model() -> str | None:
    """The CPU's model name (/proc/cpuinfo on Linux, else what `platform` says), None when unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment() -> dict[str, Any]:
    """Versions, git commit and hardware, stored in every record. ``cpu_capability`` is the instruction set
    torch's CPU kernels dispatch to (e.g. AVX2, AVX512): runs on CPUs of different capability take different
    float paths, so a record reproduces bit for bit only on the same kind (docs/protocol.md)."""
    from leanrec.provenance import leanrec_commit

    commit = leanrec_commit()  # only leanrec's own checkout: never the commit of a repo that holds the venv
    return {
        "leanrec": leanrec.__version__, "git_commit": commit, "python": platform.python_version(),
        "torch": torch.__version__, "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _plugin_version(reg: Registry, method: str) -> dict[str, Any]:
    plugin = reg.methods[method.lower()].plugin
    try:
        version = md.version(plugin)
    except md.PackageNotFoundError:
        version = None
    return {"plugin": plugin, "version": version}


def dataset_label(name: str, overrides: dict[str, Any]) -> str:
    """'avazu' or 'avazu[cross_fields=true]': nested override keys are flattened to their leaf names."""
    flat: dict[str, Any] = {}

    def walk(d: dict[str, Any]) -> None:
        for k, v in d.items():
            walk(v) if isinstance(v, dict) else flat.__setitem__(k, v)

    walk(overrides)
    return variant_name(name, flat)


def _dataset_name(reg: Registry, dataset: str) -> str:
    """The card name of a registered dataset or of a card file (unknown names fail with suggestions)."""
    if Path(dataset).is_file():
        from leanrec.data import load_card

        return load_card(dataset).name
    return reg.dataset(dataset).name


def _identity(data: Any, dataset: str, method: str, config: dict[str, Any], budget: Budget, seed: int,
              memory_budget: int | None) -> dict[str, Any]:
    """The run identity of one (data, method config, budget, seed) under this process's execution."""
    execution: dict[str, Any] = {}
    world = distributed.rank_world()[1]
    if world > 1:
        execution["world_size"] = world
    if memory_budget is not None:
        execution["memory_budget_bytes"] = memory_budget
    return run_identity(data=data.fingerprint(), dataset=dataset, method=method, config=config,
                        budget=budget.to_dict(), seed=seed, protocol=PROTOCOL_VERSION, execution=execution)


@restoring_denormals()   # fits flush denormals; the caller gets its own float state back
def run_one(method_cls: type[Method], spec: MethodSpec, data, seed: int, *, budget: Budget,
            device: torch.device, progress: bool, reg: Registry, dataset: str | None = None,
            data_overrides: dict[str, Any] | None = None, memory_budget: int | None = None,
            record_file: Path | None = None) -> dict[str, Any]:
    """Fit one method on one (dataset, seed) and measure it; failures become records with a traceback.

    `spec` must be canonical (:meth:`MethodSpec.canonical`); `dataset` is the label the record files under
    (default: the data's name). Splits over `memory_budget` bytes are streamed from the cache. Under
    torch.distributed (:mod:`leanrec.distributed`) every rank fits, rank 0 measures; a failure on any rank
    other than a divergence (which all ranks see at the same step) raises :class:`distributed.RunAborted`
    after the record is made, since the ranks can no longer run collectives together."""
    method = method_cls.from_overrides(spec.overrides)
    identity = _identity(data, dataset or data.name, spec.name, method.config.to_dict(), budget, seed, memory_budget)
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "protocol": PROTOCOL_VERSION, "identity": identity,
        "identity_hash": identity_hash(identity), "dataset": dataset or data.name,
        "data_overrides": data_overrides or {}, "dataset_cache_key": data.cache_key,
        "method": spec.name, "variant": spec.variant, "overrides": spec.overrides, "seed": seed,
        "family": method_cls.family, "is_baseline": method_cls.is_baseline, "paper": method_cls.paper,
        "budget": budget.to_dict(), "config": method.config.to_dict(), "plugin": _plugin_version(reg, spec.name),
        # where and how it trained (not part of the identity)
        "environment": {**environment(), "device": str(device), "flush_denormal": flush_denormals()},
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    ctx = RunContext(device=device, seed=seed, budget=budget, progress=progress, memory_budget_bytes=memory_budget)
    rank, world = distributed.rank_world()
    record["distributed"] = distributed.info()
    inflight = distributed.inflight_path(record_file) if record_file is not None and world > 1 else None
    if inflight is not None and rank == 0:   # for the --nproc launcher, should rank 0 die mid-run
        atomic_write_text(inflight, json.dumps({"path": str(record_file), "record": record}, default=str))
    start = time.perf_counter()
    try:
        upload = time.perf_counter()
        for split in ("train", "valid"):   # on the device before fit, so no method's first stage pays for it
            ctx.tensors(data, split)
        record["upload_time"] = time.perf_counter() - upload
        start = time.perf_counter()
        prepare_fit(seed)
        result = method.fit(data, ctx)
        result = check_fit_result(result, data, spec.name, family=method_cls.family)
        record["stage_times"] = dict(ctx.stage_times)
        record["total_time"] = time.perf_counter() - start
        record["training"] = {k: r.summary() for k, r in ctx.train_results.items()}
        record["selection"] = {"fields": result.selected_fields, "field_dims": result.field_dims,
                               "field_scores": result.field_scores}
        record["extra"] = result.extra
        if rank == 0:
            test = ctx.tensors(data, "test")
            record["metrics"] = measure(result.model.to(device), test, data.test.group)
            if result.companions:
                record["metrics"]["companions"] = {name: quality(m.to(device), test, data.test.group)
                                                   for name, m in result.companions.items()}
        record["status"] = "ok"
    except Exception as exc:  # the grid goes on; the record says what broke
        record["stage_times"] = dict(ctx.stage_times)
        record["training"] = {k: r.summary() for k, r in ctx.train_results.items()}
        record["status"] = "failed"
        record["error"] = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
        if world > 1 and not isinstance(exc, TrainingDiverged):
            record["error"] = distributed.agree_on_failure(exc, record["error"]["traceback"], record_file)
            raise distributed.RunAborted(record) from exc
    finally:
        record["memory"] = {"budget_bytes": memory_budget, "streamed_splits": ctx.streamed()}
        if world > 1:
            record["distributed"]["global_batch"] = {k: r.schedule.get("batch_size")
                                                     for k, r in ctx.train_results.items()}
    return record


Report = Callable[[dict[str, Any], str], None]


def run_grid(datasets: Sequence[str], methods: Sequence[MethodSpec], seeds: Sequence[int], results_dir: Path, *,
             budget: Budget | None = None, data_overrides: dict[str, Any] | None = None, device: str = "auto",
             rerun_failed: bool = True, progress: bool = True, report: Report | None = None,
             reg: Registry | None = None, memory_budget: int | None = None) -> list[dict[str, Any]]:
    """Run every (dataset, method, seed) under results_dir whose finished record is not the same run; return
    all their records.

    Names and configs are validated (and made canonical) before anything runs. A finished record is reused
    only when its run identity (:func:`leanrec.records.run_identity`) equals the one asked for; a record of
    a different run (other budget, config, data or protocol) is moved to ``superseded/`` and the run redone.
    Failed records are rerun unless rerun_failed is False. `report(record, event)` is called with event
    "reused", "ran" or "redo: <what changed>" (before the rerun, with the old record).
    """
    from leanrec.data import load_dataset

    reg = reg or registry()
    budget = budget or Budget()
    methods = list({m.variant: m for m in (m.canonical(reg) for m in methods)}.values())  # same variant runs once
    classes = {m.name: reg.method(m.name) for m in methods}
    # Records of differently preprocessed data (e.g. FG cross fields) must not overwrite each other.
    names = {d: dataset_label(_dataset_name(reg, d), data_overrides or {}) for d in datasets}
    dev = pick_device(device)
    lead = distributed.rank_world()[0] == 0   # the rank that reads and writes records
    if memory_budget is not None:
        return_freed_memory()
    records = []
    # Methods outer, seeds inner: an interrupted grid leaves complete seed sets for the methods it reached.
    for dataset in datasets:
        loaded: dict[int, Any] = {}  # prepared splits per seed (cheap: memory-mapped from the cache)
        for m in methods:
            cls = classes[m.name]
            config = cls.from_overrides(m.overrides).config.to_dict()
            for seed in seeds:
                if seed not in loaded:   # under torch.distributed rank 0 prepares the cache first
                    loaded[seed] = distributed.rank0_first(load_dataset, dataset, seed=seed, overrides=data_overrides,
                                                           progress=progress)
                path = record_path(results_dir, names[dataset], m.variant, seed)
                identity = _identity(loaded[seed], names[dataset], m.name, config, budget, seed, memory_budget)
                reuse = False
                if path.exists() and lead:   # under torch.distributed rank 0 decides for every rank
                    old = read_record(path)
                    if old.get("identity_hash") == identity_hash(identity):
                        if old["status"] == "ok" or not rerun_failed:
                            records.append(old)
                            if report:
                                report(old, "reused")
                            reuse = True
                    else:
                        why = "; ".join(identity_changes(old.get("identity") or {}, identity)) or "identity changed"
                        moved = supersede(results_dir, path)
                        if report:
                            report(old, f"redo: {why} (old record kept in {moved.parent.parent.name}/)")
                if distributed.broadcast_object(reuse):
                    continue
                try:
                    rec = run_one(cls, m, loaded[seed], seed, budget=budget, device=dev, progress=progress, reg=reg,
                                  dataset=names[dataset], data_overrides=data_overrides, memory_budget=memory_budget,
                                  record_file=path)
                except distributed.RunAborted as abort:   # a rank failed: every rank stops here
                    if lead:
                        write_record(path, abort.record)
                        distributed.clear_inflight(path)
                        if report:
                            report(abort.record, "ran")
                    raise
                if lead:
                    write_record(path, rec)
                    distributed.clear_inflight(path)
                    records.append(rec)
                    if report:
                        report(rec, "ran")
    return records
