"""Run records: one JSON file per (dataset, method variant, seed), written atomically, with a schema version."""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

from leanrec.errors import LeanrecError

SCHEMA_VERSION = 1


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


def variant_name(method: str, overrides: dict[str, Any]) -> str:
    """'dnn' for paper defaults, 'dnn[hidden=[64, 64]]' when overridden (stable, human-readable)."""
    if not overrides:
        return method
    inner = ",".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in sorted(overrides.items()))
    return f"{method}[{inner}]"


def file_slug(name: str) -> str:
    """A file-name-safe form of a dataset or variant label ('frappe[cross_fields=true]' -> 'frappe_cross_fields_true')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def record_path(results_dir: Path, dataset: str, variant: str, seed: int) -> Path:
    safe = variant if len(variant) <= 80 and "/" not in variant else f"{variant.split('[')[0]}-{short_hash(variant)}"
    return Path(results_dir) / "runs" / file_slug(dataset) / f"{safe}__seed{seed}.json"


def write_record(path: Path, record: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise LeanrecError(f"{path}: not a valid run record ({exc}); delete it to rerun that run") from None
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise LeanrecError(
            f"{path}: run record schema version {version!r}, this leanrec writes version {SCHEMA_VERSION}. "
            "Use a fresh --results-dir (or move the old records away); mixing schemas would corrupt the leaderboard."
        )
    return record


def iter_records(results_dir: Path) -> Iterator[dict[str, Any]]:
    """Every record under results_dir/runs (sorted for reproducible leaderboards)."""
    for path in sorted((Path(results_dir) / "runs").glob("*/*.json")):
        yield read_record(path)
