"""Reader and field settings from a dataset card (`leanrec.data`) for `compute`."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from leanrec.errors import ConfigError


def labels_arg(label: str | Sequence[str]) -> list[str]:
    """One label name or several -> a list of names."""
    return [label] if isinstance(label, str) else list(label)


def card_options(dataset: Any) -> tuple[list[Path], dict[str, Any]]:
    """Files and reader/field settings from a dataset card (``leanrec.data``): a card object, a TOML path or
    a registered name. Returns ``(files, {format, names, label, fields, numeric})`` for `compute`.

    Only cards whose fields and labels are raw columns of CSV/TSV or Parquet files apply; joins, derived
    columns and thresholded labels need the data layer's preprocessing (describe its encoded output instead).
    """
    from leanrec.data import resolve_card

    card = resolve_card(dataset)
    src = card.source
    where = f"dataset card {card.name!r}"
    if src.join or src.derive:
        raise ConfigError(f"{where} joins or derives columns; leanrec stats reads raw columns only "
                          "(run it on the encoded dataset instead)")
    if src.format == "parquet":
        fmt = "parquet"
    elif src.format == "csv" and src.delimiter in (",", "\t"):
        fmt = "csv" if src.delimiter == "," else "tsv"
    else:
        raise ConfigError(f"{where}: format {src.format!r} (delimiter {src.delimiter!r}) is not readable by "
                          "leanrec stats; it reads CSV (','), TSV ('\\t') and Parquet")
    thresholded = [lab.name for lab in card.labels if lab.threshold is not None]
    if thresholded:
        raise ConfigError(f"{where}: label(s) {thresholded} are thresholded; leanrec stats needs 0/1 label columns")
    names = list(src.columns) if fmt != "parquet" and not src.header else None
    if fmt != "parquet" and not src.header and not names:
        raise ConfigError(f"{where}: header = false but no [source] columns are named")
    labels = [lab.source for lab in card.labels]
    fields = [f.source for f in card.fields] or None
    if fields is None and names and src.drop:
        fields = [c for c in names if c not in labels and c not in src.drop]
    numeric = [f.source for f in card.fields if f.kind == "numeric"] if card.fields else None
    files = [card.resolve(rel) for rel in src.files.values()]
    return files, dict(format=fmt, names=names, label=labels, fields=fields, numeric=numeric)


def with_card(source, dataset, format, names, label, fields, numeric) -> tuple:
    """`compute`'s source and reader settings, filled from a dataset card where not given explicitly."""
    if dataset is not None:
        card_files, opts = card_options(dataset)
        source = card_files if source is None else source
        format, names, label = format or opts["format"], names or opts["names"], label or opts["label"]
        fields = fields if fields is not None else opts["fields"]
        numeric = numeric if numeric is not None else opts["numeric"]
    if source is None:
        raise ConfigError("give a source (file, folder or list) or a dataset card")
    return source, format, names, label or "label", fields, numeric
