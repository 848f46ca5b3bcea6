"""Counting shard files on a Dask cluster (one task per file) and merging the serialised accumulators."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from leanrec.errors import ConfigError, DataError
from leanrec.stats.arrow_reader import ReadState, read_batches
from leanrec.stats.cards import labels_arg, with_card
from leanrec.stats.counting import count_files
from leanrec.stats.report import StatsReport
from leanrec.stats.sources import BadRows, file_format, list_files
from leanrec.stats.spec import Spec, infer_spec, parse_size
from leanrec.stats.table import TableAccumulator


def count_shard(path: str, kwargs: dict[str, Any]) -> bytes:
    """Worker task: count one shard, return the serialised accumulator."""
    kwargs = dict(kwargs)
    spec = Spec.from_json(kwargs.pop("spec"))
    return count_files([Path(path)], spec=spec, spec_args={}, **kwargs).to_bytes()


def compute_distributed(source: str | Path | Sequence[str | Path] | None = None, *, client: Any = None,
                        dataset: Any = None, format: str | None = None, names: Sequence[str] | None = None,
                        label: str | Sequence[str] | None = None, fields: Sequence[str] | None = None,
                        numeric: Sequence[str] | None = None, pairs: bool | Sequence[tuple[str, str]] = False,
                        memory_budget: str | int = "2GB", threads: int | None = None,
                        on_bad_rows: BadRows = "error", hll_precision: int = 14, top_k: int = 10,
                        estimator: str = "plugin") -> StatsReport:
    """Count each shard on a Dask cluster (one task per file), merge the byte blobs here.

    Arguments as in `compute` (a `dataset` card supplies the files and reader settings). The field spec
    (which fields are numeric / strings) is inferred once from the first shard so all workers count the same
    thing. The result equals `compute` over the same files exactly.
    """
    try:
        from dask.distributed import get_client
    except ImportError as exc:  # optional extra
        raise ConfigError("compute_distributed needs dask: pip install 'leanrec[distributed]'") from exc
    client = client or get_client()
    source, format, names, label, fields, numeric = with_card(source, dataset, format, names, label, fields,
                                                              numeric)
    files = list_files(source)
    first = next(iter(read_batches(files[0], file_format(files[0], format), names, on_bad_rows,
                                   ReadState(str(files[0]), names is None), head_bytes=8 << 20)), None)
    if first is None:
        raise DataError("the first shard has no rows", path=str(files[0]))
    spec = infer_spec(first, labels=labels_arg(label), fields=fields, numeric=numeric, pairs=pairs,
                      budget=parse_size(memory_budget), hll_precision=hll_precision, path=str(files[0]))
    kw = dict(fmt=format, names=list(names) if names else None, threads=threads, on_bad_rows=on_bad_rows,
              spec=spec.to_json())
    futures = client.map(count_shard, [str(f) for f in files], kwargs=kw, pure=False)
    blobs = client.gather(futures)
    total = TableAccumulator.from_bytes(blobs[0], threads)
    for b in blobs[1:]:
        total.merge(TableAccumulator.from_bytes(b, threads))
    return total.report(source=str(source), top_k=top_k, estimator=estimator)
