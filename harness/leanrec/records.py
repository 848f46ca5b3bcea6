"""Run records: one JSON file per (dataset, method variant, seed), written atomically, with a schema version.

Every record carries its run identity (:func:`run_identity`): the encoded data's fingerprint, the method's
canonical name and fully resolved config, the budget, the seed and the protocol version. A finished record
is reused only when the identity of the run asked for is the same; otherwise the run is redone and the old
record moved to ``<results>/superseded/`` (never mixed into a leaderboard).

Schema history: version 1 had no identity (records were matched by file name alone); version 2 adds
``identity``, ``identity_hash`` and ``protocol``. Version-1 records are read as version 2 with the identity
they had (protocol 1, data named by the cache key they stored), so they are kept, ranked only among
themselves, and redone when asked for under the current protocol."""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

from leanrec.errors import LeanrecError

SCHEMA_VERSION = 2


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory and rename, so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def short_hash(obj: Any, n: int = 8) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def canonical_json(obj: Any) -> str:
    """One text per value: sorted keys, no spaces (so [64,64] and [64, 64] are the same)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def variant_name(method: str, overrides: dict[str, Any]) -> str:
    """'dnn' for paper defaults, 'dnn[hidden=[64,64],lr=0.01]' when overridden (stable, human-readable).

    Pass canonical overrides (:meth:`leanrec.runner.MethodSpec.canonical`): values coerced to the config's
    types, defaults dropped, so equal configs get equal names."""
    if not overrides:
        return method
    inner = ",".join(f"{k}={v if isinstance(v, str) else canonical_json(v)}" for k, v in sorted(overrides.items()))
    return f"{method}[{inner}]"


def run_identity(*, data: str, dataset: str, method: str, config: dict[str, Any], budget: dict[str, Any],
                 seed: int, protocol: int, execution: dict[str, Any] | None = None) -> dict[str, Any]:
    """What makes two runs the same run: the encoded data (its fingerprint; card content, data overrides and
    source files all change it), the dataset label, the canonical method name, the fully resolved config,
    the budget, the seed and the training protocol version; `execution` ({"world_size": N} under torchrun,
    {"memory_budget_bytes": B} when splits may stream) changes the batch order, so it is part of it too."""
    identity = {"data": data, "dataset": dataset, "method": method, "config": json.loads(canonical_json(config)),
                "budget": dict(sorted(budget.items())), "seed": seed, "protocol": protocol}
    if execution:   # only when it departs from one process holding every split (so such runs keep their identity)
        identity["execution"] = dict(sorted(execution.items()))
    return identity


def identity_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]


def identity_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two identities ('budget: max_epochs 1 -> None', ...)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            parts = [f"{k} {a.get(k, '-')!r} -> {b.get(k, '-')!r}" for k in sorted(set(a) | set(b))
                     if a.get(k, "-") != b.get(k, "-")]
            out.append(f"{key}: " + ", ".join(parts))
        elif key == "data":
            out.append("data: the encoded dataset changed (card, overrides or source files)")
        else:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def _parse_override(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def migrate_v1(record: dict[str, Any]) -> dict[str, Any]:
    """A version-1 record as version 2: canonical overrides/variant and the identity it ran under (protocol 1,
    its data named by the cache key it stored, its budget as recorded: max_epochs only, no step floor)."""
    rec = dict(record)
    overrides = {k: _parse_override(v) for k, v in (rec.get("overrides") or {}).items()}
    rec["overrides"] = overrides
    rec["variant"] = variant_name(rec["method"], overrides)
    budget = {"max_epochs": (rec.get("budget") or {}).get("max_epochs"), "max_steps": None, "min_steps": 0,
              "eval_every": None}
    rec["budget"] = budget
    rec["protocol"] = 1
    rec["identity"] = run_identity(data=f"cache-key:{rec.get('dataset_cache_key')}", dataset=rec["dataset"],
                                   method=rec["method"], config=rec.get("config") or {"overrides": overrides},
                                   budget=budget, seed=rec["seed"], protocol=1)
    rec["identity_hash"] = identity_hash(rec["identity"])
    extra = rec.get("extra") or {}
    if isinstance(extra.get("region_probs"), dict) and extra["region_probs"] and "search" not in extra:
        from leanrec.selection import search_diagnostics   # searches recorded before their diagnostics were

        rec["extra"] = {**extra, "search": search_diagnostics(list(extra["region_probs"].values()))}
    rec["schema_version"] = SCHEMA_VERSION
    return rec


def file_slug(name: str) -> str:
    """A file-name-safe form of a dataset or variant label ('frappe[cross_fields=true]' -> 'frappe_cross_fields_true')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def record_path(results_dir: Path, dataset: str, variant: str, seed: int) -> Path:
    safe = variant if len(variant) <= 80 and "/" not in variant else f"{variant.split('[')[0]}-{short_hash(variant)}"
    return Path(results_dir) / "runs" / file_slug(dataset) / f"{safe}__seed{seed}.json"


def write_record(path: Path, record: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def read_record(path: Path) -> dict[str, Any]:
    """A record (version-1 records are migrated in memory, see :func:`migrate_v1`); unreadable or newer
    records are refused with what to do."""
    try:
        record = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LeanrecError(f"{path}: not a valid run record ({exc}); delete it to rerun that run") from None
    version = record.get("schema_version")
    if version == 1:
        return migrate_v1(record)
    if version != SCHEMA_VERSION:
        raise LeanrecError(
            f"{path}: run record schema version {version!r}, this leanrec writes version {SCHEMA_VERSION}. "
            "Use a fresh --results-dir (or move the old records away); mixing schemas would corrupt the leaderboard."
        )
    return record


def supersede(results_dir: Path, path: Path) -> Path:
    """Move a record that no longer matches its run aside, to <results>/superseded/<dataset>/<name>.<n>.json."""
    dest_dir = Path(results_dir) / "superseded" / Path(path).parent.name
    dest_dir.mkdir(parents=True, exist_ok=True)
    n = 1
    while (dest := dest_dir / f"{Path(path).stem}.{n}.json").exists():
        n += 1
    os.replace(path, dest)
    return dest


def iter_records(results_dir: Path) -> Iterator[dict[str, Any]]:
    """Every record under results_dir/runs (sorted for reproducible leaderboards). A record that disappears
    between listing and reading (another process just moved it to superseded/ to redo that run) is skipped."""
    for path in sorted((Path(results_dir) / "runs").glob("*/*.json")):
        try:
            yield read_record(path)
        except FileNotFoundError:
            continue
