"""`leanrec run`, `leanrec leaderboard` and `leanrec bench`: the benchmark grid and its leaderboard."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from leanrec.cli_data import parse_sets

console = Console()


def _report(record: dict[str, Any], skipped: bool) -> None:
    # escape: variant names such as mi[keep_ratio=0.5] would otherwise be eaten as rich markup
    head = escape(f"{record['dataset']} · {record['variant']} · seed {record['seed']}")
    if skipped:
        console.print(f"[dim]↷ {head}: already done[/dim]")
    elif record["status"] == "ok":
        m = record["metrics"]
        console.print(f"[green]✓[/green] {head}: AUC {m['auc']:.4f}  logloss {m['logloss']:.4f}  "
                      f"params {m['params']['total']:,}  ({record['total_time']:.1f} s)")
    else:
        console.print(f"[red]✗ {head}: {escape(record['error']['type'] + ': ' + record['error']['message'])}[/red]")


def _set_threads(threads: Optional[int]) -> None:
    # One thread is much faster than oversubscribed OpenMP when the machine is busy.
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _run_and_rank(datasets: list[str], methods: list[str], seeds: list[int], results_dir: Path,
                  max_epochs: Optional[int], data_overrides: dict[str, Any], device: str, progress: bool) -> None:
    from leanrec.context import Budget
    from leanrec.leaderboard import write_leaderboard
    from leanrec.runner import parse_method, run_grid

    specs = [parse_method(m) for m in methods]
    records = run_grid(datasets, specs, seeds, results_dir, budget=Budget(max_epochs=max_epochs),
                       data_overrides=data_overrides, device=device, progress=progress, report=_report)
    _, md = write_leaderboard(results_dir)
    console.print(md, markup=False, highlight=False)
    failed = sum(r["status"] != "ok" for r in records)
    console.print(f"Leaderboard written to {results_dir / 'leaderboard.md'} (+ .csv, plots); "
                  f"{len(records)} runs, {failed} failed.")


def run_command(
    dataset: list[str] = typer.Option(..., "--dataset", "-d", help="Dataset name or card path (repeatable)."),
    method: list[str] = typer.Option(..., "--method", "-m",
                                     help="Method spec, e.g. dnn or 'dnn:hidden=[64,64],lr=0.01' (repeatable)."),
    seeds: int = typer.Option(5, "--seeds", help="Number of seeds (same seed = same split and init)."),
    seed_start: int = typer.Option(0, "--seed-start", help="First seed."),
    results_dir: Path = typer.Option(Path("results"), "--results-dir", help="Where records and leaderboards go."),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs", help="Cap every method's epochs (quick runs)."),
    data: list[str] = typer.Option([], "--data", help="Data/preprocessing override key=value (repeatable)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if present), cpu, cuda, cuda:1, ..."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's)."),
) -> None:
    """Run datasets x methods x seeds; finished runs are skipped, so rerunning resumes an interrupted grid."""
    _set_threads(threads)
    _run_and_rank(dataset, method, list(range(seed_start, seed_start + seeds)), results_dir, max_epochs,
                  parse_sets(data, "--data"), device, progress)


def leaderboard_command(
    results_dir: Path = typer.Option(Path("results"), "--results-dir", help="Directory holding runs/."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default: the results dir)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write AUC-vs-parameters PNGs."),
    only: list[str] = typer.Option([], "--only", help="Keep variants matching this glob (repeatable), e.g. 'lightfmp*'."),
    dataset: list[str] = typer.Option([], "--dataset", "-d", help="Keep datasets matching this glob (repeatable)."),
    title: str = typer.Option("leanrec leaderboard", "--title", help="Heading of the Markdown file."),
) -> None:
    """Rebuild the leaderboard (CSV, Markdown, PNG) from the run records, optionally for a subset."""
    from leanrec.errors import LeanrecError
    from leanrec.leaderboard import write_leaderboard

    if not (results_dir / "runs").is_dir():
        raise LeanrecError(f"{results_dir} holds no runs/ directory: run `leanrec run` first")
    _, md = write_leaderboard(results_dir, out, plots=plots, only=only, datasets=dataset, title=title)
    console.print(md, markup=False, highlight=False)


def bench_command(
    suite: str = typer.Argument("default", help="Suite name (see leanrec.suites)."),
    results_dir: Optional[Path] = typer.Option(None, "--results-dir", help="Default: results/<suite>."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Override the suite's seed count."),
    device: str = typer.Option("auto", "--device"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's)."),
) -> None:
    """Run a named benchmark suite and print its leaderboard (the README's first command runs 'default')."""
    from leanrec.suites import get_suite

    _set_threads(threads)
    s = get_suite(suite)
    console.print(f"[bold]Suite {suite!r}[/bold]: {s.description}")
    _run_and_rank(s.datasets, s.methods, list(range(seeds or s.seeds)), results_dir or Path("results") / suite,
                  s.max_epochs, s.data_overrides, device, progress)
