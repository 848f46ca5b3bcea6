"""StatsReport: the result of `leanrec.stats.compute`, with atomic CSV / JSON / Parquet writers and a plot."""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Run ``write(tmp_path)`` then move the temp file over `path` (readers never see half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _clean(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v


@dataclass
class StatsReport:
    """Per-field statistics of one source.

    `fields`: one dict per field with keys name, kind ("categorical" | "numeric"), rows, nulls,
    distinct (exact; None when approximated), hll, entropy, mi_<label>, nmi_<label> (MI / H(label)),
    approx, and for numeric fields count, mean, variance, min, max, zero_share.
    `pairs`: one dict per requested pair (a, b, mi_ab, cmi_a_given_b_<label>, cmi_b_given_a_<label>).
    `top`: field -> [(value, count), ...] most frequent values.
    `findings`: dicts of `leanrec.stats.findings.Finding` once `findings.attach` has run (empty before).
    """

    labels: list[str]
    rows: int
    fields: list[dict[str, Any]]
    pairs: list[dict[str, Any]] = field(default_factory=list)
    top: dict[str, list[tuple[Any, int]]] = field(default_factory=dict)
    bad_rows: int = 0
    label_positives: dict[str, int] = field(default_factory=dict)
    source: str = ""
    findings: list[dict[str, Any]] = field(default_factory=list)

    def field(self, name: str) -> dict[str, Any]:
        for f in self.fields:
            if f["name"] == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "rows": self.rows, "bad_rows": self.bad_rows, "labels": self.labels,
            "label_positives": self.label_positives,
            "fields": [{k: _clean(v) for k, v in f.items()} for f in self.fields],
            "pairs": [{k: _clean(v) for k, v in p.items()} for p in self.pairs],
            "top": {k: [[str(v), c] for v, c in vals] for k, vals in self.top.items()},
            "findings": [{k: _clean(v) for k, v in x.items()} for x in self.findings],
        }

    def to_table(self) -> Any:
        """Per-field rows as a pyarrow Table (one column per statistic)."""
        import pyarrow as pa

        keys: list[str] = []
        for f in self.fields:
            keys += [k for k in f if k not in keys]
        return pa.table({k: [_clean(f.get(k)) for f in self.fields] for k in keys})

    def to_json(self, path: str | os.PathLike) -> Path:
        text = json.dumps(self.to_dict(), indent=2)
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    def to_csv(self, path: str | os.PathLike) -> Path:
        import pyarrow.csv as pacsv

        table = self.to_table()
        return atomic_write(path, lambda tmp: pacsv.write_csv(table, tmp))

    def to_parquet(self, path: str | os.PathLike) -> Path:
        import pyarrow.parquet as pq

        table = self.to_table()
        return atomic_write(path, lambda tmp: pq.write_table(table, tmp))

    def write(self, path: str | os.PathLike) -> Path:
        """Write by suffix: .csv, .json or .parquet."""
        suffix = Path(path).suffix.lower()
        writers = {".csv": self.to_csv, ".json": self.to_json, ".parquet": self.to_parquet}
        if suffix not in writers:
            from leanrec.errors import ConfigError

            raise ConfigError(f"unknown output format {suffix!r} for {path}; use .csv, .json or .parquet")
        return writers[suffix](path)

    def plot(self, path: str | os.PathLike, label: str | None = None) -> Path:
        """Bar chart of MI per field (one label) to a PNG, sorted descending; approximated fields hatched."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        label = label or self.labels[0]
        rows = sorted(self.fields, key=lambda f: -f[f"mi_{label}"])
        fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(rows) + 2), 4))
        bars = ax.bar([f["name"] for f in rows], [f[f"mi_{label}"] for f in rows], color="tab:blue")
        for bar, f in zip(bars, rows):
            if f.get("approx"):
                bar.set_hatch("//")
        ax.set_ylabel(f"I(field; {label}) [nats]")
        ax.set_title(f"Mutual information with {label} ({self.rows:,} rows)")
        ax.tick_params(axis="x", rotation=90)
        fig.tight_layout()

        def save(tmp: str) -> None:
            fig.savefig(tmp, format="png", dpi=120)

        try:
            return atomic_write(path, save)
        finally:
            plt.close(fig)
