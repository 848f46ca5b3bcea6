"""The `leanrec` command line. Each command group lives in its own module; this file only mounts them."""
from __future__ import annotations

import json
import os
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import leanrec

app = typer.Typer(
    name="leanrec",
    help="Which parameter-efficient recommendation method should I use on MY logs, and what does it cost?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console()


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"leanrec {leanrec.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """leanrec: statistics, data preparation, benchmark runs and leaderboards for CTR methods."""


@app.command("plugins")
def plugins_command(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List installed plugins: distribution, version, hooks, and what each registers. Exits 1 when any plugin
    is disabled (failed to import or register, misspelt hook, name clash)."""
    from leanrec.plugins import ENV_LOAD, load_registry

    reg = load_registry()  # not registry(): this command reports disabled plugins itself, in full
    infos = [p.as_dict() for p in reg.plugins.values()]
    if as_json:
        typer.echo(json.dumps(infos, indent=2))
        raise typer.Exit(1 if reg.disabled() else 0)
    if reg.load_filter is not None and not reg.load_filter:
        console.print(f"[yellow]{ENV_LOAD} is set but empty: no plugins were loaded.[/yellow]")
    elif reg.load_filter is not None:
        console.print(f"{ENV_LOAD}={os.environ.get(ENV_LOAD)!r}: loading only these distributions.")
    table = Table("distribution", "version", "hooks", "methods", "datasets", "status")
    for p in infos:
        table.add_row(
            p["name"], p["version"] or "-",
            "\n".join(h.removeprefix("leanrec_") for h in p["hooks"]),
            ", ".join(p["methods"]), ", ".join(p["datasets"]),
            "[red]disabled[/red]" if p["errors"] else "ok",
        )
    console.print(table)
    for p in reg.disabled():
        console.print(f"[red]{escape(p.name)} is disabled (it registered nothing):[/red]")
        for err in p.errors:
            console.print(err, markup=False, highlight=False)
    if reg.disabled():
        raise typer.Exit(1)


# ---- command groups (each owned by its own module) ------------------------------------------------------
# leanrec.cli_stats: `leanrec stats`;  leanrec.cli_data: `leanrec data ...`;
# leanrec.cli_run: `leanrec run`, `leanrec leaderboard`, `leanrec bench`.
# MOUNT-POINT (add one line per module below)
from leanrec.cli_stats import stats_command; app.command("stats")(stats_command)  # noqa: E402,E702
from leanrec.cli_data import data_app; app.add_typer(data_app, name="data")  # noqa: E402,E702
from leanrec.cli_run import bench_command, leaderboard_command, run_command  # noqa: E402
from leanrec.report import report_command; app.command("report")(report_command)  # noqa: E402,E702
from leanrec.claims import claims_command; app.command("claims")(claims_command)  # noqa: E402,E702
from leanrec.cli_tune import tune_command; app.command("tune")(tune_command)  # noqa: E402,E702

app.command("run")(run_command)
app.command("leaderboard")(leaderboard_command)
app.command("bench")(bench_command)


@app.command("selection-table")
def selection_table(
    results_dir: str = typer.Option("leanrec-results", "--results-dir", help="Directory holding runs/."),
    out_dir: Optional[str] = typer.Option(None, "--out", help="Output directory (default: the results dir)."),
    plots: bool = typer.Option(True, "--plots/--no-plots"),
    only: list[str] = typer.Option([], "--only", help="Keep variants matching this glob (repeatable)."),
    dataset: list[str] = typer.Option([], "--dataset", "-d", help="Keep datasets matching this glob (repeatable)."),
) -> None:
    """Feature-selection table over keep ratios (AUC by k per selector) and AUC-vs-k plots."""
    from leanrec.selection import selection_table_command

    typer.echo(selection_table_command(results_dir, out_dir, plots, only, dataset))


def main() -> None:
    """Console-script entry point; user errors print cleanly instead of as tracebacks."""
    from leanrec.errors import LeanrecError

    try:
        app()
    except LeanrecError as exc:
        from rich.markup import escape

        Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(str(exc))}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
