"""Downloader for datasets with public URLs: streamed, sha256-verified, atomic (temp file + os.replace)."""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable

from leanrec.data.cards import DatasetCard, FetchSpec
from leanrec.errors import DataError, LeanrecError

CHUNK = 1 << 20


def fetch(card: DatasetCard, *, force: bool = False, log: Callable[[str], None] = print,
          timeout: float = 60.0) -> list[Path]:
    """Download every [[fetch]] entry of `card`; returns the paths written (or already present)."""
    if not card.fetch:
        raise LeanrecError(f"dataset {card.name!r} has no public download URL in its card; obtain the files "
                           f"yourself ({card.homepage or 'see the card'}) and place them under the data root")
    out = []
    for spec in card.fetch:
        target = card.resolve(spec.path)
        if target.exists() and not force:
            log(f"{target} exists; skipping (use --force to download again)")
        else:
            download(spec, target, log=log, timeout=timeout)
        out.append(target)
    return out


def download(spec: FetchSpec, target: Path, *, log: Callable[[str], None] = print, timeout: float = 60.0) -> Path:
    """Download `spec.url`, verify its sha256, then place it (or its extracted archive) at `target` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".fetch-{target.name}-") as tmp:
        part = Path(tmp) / "download"
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(spec.url, timeout=timeout) as resp, open(part, "wb") as fh:
                while chunk := resp.read(CHUNK):
                    digest.update(chunk)
                    fh.write(chunk)
        except OSError as exc:
            raise DataError(f"download failed: {exc}", path=spec.url) from None
        got = digest.hexdigest()
        if spec.sha256 is None:
            log(f"warning: the card gives no sha256 for {spec.url}; downloaded file has sha256 {got}")
        elif got.lower() != spec.sha256.lower():
            raise DataError(f"sha256 mismatch: expected {spec.sha256}, got {got}; nothing was written",
                            path=spec.url)
        if spec.extract:
            staged = Path(tmp) / "extracted"
            _extract(part, staged, spec.extract, spec.strip)
        else:
            staged = part
        # the target is only ever absent or complete: an old copy is moved aside (same folder, so a rename),
        # the new one renamed into place, and the old one deleted with the temporary folder (or put back)
        previous = Path(tmp) / "previous"
        if target.exists():
            os.replace(target, previous)
        try:
            os.replace(staged, target)
        except OSError:
            if previous.exists():
                os.replace(previous, target)
            raise
    log(f"fetched {spec.url} -> {target}")
    return target


def _extract(archive: Path, dest: Path, kind: str, strip: int) -> None:
    """Extract a zip or tar archive into `dest`, dropping `strip` leading path components; refuses escapes."""
    dest.mkdir()
    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            members = [(m.filename, m) for m in zf.infolist() if not m.is_dir()]
            for name, m in members:
                out = _member_path(dest, name, strip)
                if out is not None:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(m) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
    elif kind == "tar":
        with tarfile.open(archive) as tf:
            for m in tf.getmembers():
                if m.isfile():
                    out = _member_path(dest, m.name, strip)
                    if out is not None:
                        out.parent.mkdir(parents=True, exist_ok=True)
                        with tf.extractfile(m) as src, open(out, "wb") as dst:  # type: ignore[union-attr]
                            shutil.copyfileobj(src, dst)
    else:
        raise DataError(f"unknown archive kind {kind!r} (use \"zip\" or \"tar\")")


def _member_path(dest: Path, name: str, strip: int) -> Path | None:
    parts = Path(name).parts[strip:]
    if not parts:
        return None
    out = (dest / Path(*parts)).resolve()
    if dest.resolve() not in out.parents:
        raise DataError(f"archive member {name!r} would be written outside the target folder")
    return out
