"""`leanrec tune`: the same search budget for every method on the validation split, then the best configs over
the usual seeds on test (see docs/tune.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from leanrec.cli_data import parse_sets
from leanrec.cli_run import DEFAULT_RESULTS, _budget, _run_and_rank, _set_threads

console = Console()


def _trial_line(target: Any, t: Any) -> None:
    from leanrec.records import canonical_json

    config = ",".join(f"{k}={canonical_json(v)}" for k, v in sorted((t.user_attrs.get("config") or {}).items()))
    state = t.state.name.lower()
    if state == "complete":
        what = f"valid AUC {t.value:.4f}" + (f" (same config as trial {t.user_attrs['duplicate_of']})"
                                             if "duplicate_of" in t.user_attrs else "")
    elif state == "pruned":
        what = f"pruned at step {t.user_attrs.get('pruned_at_step', '?')}"
    else:
        what = f"failed: {t.user_attrs.get('error', 'interrupted')}"
    took = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else 0.0
    console.print(escape(f"  {target.label} · {target.method} · trial {t.number}: {what}  [{config}]  ({took:.1f} s)"),
                  highlight=False, soft_wrap=True)


def tune_command(
    dataset: list[str] = typer.Option(..., "--dataset", "-d", help="Dataset name or card path (repeatable)."),
    method: list[str] = typer.Option(..., "--method", "-m",
                                     help="Method to tune (repeatable); keys given as in `run` "
                                          "('dnn:hidden=[64,64]') are fixed, not searched."),
    trials: int = typer.Option(..., "--trials", help="Trials per method (the same for every method)."),
    jobs: int = typer.Option(1, "--jobs", help="Processes working on each study at once."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler and of the trials' split and init."),
    seeds: int = typer.Option(5, "--seeds", help="Seeds the best config of each method is then run over."),
    seed_start: int = typer.Option(0, "--seed-start", help="First of those seeds."),
    final: bool = typer.Option(True, "--final/--no-final", help="Run the best configs over --seeds on test."),
    defaults: bool = typer.Option(True, "--defaults/--no-defaults",
                                  help="Run each method's default config over the same seeds too (the rows the "
                                       "tuned ones are compared with; reused when already run)."),
    results_dir: Path = typer.Option(DEFAULT_RESULTS, "--results-dir",
                                     help="Studies go to <dir>/tuning, the final runs to <dir>/runs."),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs", help="Cap every method's epochs."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Cap every training stage's optimizer steps."),
    min_steps: Optional[int] = typer.Option(None, "--min-steps", help="Floor of every stage's steps (default 100)."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Validate every N steps."),
    max_batch_size: Optional[int] = typer.Option(None, "--max-batch-size", help="Cap every stage's batch size."),
    data: list[str] = typer.Option([], "--data", help="Data/preprocessing override key=value (repeatable)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if present), cpu, cuda, cuda:1, ..."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars of the final runs."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch in each process."),
) -> None:
    """Tune each method with the same number of Optuna trials (TPE, pruning) on the validation split, then run
    the best configs over --seeds and rank them with every other record. Rerunning continues the studies."""
    from leanrec.runner import parse_method
    from leanrec.tune import spec_text, tune

    _set_threads(threads)
    budget = _budget(max_epochs, max_steps, min_steps, eval_every, max_batch_size)
    overrides = parse_sets(data, "--data")
    summaries = tune(dataset, [parse_method(m) for m in method], results_dir, trials=trials, seed=seed, jobs=jobs,
                     budget=budget, data_overrides=overrides, device=device, threads=threads, progress=progress,
                     on_trial=_trial_line)
    best: dict[str, list[str]] = {}
    for (dataset_arg, variant), s in summaries.items():
        label = s["dataset"]
        states = s["states"]
        head = escape(f"{label} · {variant}: {s['trials_counted']} trials ({states['complete']} complete, "
                      f"{states['pruned']} pruned, {states['fail']} failed) in {s['trial_seconds']:.0f} s")
        if "best" not in s:
            console.print(f"[red]{head}: no trial completed; nothing to run[/red]")
            continue
        default, vs = s.get("default_valid_auc"), s.get("best_vs_defaults") or {}
        noise = ("" if vs.get("se") is None else
                 f", {'beyond' if vs['beyond_noise'] else 'within'} the split's noise (SE {vs['se']:.4f})")
        console.print(f"[bold]{head}[/bold]: best valid AUC {s['best']['valid_auc']:.4f} (trial {s['best']['number']}"
                      + (f"; defaults {default:.4f}{noise}" if default is not None else "") + ") → "
                      + escape(s["best"]["variant"]), highlight=False, soft_wrap=True)
        best.setdefault(dataset_arg, []).append(s["best"]["spec"])
        if defaults:
            best[dataset_arg].append(spec_text(s["method"], s["fixed"]))
    if not final:
        return
    for dataset_arg, variants in best.items():
        _run_and_rank([dataset_arg], variants, list(range(seed_start, seed_start + seeds)), results_dir, budget,
                      overrides, device, progress)
