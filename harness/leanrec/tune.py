"""`leanrec tune`: the same hyperparameter-search budget for every method, on the validation split only.

For each (dataset, method) an Optuna study (TPE, seeded) draws configs from the method's search space
(:mod:`leanrec.space`), trains each through the harness (``method.fit`` with a :class:`RunContext`, the run's
budget and protocol) and scores the returned model's AUC on the validation split; the test split is never
read. Trials report every intermediate validation AUC (``RunContext.on_eval``) and the pruner stops those in
the worst quarter at the same step. Trial 0 runs the method's defaults.

Studies live in Optuna's SQLite storage (``<results>/tuning/studies.db``): a killed study resumes without
repeating finished trials, and several processes (``--jobs``, or several shells) can work on one study.
Every method gets the same number of trials: the first ``trials`` trials that finished (completed, pruned,
or failed with an error of the config, e.g. a diverged loss) count, trials lost to a crash do not. Two
processes can both see one trial of budget left and both create a trial; the later-numbered one fails at once
as a surplus trial (no error recorded, nothing trained), so exactly ``trials`` configs are trained.

The best config of each method is then run over the usual seeds by the normal runner
(:func:`leanrec.runner.run_grid`) and measured on test like any run: a tuned run and a default run of the same
config are the same run (same identity). The tuning provenance (trials, time, best config, every trial) is a
side file, ``<results>/tuning/<dataset>/<method>.json``, never part of a run's identity; the leaderboard
reads it to mark tuned rows.

Determinism: each trial's sampler is seeded from ``seed`` and the number of trials finished before it, so
with one process the same seed gives the same trials, and a study resumed after a kill draws what an
uninterrupted one would have drawn. With several processes the order of trials depends on timing.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import multiprocessing
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from leanrec.errors import LeanrecError
from leanrec.protocol import PROTOCOL_VERSION, Budget
from leanrec.records import atomic_write_text, canonical_json, file_slug
from leanrec.space import Space, default_params, describe, search_space, suggest, thaw

if TYPE_CHECKING:
    import optuna

    from leanrec.plugins import Registry
    from leanrec.runner import MethodSpec

TUNE_VERSION = 1
STORAGE_NAME = "studies.db"
HEARTBEAT_S = 10          # a running trial's process writes a heartbeat this often ...
GRACE_S = 30              # ... and a trial without one for this long is a crashed trial (marked failed, not counted)
FIRST_HEARTBEAT_S = 20    # a trial still without its first heartbeat this long after it started: its process died
PRUNE_PERCENTILE = 75.0   # keep trials in the top 75% at their step: prune the worst quarter

Report = Callable[[int, float], None]
Objective = Callable[[dict[str, Any], Report], "float | tuple[float, dict[str, Any]]"]


def require_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise LeanrecError("`leanrec tune` needs Optuna: pip install optuna (make setup installs it)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)   # heartbeats
    return optuna


def storage_url(results_dir: Path) -> str:
    path = Path(results_dir) / "tuning" / STORAGE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def open_storage(url: str, *, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S) -> "optuna.storages.RDBStorage":
    """Optuna's RDB storage with heartbeats (crashed trials are detected) and a patient SQLite lock."""
    optuna = require_optuna()
    import sqlalchemy.exc

    for attempt in range(5):   # two processes creating a new database at once: one of them retries
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat_s, grace_period=grace_s,
                                              engine_kwargs={"connect_args": {"timeout": 120}})
        except sqlalchemy.exc.DBAPIError:
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))


def fail_dead_trials(study: Any) -> None:
    """Mark the running trials whose process died as failed (they then use no budget).

    Optuna's ``fail_stale_trials`` finds trials whose heartbeat went stale, but skips a trial that has no
    heartbeat at all: one whose process was killed between creating the trial and starting its heartbeat
    thread (a kill between two trials lands there). Such a trial would stay RUNNING for ever and a study that
    waits for its running trials would never end; it counts as dead ``FIRST_HEARTBEAT_S`` (or the storage's
    grace period, if longer) after it started."""
    optuna = require_optuna()
    import sqlalchemy
    from optuna.storages import fail_stale_trials

    fail_stale_trials(study)
    storage = study._storage
    backend = getattr(storage, "_backend", storage)   # a loaded study wraps the RDB storage in a cache
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if not running or not isinstance(backend, optuna.storages.RDBStorage) or backend.heartbeat_interval is None:
        return
    with backend.engine.connect() as connection:   # optuna's schema: one row per trial that ever beat
        beating = {row[0] for row in connection.execute(sqlalchemy.text("SELECT trial_id FROM trial_heartbeats"))}
    patience = max(FIRST_HEARTBEAT_S, backend.grace_period or 0)
    now = dt.datetime.now()
    for trial in running:
        started = trial.datetime_start
        if trial._trial_id in beating or started is None or (now - started).total_seconds() <= patience:
            continue
        try:
            storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:   # it finished (or another process failed it) meanwhile
            pass


def startup_trials(trials: int) -> int:
    """Random trials before TPE models the results (and before pruning starts): a quarter, 3 to 10."""
    return min(10, max(3, trials // 4))


def _counts(t: Any) -> bool:
    """Whether a finished trial uses budget: completed, pruned, or failed because of its config (an error
    was recorded); a trial failed by a crash (no error recorded) does not."""
    state = t.state.name
    return state in ("COMPLETE", "PRUNED") or (state == "FAIL" and "error" in t.user_attrs)


def counted_trials(study: Any, trials: int) -> list[Any]:
    """The first `trials` trials that use budget, by trial number (the ones a study's result is made of)."""
    return sorted((t for t in study.get_trials(deepcopy=False) if _counts(t)), key=lambda t: t.number)[:trials]


class SurplusTrial(Exception):
    """A trial created past the budget because several processes checked it at once. It fails without an
    error recorded, so it uses no budget, and it trains nothing."""


def _trial_seed(seed: int, n_finished: int) -> int:
    return (seed * 1_000_003 + n_finished) % 2**31


def open_study(storage: Any, study_name: str, trials: int, first: dict[str, Any] | None = None) -> Any:
    """Create or load a maximising study; a new one gets `first` (encoded params) as its trial 0."""
    optuna = require_optuna()
    pruner = optuna.pruners.PercentilePruner(PRUNE_PERCENTILE, n_startup_trials=startup_trials(trials))
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize", load_if_exists=True,
                                pruner=pruner)
    if first is not None and not study.get_trials(deepcopy=False):
        study.enqueue_trial(first, skip_if_exists=True)
    return study


def run_study(storage: Any, study_name: str, space: dict[str, Space], objective: Objective, *, trials: int,
              seed: int, first: dict[str, Any] | None = None, poll_s: float = 1.0, parallel: bool = False,
              on_trial: Callable[[Any], None] | None = None) -> Any:
    """Run (or continue) a maximising study until `trials` trials use budget; return the study.

    `objective(params, report)` trains with the sampled config values and returns the validation score
    (or the score and a dict of facts stored with the trial), calling `report(step, score)` at every validation (it raises optuna.TrialPruned when the pruner says
    so). `first` (encoded params) is enqueued as trial 0 of a new study. `parallel`: the sampler treats
    running trials as bad results (TPE's constant liar) so that processes working at once spread out; off,
    running trials are ignored and a resumed study draws what an uninterrupted one would have. Safe to run from several processes
    at once on one storage; a process that finds the budget used up by running trials waits for them (or for
    their heartbeat to go stale, when their process died)."""
    optuna = require_optuna()
    n_start = startup_trials(trials)
    study = open_study(storage, study_name, trials, first)
    pruner = study.pruner

    ran: list[int] = []   # numbers of the trials this process ran

    def wrapped(trial: Any) -> float:
        # Another process may have created a trial between this loop's budget check and this trial's creation:
        # a trial whose lower-numbered trials already use (or are running) the whole budget trains nothing.
        ahead = [t for t in study.get_trials(deepcopy=False)
                 if t.number < trial.number and (_counts(t) or t.state.name == "RUNNING")]
        if len(ahead) >= trials:
            trial.set_user_attr("surplus", True)
            raise SurplusTrial(f"trial {trial.number} is beyond the budget of {trials} (another process took it)")
        ran.append(trial.number)
        params = {key: suggest(trial, key, s) for key, s in space.items()}
        trial.set_user_attr("config", json.loads(canonical_json(thaw(params))))
        for old in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if old.user_attrs.get("config") == trial.user_attrs["config"]:   # deterministic: reuse, don't rerun
                trial.set_user_attr("duplicate_of", old.number)
                return old.value

        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                trial.set_user_attr("pruned_at_step", step)
                raise optuna.TrialPruned(f"validation AUC {value:.4f} at step {step} is in the worst quarter")

        try:
            value = objective(params, report)
            if isinstance(value, tuple):
                value, facts = value
                for key, fact in facts.items():
                    trial.set_user_attr(key, fact)
            return value
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise

    while True:
        fail_dead_trials(study)
        all_trials = study.get_trials(deepcopy=False)
        used = [t for t in all_trials if _counts(t)]
        running = [t for t in all_trials if t.state.name == "RUNNING"]
        if len(used) >= trials:
            break
        if len(used) + len(running) >= trials:   # the rest is being run (or its dead process not yet noticed)
            time.sleep(poll_s)
            continue
        # one process: seeded by the trials finished (a resumed study draws what an uninterrupted one would);
        # several: by every trial created, so processes drawing at once do not draw the same config
        sampler = optuna.samplers.TPESampler(seed=_trial_seed(seed, len(all_trials) if parallel else len(used)),
                                             n_startup_trials=n_start, constant_liar=parallel)
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
        before = len(ran)
        study.optimize(wrapped, n_trials=1, catch=(Exception,), gc_after_trial=False)
        if on_trial is not None and len(ran) > before:
            on_trial(study.get_trials(deepcopy=False)[ran[-1]])
    return study


# ---- methods on data ------------------------------------------------------------------------------------------
@dataclass
class TuneTarget:
    """One (dataset, method) to tune: what identifies its study."""

    dataset: str                  # name or card path, as given
    label: str                    # the dataset label records file under
    method: str                   # canonical method name
    fixed: dict[str, Any]         # canonical overrides given on the command line (not searched)
    space: dict[str, Space]
    budget: Budget
    seed: int
    data_fingerprint: str
    data_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def study_name(self) -> str:
        key = {"data": self.data_fingerprint, "dataset": self.label, "method": self.method, "fixed": self.fixed,
               "space": describe(self.space), "budget": self.budget.to_dict(), "seed": self.seed,
               "protocol": PROTOCOL_VERSION, "tune": TUNE_VERSION}
        digest = hashlib.sha256(canonical_json(key).encode()).hexdigest()[:12]
        from leanrec.records import variant_name

        return f"{self.label}/{variant_name(self.method, self.fixed)}/{digest}"

    def summary_path(self, results_dir: Path) -> Path:
        from leanrec.records import variant_name

        return Path(results_dir) / "tuning" / file_slug(self.label) / f"{file_slug(variant_name(self.method, self.fixed))}.json"


def method_objective(method_cls: type, fixed: dict[str, Any], data: Any, *, budget: Budget, seed: int,
                     device: Any) -> Objective:
    """Train `method_cls` with `fixed` + the trial's values through the harness and return its model's AUC on
    the validation split (the test split is not read)."""
    from leanrec.context import RunContext, prepare_fit, restoring_denormals
    from leanrec.metrics import delong_variance
    from leanrec.trainer import predict_logits

    @restoring_denormals()
    def objective(params: dict[str, Any], report: Report) -> tuple[float, dict[str, Any]]:
        method = method_cls.from_overrides({**fixed, **{k: thaw(v) for k, v in params.items()}})
        ctx = RunContext(device=device, seed=seed, budget=budget, progress=False, on_eval=report)
        prepare_fit(seed)
        result = method.fit(data, ctx)
        valid = ctx.tensors(data, "valid")
        auc, var = delong_variance(valid.y[:, 0].cpu().numpy(), predict_logits(result.model.to(device), valid.X))
        if not math.isfinite(auc):
            raise LeanrecError(f"validation AUC is {auc} (does the validation split hold both labels?)")
        return auc, {"valid_auc_se": math.sqrt(var) if math.isfinite(var) else None}

    return objective


def make_target(dataset: str, spec: "MethodSpec", *, seed: int, budget: Budget, data_overrides: dict[str, Any],
                reg: "Registry", progress: bool = False) -> tuple[TuneTarget, Any]:
    """The study target of `spec` (canonical) on `dataset`, and the data its trials use (split `seed`)."""
    from leanrec.data import load_dataset
    from leanrec.runner import _dataset_name, dataset_label

    cls = reg.method(spec.name)
    space = search_space(cls, fixed=spec.overrides, budget=budget)
    if not space:
        raise LeanrecError(f"{spec.name}: nothing to tune (its config declares no search space, or every "
                           f"searched key is fixed on the command line: {sorted(spec.overrides)})")
    data = load_dataset(dataset, seed=seed, overrides=data_overrides, progress=progress)
    label = dataset_label(_dataset_name(reg, dataset), data_overrides or {})
    return TuneTarget(dataset, label, spec.name, spec.overrides, space, budget, seed, data.fingerprint(),
                      data_overrides or {}), data


def summarize(study: Any, target: TuneTarget, method_cls: type, trials: int, storage_path: str) -> dict[str, Any]:
    """The tuning record: every counted trial, how long they took, and the best config (as a method spec)."""
    from leanrec.methods import canonical_overrides
    from leanrec.records import variant_name

    counted = counted_trials(study, trials)
    rows, seconds = [], []
    for t in counted:
        took = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        seconds.append(took or 0.0)
        rows.append({"number": t.number, "state": t.state.name.lower(), "valid_auc": t.value,
                     "config": t.user_attrs.get("config"), "seconds": took,
                     **{k: t.user_attrs[k] for k in ("valid_auc_se", "pruned_at_step", "error", "duplicate_of")
                        if k in t.user_attrs}})
    complete = [t for t in counted if t.state.name == "COMPLETE" and t.value is not None]
    best = max(complete, key=lambda t: (t.value, -t.number), default=None)
    starts = [t.datetime_start for t in counted if t.datetime_start]
    ends = [t.datetime_complete for t in counted if t.datetime_complete]
    out: dict[str, Any] = {
        "tune_version": TUNE_VERSION, "dataset": target.label, "method": target.method, "fixed": target.fixed,
        "study": target.study_name, "storage": storage_path, "seed": target.seed, "budget": target.budget.to_dict(),
        "protocol": PROTOCOL_VERSION, "data_fingerprint": target.data_fingerprint, "objective": "valid AUC",
        "sampler": f"TPE (seeded per trial from seed {target.seed}; {startup_trials(trials)} random startup trials)",
        "pruner": f"percentile {PRUNE_PERCENTILE:g} (worst quarter at a step), after {startup_trials(trials)} trials",
        "space": describe(target.space), "trials_requested": trials, "trials_counted": len(counted),
        "states": {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail")},
        "trial_seconds": round(sum(seconds), 3),
        "wall_seconds": round((max(ends) - min(starts)).total_seconds(), 3) if starts and ends else 0.0,
        "default_valid_auc": next((r["valid_auc"] for r in rows if r["number"] == 0), None),
        "trials": rows,
        "updated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if best is not None:
        overrides = canonical_overrides(method_cls.Config, {**target.fixed, **best.user_attrs["config"]})
        out["best"] = {"number": best.number, "valid_auc": best.value, "overrides": overrides,
                       "variant": variant_name(target.method, overrides), "spec": spec_text(target.method, overrides)}
        out["best_vs_defaults"] = versus_defaults(best, next((t for t in complete if t.number == 0), None))
    return out


def versus_defaults(best: Any, default: Any) -> dict[str, Any] | None:
    """How far the best trial's validation AUC is above the defaults' (trial 0), against the noise of one
    validation split: `se` combines both trials' DeLong standard errors as if independent, which overstates
    the noise of a difference on the same rows (conservative); `beyond_noise` = delta > 1.96 se."""
    if default is None:
        return None
    delta = best.value - default.value
    ses = [t.user_attrs.get("valid_auc_se") for t in (best, default)]
    if best.number == default.number or None in ses:
        return {"delta": delta, "se": None, "beyond_noise": None}
    se = math.sqrt(ses[0] ** 2 + ses[1] ** 2)
    return {"delta": delta, "se": se, "beyond_noise": delta > 1.959963984540054 * se}


def spec_text(method: str, overrides: dict[str, Any]) -> str:
    """The `-m` text of a method with overrides ('dnn:hidden=[256,256],lr=0.002'), for `leanrec run`."""
    if not overrides:
        return method
    return method + ":" + ",".join(f"{k}={v if isinstance(v, str) else canonical_json(v)}"
                                   for k, v in sorted(overrides.items()))


def tune_target(target: TuneTarget, data: Any, method_cls: type, results_dir: Path, *, trials: int, jobs: int = 1,
                device: Any, threads: int | None = None, storage: Any = None,
                on_trial: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Run `target`'s study to `trials` trials (with `jobs` processes), write and return its summary."""
    from leanrec.methods import make_config

    url = storage_url(results_dir)
    storage = storage or open_storage(url)
    objective = method_objective(method_cls, target.fixed, data, budget=target.budget, seed=target.seed,
                                 device=device)
    first = default_params(target.space, make_config(method_cls.Config, target.fixed))
    open_study(storage, target.study_name, trials, first)   # before any helper process can draw trial 0
    workers = []
    if jobs > 1:
        ctx = multiprocessing.get_context("spawn")
        args = (target.dataset, target.method, target.fixed, target.budget.to_dict(), target.seed,
                target.data_overrides, url, target.study_name, trials, str(device), threads)
        workers = [ctx.Process(target=_worker, args=args, daemon=True) for _ in range(jobs - 1)]
        for w in workers:
            w.start()
    try:
        study = run_study(storage, target.study_name, target.space, objective, trials=trials, seed=target.seed,
                          first=first, parallel=jobs > 1, on_trial=on_trial)
    finally:
        for w in workers:
            w.join()
    failed = [w.exitcode for w in workers if w.exitcode != 0]
    if failed:
        raise LeanrecError(f"{len(failed)} of {len(workers)} --jobs helper process(es) of study {target.study_name} "
                           f"exited with {failed} (their error is printed above); rerun to continue the study")
    summary = summarize(study, target, method_cls, trials, str(Path("tuning") / STORAGE_NAME))
    atomic_write_text(target.summary_path(results_dir), json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def _worker(dataset: str, method: str, fixed: dict[str, Any], budget: dict[str, Any], seed: int,
            data_overrides: dict[str, Any], url: str, study_name: str, trials: int, device: str,
            threads: int | None) -> None:
    """A --jobs helper process: the same study, from the default registry."""
    import torch

    from leanrec.context import pick_device
    from leanrec.plugins import registry
    from leanrec.runner import MethodSpec

    if threads is not None:
        torch.set_num_threads(threads)
    reg = registry()
    target, data = make_target(dataset, MethodSpec(method, fixed), seed=seed, budget=Budget.from_dict(budget),
                               data_overrides=data_overrides, reg=reg)
    if target.study_name != study_name:
        raise LeanrecError(f"worker found study {target.study_name}, expected {study_name}")
    objective = method_objective(reg.method(method), fixed, data, budget=target.budget, seed=seed,
                                 device=pick_device(device))
    run_study(open_storage(url), study_name, target.space, objective, trials=trials, seed=seed, parallel=True)


def tune(datasets: Sequence[str], methods: Sequence["MethodSpec"], results_dir: Path, *, trials: int, seed: int = 0,
         jobs: int = 1, budget: Budget | None = None, data_overrides: dict[str, Any] | None = None,
         device: str = "auto", threads: int | None = None, progress: bool = True, reg: "Registry | None" = None,
         on_trial: Callable[[TuneTarget, Any], None] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """Tune every (dataset, method) with `trials` trials each; return their summaries by (dataset as given,
    method variant). Names, configs and spaces are all checked before any trial runs."""
    from leanrec.context import pick_device
    from leanrec.plugins import registry

    require_optuna()
    if trials < 1 or jobs < 1:
        raise LeanrecError(f"--trials and --jobs must be >= 1, got {trials} and {jobs}")
    reg = reg or registry()
    if jobs > 1 and reg is not registry():
        raise LeanrecError("--jobs > 1 runs helper processes with the installed plugins only")
    budget = budget or Budget()
    specs = list({m.variant: m for m in (m.canonical(reg) for m in methods)}.values())
    from leanrec.runner import _dataset_name

    for spec in specs:   # names and spaces checked up front: a bad range fails before hours of tuning
        search_space(reg.method(spec.name), fixed=spec.overrides, budget=budget)
    for dataset in datasets:
        _dataset_name(reg, dataset)
    dev = pick_device(device)
    out = {}
    for dataset in datasets:
        for spec in specs:
            target, data = make_target(dataset, spec, seed=seed, budget=budget, data_overrides=data_overrides or {},
                                       reg=reg, progress=progress)
            callback = (lambda t, target=target: on_trial(target, t)) if on_trial else None
            summary = tune_target(target, data, reg.method(spec.name), results_dir, trials=trials, jobs=jobs,
                                  device=dev, threads=threads, on_trial=callback)
            out[(dataset, spec.variant)] = summary
    return out


