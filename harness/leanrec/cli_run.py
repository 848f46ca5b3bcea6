"""`leanrec run`, `leanrec leaderboard` and `leanrec bench`: the benchmark grid and its leaderboard."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from leanrec.cli_data import parse_sets

console = Console()


DEFAULT_RESULTS = Path("leanrec-results")   # user runs; the committed tables live in results/ (only when told)


def _report(record: dict[str, Any], event: str) -> None:
    # escape: variant names such as mi[keep_ratio=0.5] would otherwise be eaten as rich markup
    head = escape(f"{record['dataset']} · {record['variant']} · seed {record['seed']}")
    if event == "reused":
        console.print(f"[dim]↷ {head}: already done (same run)[/dim]")
    elif event.startswith("redo"):
        console.print(f"[yellow]↻ {head}: {escape(event)}[/yellow]")
    elif record["status"] == "ok":
        m = record["metrics"]
        ci = m.get("auc_ci95")
        ci_text = f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
        steps = sum(t.get("steps", 0) for t in (record.get("training") or {}).values())
        console.print(f"[green]✓[/green] {head}: AUC {m['auc']:.4f}{ci_text}  logloss {m['logloss']:.4f}  "
                      f"params {m['params']['total']:,}  {steps} steps  ({record['total_time']:.1f} s)")
    else:
        where = _record_file(record)
        console.print(f"[red]✗ {head}: {escape(record['error']['type'] + ': ' + record['error']['message'])}[/red]"
                      + (f"\n  [dim]traceback in {escape(str(where))} (error.traceback)[/dim]" if where else ""))


_RESULTS_DIR: list[Path] = []   # the grid's results dir, for pointing at failed records


def _record_file(record: dict[str, Any]) -> Path | None:
    from leanrec.records import record_path

    if not _RESULTS_DIR:
        return None
    return record_path(_RESULTS_DIR[0], record["dataset"], record["variant"], record["seed"])


def _set_threads(threads: Optional[int]) -> None:
    # One thread is much faster than oversubscribed OpenMP when the machine is busy.
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _run_and_rank(datasets: list[str], methods: list[str], seeds: list[int], results_dir: Path,
                  budget: Any, data_overrides: dict[str, Any], device: str, progress: bool,
                  memory_budget: int | None = None, dist_timeout: float | None = None) -> None:
    """Run the grid, print its leaderboard (only this grid's datasets and methods; the files hold every
    record in results_dir) and exit non-zero if any run failed. Under torchrun every rank runs the grid and
    rank 0 reports (see leanrec.distributed)."""
    from leanrec import distributed
    from leanrec.leaderboard import build_rows, load_tuning, to_markdown, write_leaderboard
    from leanrec.runner import parse_method, run_grid

    specs = [parse_method(m) for m in methods]
    _RESULTS_DIR[:] = [results_dir]
    if distributed.launched_by_torchrun() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = distributed.init_from_env(device, dist_timeout or distributed.DEFAULT_TIMEOUT_S)
        if distributed.rank_world()[0] != 0:   # rank 0 alone reports and ranks
            try:
                run_grid(datasets, specs, seeds, results_dir, budget=budget, data_overrides=data_overrides,
                         device=device, progress=False, memory_budget=memory_budget)
            except distributed.RunAborted:
                distributed.leave_after_failure()
                raise typer.Exit(1)
            except BaseException:
                distributed.shutdown()
                raise
            distributed.leave_after_success()
    try:
        records = run_grid(datasets, specs, seeds, results_dir, budget=budget, data_overrides=data_overrides,
                           device=device, progress=progress, report=_report, memory_budget=memory_budget)
    except distributed.RunAborted as abort:
        distributed.shutdown()
        console.print(f"[red]A rank failed ({escape(str(abort))}): every rank stopped; rerun the same command to "
                      "resume the grid.[/red]")
        raise typer.Exit(1)
    except BaseException:
        distributed.shutdown()
        raise
    distributed.shutdown(wait_for_peers=True)
    write_leaderboard(results_dir)
    console.print(to_markdown(build_rows(records, load_tuning(results_dir))), markup=False, highlight=False)
    failed = sum(r["status"] != "ok" for r in records)
    console.print(f"Leaderboard of every record in {results_dir} written to {results_dir / 'leaderboard.md'} "
                  f"(+ .csv, plots); this grid: {len(records)} runs, {failed} failed.")
    if failed:
        console.print(f"[red]{failed} run(s) failed; their records (with tracebacks) stay in {results_dir}/runs and "
                      "are retried on the next run.[/red]")
        raise typer.Exit(1)


def _card_for(dataset: str, label: Optional[str], time_column: Optional[str], results_dir: Path) -> str:
    """A raw log given to -d becomes a card written next to the results (`leanrec data init`'s rules:
    inferred kinds, leaking / identifier / constant columns dropped with the reason in a comment)."""
    from leanrec.data.init import data_file, init_card, summary
    from leanrec.errors import LeanrecError

    path = data_file(dataset)
    if path is None:
        return dataset
    if not label:
        raise LeanrecError(f"{dataset} is a raw log: pass --label COL (and --time COL for a time split), or "
                           f"write a card first with `leanrec data init {dataset} --label COL`")
    card = init_card(path, label, time_column, results_dir / "cards" / f"{path.stem}.toml", overwrite=True)
    console.print(f"[bold]card[/bold] {escape(str(card))} written from {escape(str(path))}:")
    for line in summary(card):
        console.print(f"  {escape(line)}")
    return str(card)


def _budget(max_epochs: Optional[int], max_steps: Optional[int], min_steps: Optional[int],
            eval_every: Optional[int], max_batch_size: Optional[int] = None) -> Any:
    from leanrec.protocol import DEFAULT_MIN_STEPS, Budget

    return Budget(max_epochs=max_epochs, max_steps=max_steps,
                  min_steps=DEFAULT_MIN_STEPS if min_steps is None else min_steps, eval_every=eval_every,
                  max_batch_size=max_batch_size)


def run_command(
    dataset: list[str] = typer.Option(..., "--dataset", "-d",
                                      help="Dataset name, card path, or a raw log (CSV/TSV/Parquet, with "
                                           "--label) (repeatable)."),
    method: list[str] = typer.Option(..., "--method", "-m",
                                     help="Method spec, e.g. dnn or 'dnn:hidden=[64,64],lr=0.01' (repeatable)."),
    seeds: int = typer.Option(5, "--seeds", help="Number of seeds (same seed = same split and init)."),
    seed_start: int = typer.Option(0, "--seed-start", help="First seed."),
    results_dir: Path = typer.Option(DEFAULT_RESULTS, "--results-dir",
                                     help="Where records and leaderboards go (the repository's committed tables "
                                          "are in results/; pass it explicitly to add to them)."),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs", help="Cap every method's epochs (quick runs)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Cap every training stage's optimizer steps."),
    min_steps: Optional[int] = typer.Option(None, "--min-steps",
                                            help="Optimizer steps every training stage takes at least, before "
                                                 "early stopping may end it (default 100; see docs/protocol.md)."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every",
                                             help="Validate every N steps (default: one epoch, within 20-1000)."),
    max_batch_size: Optional[int] = typer.Option(None, "--max-batch-size",
                                                 help="Cap every stage's batch size (small samples)."),
    data: list[str] = typer.Option([], "--data", help="Data/preprocessing override key=value (repeatable)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if present), cpu, cuda, cuda:1, ..."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's)."),
    label: Optional[str] = typer.Option(None, "--label", help="Label column of a raw log given to -d."),
    time_column: Optional[str] = typer.Option(None, "--time", help="Time column of a raw log (ISO 8601 or epoch "
                                                                   "s/ms): split by time."),
    memory_budget: Optional[str] = typer.Option(
        None, "--memory-budget", help="Stream splits larger than this (e.g. 512M, 4G) from the cache instead of "
                                      "copying them to the device whole (docs/scale.md)."),
    nproc: int = typer.Option(1, "--nproc", help="Train data-parallel on N local processes (torchrun; gloo on CPU, "
                                                 "NCCL on CUDA); rank 0 writes the records (docs/scale.md)."),
    dist_timeout: float = typer.Option(1800, "--dist-timeout",
                                       help="Seconds a rank waits for the others in a collective before failing."),
) -> None:
    """Run datasets x methods x seeds; finished runs are skipped, so rerunning resumes an interrupted grid."""
    from leanrec.batches import parse_bytes

    budget_bytes = parse_bytes(memory_budget)
    if nproc < 1:
        raise typer.BadParameter("--nproc must be at least 1")
    if nproc > 1:
        from leanrec import distributed

        if distributed.launched_by_torchrun():
            raise typer.BadParameter("--nproc starts torchrun itself: leave it out under torchrun")
        raise typer.Exit(distributed.launch(nproc, distributed.strip_nproc(sys.argv[1:]), results_dir))
    _set_threads(threads)
    dataset = [_card_for(d, label, time_column, results_dir) for d in dataset]
    _run_and_rank(dataset, method, list(range(seed_start, seed_start + seeds)), results_dir,
                  _budget(max_epochs, max_steps, min_steps, eval_every, max_batch_size), parse_sets(data, "--data"),
                  device, progress, budget_bytes, dist_timeout)


def leaderboard_command(
    results_dir: Path = typer.Option(DEFAULT_RESULTS, "--results-dir", help="Directory holding runs/."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default: the results dir)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write AUC-vs-parameters PNGs."),
    only: list[str] = typer.Option([], "--only", help="Keep variants matching this glob (repeatable), e.g. 'lightfmp*'."),
    dataset: list[str] = typer.Option([], "--dataset", "-d", help="Keep datasets matching this glob (repeatable)."),
    title: str = typer.Option("leanrec leaderboard", "--title", help="Heading of the Markdown file."),
    tuned: bool = typer.Option(False, "--tuned", help="Only configs tuned by `leanrec tune` and their defaults."),
) -> None:
    """Rebuild the leaderboard (CSV, Markdown, PNG) from the run records, optionally for a subset."""
    from leanrec.errors import LeanrecError
    from leanrec.leaderboard import write_leaderboard

    if not (results_dir / "runs").is_dir():
        raise LeanrecError(f"{results_dir} holds no runs/ directory: run `leanrec run` first")
    _, md = write_leaderboard(results_dir, out, plots=plots, only=only, datasets=dataset, title=title, tuned=tuned)
    console.print(md, markup=False, highlight=False)


def bench_command(
    suite: str = typer.Argument("default", help="Suite name (see leanrec.suites)."),
    results_dir: Optional[Path] = typer.Option(None, "--results-dir", help="Default: leanrec-results/<suite>."),
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
    _run_and_rank(s.datasets, s.methods, list(range(seeds or s.seeds)), results_dir or DEFAULT_RESULTS / suite,
                  _budget(s.max_epochs, None, None, None), s.data_overrides, device, progress)
