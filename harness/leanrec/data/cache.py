"""Encoded cache: one directory per (source fingerprint, card, preprocessing config, seed), written atomically.

Layout of ``<cache root>/datasets/<name>-<key>/``::

    meta.json                 fields, labels, split sizes, positive rates, ground truth, config, key
    {train,valid,test}_X.npy  int32 (N, F) codes, C order (memory-mapped on load)
    {split}_y.npy             float32 (N, L) labels
    {split}_group.npy         int64 (N,) group ids        (when the card names a group field)
    {split}_dense.npy         float32 (N, Fn) raw numerics (when preprocess dense = true)
    vocab.parquet             field, code, value (as string), count: every vocabulary

The directory is built under a temporary name beside its final place and renamed with os.replace, so a
reader sees either nothing or a complete cache; on any error the temporary directory is removed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

ENV_CACHE_DIR = "LEANREC_CACHE_DIR"
CACHE_VERSION = 1  # bump when the on-disk layout or the encoding rules change


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """`cache_dir`, else $LEANREC_CACHE_DIR, else ~/.cache/leanrec."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_CACHE_DIR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "leanrec"


def fingerprint(paths: list[Path]) -> list[list[Any]]:
    """Cheap identity of source files: (absolute path, size, mtime in ns). Missing files fingerprint as None."""
    out = []
    for p in paths:
        try:
            st = Path(p).stat()
            out.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
        except FileNotFoundError:
            out.append([str(p), None, None])
    return out


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the data-layer modules that decide the encoded result, so a code change invalidates caches."""
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in ("readers.py", "preprocess.py", "synthetic.py", "dataset.py", "cache.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:12]


def cache_key(payload: dict[str, Any]) -> str:
    """A stable hash of a JSON-serialisable payload (sorted keys)."""
    blob = json.dumps({"version": CACHE_VERSION, "code": code_version(), **payload}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def is_complete(path: Path) -> bool:
    return (path / "meta.json").is_file()


def write_atomic(final: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp_dir)` then rename tmp_dir to `final`; never leaves a partial directory behind.

    If another process created `final` meanwhile, its copy is kept and ours discarded.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        build(tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not is_complete(final):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def save_array(directory: Path, name: str, array: np.ndarray) -> None:
    np.save(directory / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)


def load_array(directory: Path, name: str) -> np.ndarray | None:
    """A memory-mapped, read-only array, or None if it was not saved."""
    p = directory / f"{name}.npy"
    return np.load(p, mmap_mode="r", allow_pickle=False) if p.exists() else None


def save_meta(directory: Path, meta: dict[str, Any]) -> None:
    (directory / "meta.json").write_text(json.dumps(meta, indent=1, default=str), encoding="utf8")


def load_meta(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "meta.json").read_text(encoding="utf8"))
