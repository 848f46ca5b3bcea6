"""`leanrec data ...`: list, prepare, info and fetch datasets."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.table import Table

data_app = typer.Typer(help="Dataset cards, preparation (encoded caches) and downloads.", no_args_is_help=True)
console = Console()

_SET_HELP = "Override a preprocessing option, e.g. --set min_count=2 --set synthetic.n_rows=20000 (repeatable)."


def parse_sets(items: list[str], option: str = "--set") -> dict[str, Any]:
    """['a=1', 'synthetic.n_rows=5'] -> {'a': 1, 'synthetic': {'n_rows': 5}} (values parsed as TOML, else str)."""
    from leanrec.data.cards import tomllib
    from leanrec.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} expects KEY=VALUE, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        *parents, leaf = key.strip().split(".")
        d = out
        for p in parents:
            d = d.setdefault(p, {})
        d[leaf] = value
    return out


def _load(name: str, seed: int, sets: list[str], cache_dir: Optional[str], progress: bool = True):
    from leanrec.data import load_dataset

    return load_dataset(name, seed=seed, overrides=parse_sets(sets), cache_dir=cache_dir, progress=progress)


@data_app.command("list")
def list_command() -> None:
    """Registered datasets (built-in cards and plugins)."""
    from leanrec.plugins import registry

    reg = registry()
    table = Table("name", "format", "files", "plugin", "description")
    for key, entry in sorted(reg.datasets.items()):
        card = entry.obj
        table.add_row(key, card.source.format, ", ".join(card.source.files.values()) or "-", entry.plugin,
                      (card.description[:70] + "...") if len(card.description) > 70 else card.description)
    console.print(table)


@data_app.command("prepare")
def prepare_command(
    name: str = typer.Argument(..., help="Registered dataset name or path to a TOML card."),
    seed: int = typer.Option(0, help="Split seed."),
    set_: List[str] = typer.Option([], "--set", help=_SET_HELP),
    cache_dir: Optional[str] = typer.Option(None, help="Cache root (default $LEANREC_CACHE_DIR or ~/.cache/leanrec)."),
) -> None:
    """Read, split and encode a dataset into the cache (reused when nothing changed)."""
    ds = _load(name, seed, set_, cache_dir)
    info = ds.info()
    sizes = ", ".join(f"{s} {v['rows']:,}" for s, v in info["splits"].items())
    console.print(f"[green]prepared[/green] {ds.name}: {len(ds.fields)} fields, {sizes}")
    console.print(f"cache: {info['cache_path']}")


@data_app.command("info")
def info_command(
    name: str = typer.Argument(..., help="Registered dataset name or path to a TOML card."),
    seed: int = typer.Option(0, help="Split seed."),
    set_: List[str] = typer.Option([], "--set", help=_SET_HELP),
    cache_dir: Optional[str] = typer.Option(None, help="Cache root."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Fields, vocabulary sizes, split sizes and positive rates (prepares the dataset if needed)."""
    ds = _load(name, seed, set_, cache_dir, progress=not as_json)
    info = ds.info()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    splits = Table("split", "rows", *[f"positive rate ({lab})" for lab in ds.labels], title=f"{ds.name}")
    for s, v in info["splits"].items():
        splits.add_row(s, f"{v['rows']:,}", *[f"{r:.4f}" for r in v["positive_rate"]])
    console.print(splits)
    roles = {f: role for role, names in (ds.ground_truth or {}).items()
             if role in ("informative", "interaction", "redundant", "noise") for f in names}
    fields = Table("#", "field", "kind", "vocab size", "train cardinality", *(["planted role"] if roles else []))
    for i, f in enumerate(ds.fields):
        fields.add_row(str(i), f.name, f.kind, f"{f.vocab_size:,}", f"{f.cardinality:,}",
                       *([roles.get(f.name, "-")] if roles else []))
    console.print(fields)
    console.print("codes: 0 = missing, 1 = out-of-vocabulary, >= 2 = vocabulary (most frequent first)")
    console.print(f"cache key {info['cache_key']}  path {info['cache_path']}")


@data_app.command("fetch")
def fetch_command(
    name: str = typer.Argument(..., help="Registered dataset name or path to a TOML card."),
    force: bool = typer.Option(False, help="Download again even if the target exists."),
) -> None:
    """Download a dataset's public files (URLs in its card) into the data root, verifying sha256."""
    from leanrec.data.dataset import resolve_card
    from leanrec.data.fetch import fetch

    for path in fetch(resolve_card(name), force=force, log=console.print):
        console.print(f"[green]ok[/green] {path}")


@data_app.command("init")
def init_command(
    file: Path = typer.Argument(..., help="Your log: CSV/TSV with a header line, or Parquet."),
    label: str = typer.Option(..., "--label", help="The 0/1 label column."),
    time: Optional[str] = typer.Option(None, "--time", help="Time column (ISO 8601 date-times or epoch seconds/"
                                       "milliseconds): marked in the card, split by time."),
    out: Optional[Path] = typer.Option(None, "--out", help="Card to write (default: ./<file stem>.toml)."),
    sample_rows: int = typer.Option(200_000, "--sample-rows", min=100, help="Rows read to infer kinds and findings."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing card."),
) -> None:
    """Write a dataset card for your own log: fields and kinds inferred from a sample; leaking, identifier-like
    and constant columns left out with the reason as a comment."""
    from leanrec.data.init import init_card, summary

    card = init_card(file, label, time, out, sample_rows=sample_rows, overwrite=force)
    for line in summary(card):
        console.print(line, markup=False, highlight=False)
    console.print(f"[green]wrote[/green] {card}")
    console.print(f"next: leanrec data info {card}   then   leanrec run -d {card} -m lr", markup=False)
