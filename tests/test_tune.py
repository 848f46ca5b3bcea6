"""`leanrec tune`: search spaces, seeded studies, a planted optimum, crash-resume and concurrent workers,
clear errors, and the tuned rows of the leaderboard (tiny synthetic data, toy objectives; CPU, seconds)."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

import torch  # noqa: E402

import leanrec  # noqa: E402
from leanrec.context import Budget, RunContext  # noqa: E402
from leanrec.errors import ConfigError, LeanrecError, UnknownNameError  # noqa: E402
from leanrec.leaderboard import build_rows, load_tuning, to_markdown, tuned_records  # noqa: E402
from leanrec.methods import MethodConfig, field_specs  # noqa: E402
from leanrec.plugins import load_registry  # noqa: E402
from leanrec.records import iter_records  # noqa: E402
from leanrec.runner import parse_method, run_grid  # noqa: E402
from leanrec.space import (Choice, IntRange, LogUniform, SearchSpaceError, Uniform, declared_space,  # noqa: E402
                           search_space, tunable)
from leanrec.testing import tiny_dataset  # noqa: E402
from leanrec.tune import counted_trials, open_storage, run_study, storage_url, tune  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_harness import SYNTHETIC_CARD, TinyConfig, TinyDNN, TinyMethod, _TestPlugin  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# ---- toy objectives: a planted optimum at lr = 3e-3, dim = 16, dropout = 0.3 ----------------------------------
TOY_SPACE = {"lr": LogUniform(1e-4, 1e-1), "dim": Choice(8, 16, 32), "dropout": Uniform(0.0, 0.5)}
OPTIMUM = {"lr": 3e-3, "dim": 16, "dropout": 0.3}


def toy_value(p: dict) -> float:
    return (-(math.log10(p["lr"]) - math.log10(OPTIMUM["lr"])) ** 2 - 4 * (p["dropout"] - OPTIMUM["dropout"]) ** 2
            - 0.5 * (p["dim"] != OPTIMUM["dim"]))


def toy_objective(params: dict, report) -> float:
    value = toy_value(params)
    for step in (10, 20):   # a learning curve that ends at the value
        report(step, value - 1.0 / step)
    return value


def _study(tmp_path: Path, name: str, *, trials: int, seed: int, objective=toy_objective, first=None):
    """A study in memory (the SQLite storage is exercised by the process tests below)."""
    storage = optuna.storages.InMemoryStorage()
    study = run_study(storage, name, TOY_SPACE, objective, trials=trials, seed=seed, first=first)
    return [(t.number, t.user_attrs["config"], t.state.name) for t in counted_trials(study, trials)]


def test_same_seed_same_trials_other_seed_other_trials(tmp_path):
    a = _study(tmp_path, "toy", trials=12, seed=3)
    b = _study(tmp_path, "toy", trials=12, seed=3)
    c = _study(tmp_path, "toy", trials=12, seed=4)
    assert a == b   # random start-up trials and TPE's alike
    assert [x[1] for x in a] != [x[1] for x in c]
    assert len(a) == 12 and [x[0] for x in a] == list(range(12))


def test_planted_optimum_is_found_and_beats_random_search(tmp_path):
    trials = _study(tmp_path, "toy", trials=40, seed=0)
    values = [toy_value(cfg) for _, cfg, state in trials if state == "COMPLETE"]
    best = max((cfg for _, cfg, state in trials if state == "COMPLETE"), key=toy_value)
    assert best["dim"] == 16
    assert abs(math.log10(best["lr"]) - math.log10(3e-3)) < 0.3 and abs(best["dropout"] - 0.3) < 0.1
    # the oracle: the best of 40 uniform random draws from the same space, over many repetitions, is worse
    import numpy as np

    rng = np.random.default_rng(0)
    random_best = []
    for _ in range(200):
        draws = [{"lr": 10 ** rng.uniform(-4, -1), "dim": int(rng.choice([8, 16, 32])),
                  "dropout": rng.uniform(0, 0.5)} for _ in range(40)]
        random_best.append(max(toy_value(d) for d in draws))
    assert max(values) > np.median(random_best)


def test_hopeless_trials_are_pruned_and_count_against_the_budget(tmp_path):
    def objective(params, report):
        value = toy_value(params)
        for step in range(10, 101, 10):
            report(step, value)
        return value

    storage = optuna.storages.InMemoryStorage()
    study = run_study(storage, "toy", TOY_SPACE, objective, trials=16, seed=1)
    states = [t.state.name for t in counted_trials(study, 16)]
    assert len(states) == 16 and "PRUNED" in states
    for t in study.get_trials():
        if t.state.name == "PRUNED":   # pruned below the other trials at that step, never the best so far
            step = t.user_attrs["pruned_at_step"]
            others = [o.intermediate_values[step] for o in study.get_trials()
                      if o.number < t.number and step in o.intermediate_values]
            assert t.intermediate_values[step] < max(others)


def test_first_trial_runs_the_given_defaults(tmp_path):
    trials = _study(tmp_path, "toy", trials=3, seed=0, first={"lr": 1e-3, "dim": 8, "dropout": 0.2})
    assert trials[0][1] == {"lr": 0.001, "dim": 8, "dropout": 0.2}


# ---- kill -9 and concurrent processes ------------------------------------------------------------------------
WORKER = textwrap.dedent("""
    import json, math, sys, time
    from leanrec.space import Choice, LogUniform, Uniform
    from leanrec.tune import open_storage, run_study
    url, log, trials, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    space = {"lr": LogUniform(1e-4, 1e-1), "dim": Choice(8, 16, 32), "dropout": Uniform(0.0, 0.5)}

    def objective(p, report):
        with open(log, "a") as f:
            f.write(json.dumps(p, sort_keys=True) + "\\n")
        time.sleep(delay)
        return -(math.log10(p["lr"]) + 2.5) ** 2 - (p["dropout"] - 0.3) ** 2 - 0.5 * (p["dim"] != 16)

    run_study(open_storage(url, heartbeat_s=1, grace_s=2), "toy", space, objective, trials=trials, seed=7,
              poll_s=0.2)
""")


def _worker(tmp_path: Path, url: str, log: Path, trials: int, delay: float) -> subprocess.Popen:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, str(script), url, str(log), str(trials), str(delay)], env=env)


def _finished(url: str) -> list:
    study = optuna.load_study(study_name="toy", storage=open_storage(url, heartbeat_s=1, grace_s=2))
    return [t for t in study.get_trials() if t.state.name == "COMPLETE"]


def test_kill_9_then_rerun_continues_without_repeating_finished_trials(tmp_path):
    trials = 8
    url, log = storage_url(tmp_path / "killed"), tmp_path / "killed.log"
    proc = _worker(tmp_path, url, log, trials, delay=0.4)
    deadline = time.time() + 120
    time.sleep(1.0)   # the worker creates the database
    while time.time() < deadline and len(_finished(url)) < 3:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {json.dumps(t.user_attrs["config"], sort_keys=True) for t in _finished(url)}
    assert 3 <= len(done_before) < trials
    assert _worker(tmp_path, url, log, trials, delay=0.0).wait(timeout=300) == 0

    study = optuna.load_study(study_name="toy", storage=open_storage(url))
    counted = counted_trials(study, trials)
    assert len(counted) == trials and all(t.state.name == "COMPLETE" for t in counted)
    assert sum(t.state.name == "FAIL" for t in study.get_trials()) <= 1   # the trial the kill interrupted
    runs = [line for line in log.read_text().splitlines()]
    for config in done_before:   # every trial finished before the kill ran once, never again
        assert runs.count(config) == 1
    # ... and the resumed study drew exactly what an uninterrupted one with the same seed draws
    url2, log2 = storage_url(tmp_path / "whole"), tmp_path / "whole.log"
    assert _worker(tmp_path, url2, log2, trials, delay=0.0).wait(timeout=300) == 0
    whole = counted_trials(optuna.load_study(study_name="toy", storage=open_storage(url2)), trials)
    assert [t.user_attrs["config"] for t in counted] == [t.user_attrs["config"] for t in whole]


def test_a_trial_killed_before_its_first_heartbeat_does_not_stall_the_study(tmp_path, monkeypatch):
    """A kill between creating a trial and starting its heartbeat leaves a RUNNING trial that Optuna's stale-trial
    check skips (it has no heartbeat): the rerun must fail it after FIRST_HEARTBEAT_S and finish the budget."""
    import leanrec.tune as tune

    monkeypatch.setattr(tune, "FIRST_HEARTBEAT_S", 1)
    storage = open_storage(storage_url(tmp_path), heartbeat_s=1, grace_s=1)
    orphan = tune.open_study(storage, "toy", 3).ask()   # created, never beats: what a kill at that moment leaves
    time.sleep(1.5)
    study = run_study(storage, "toy", TOY_SPACE, lambda p, report: toy_value(p), trials=3, seed=0, poll_s=0.05)
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states[orphan.number] == "FAIL"
    assert len(counted_trials(study, 3)) == 3


def test_several_processes_share_one_study_and_its_budget(tmp_path):
    trials = 10
    url, log = storage_url(tmp_path), tmp_path / "log"
    procs = [_worker(tmp_path, url, log, trials, delay=0.2) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    study = optuna.load_study(study_name="toy", storage=open_storage(url))
    assert len(counted_trials(study, trials)) == trials
    trained = [t for t in counted_trials(study, trials) if "duplicate_of" not in t.user_attrs]   # not reused
    assert len(log.read_text().splitlines()) == len(trained)   # each counted trial trained once, no surplus one
    extra = [t for t in study.get_trials() if t not in counted_trials(study, trials)]
    assert all(t.state.name == "FAIL" and t.user_attrs.get("surplus") for t in extra)   # lost races, untrained


@pytest.mark.parametrize("parallel", [False, True])
def test_processes_drawing_at_once_draw_different_configs_in_parallel_mode(parallel):
    """Another process drew trial 0 and is still training it when this one draws: seeded by finished trials
    (one-process mode, for resumable determinism) both draw the same config; parallel mode seeds by the
    trials created and draws another."""
    import threading

    from leanrec.space import suggest
    from leanrec.tune import _trial_seed, open_study

    storage = optuna.storages.InMemoryStorage()
    open_study(storage, "toy", 2)
    sampler = optuna.samplers.TPESampler(seed=_trial_seed(0, 0), n_startup_trials=3, constant_liar=parallel)
    other = optuna.load_study(study_name="toy", storage=storage, sampler=sampler).ask()
    theirs = {key: suggest(other, key, s) for key, s in TOY_SPACE.items()}
    done = threading.Timer(0.5, lambda: storage.set_trial_state_values(other._trial_id, optuna.trial.TrialState.COMPLETE,
                                                                        [toy_value(theirs)]))
    done.start()
    study = run_study(storage, "toy", TOY_SPACE, toy_objective, trials=2, seed=0, poll_s=0.05, parallel=parallel)
    done.join()
    ours = study.get_trials()[1].user_attrs["config"]
    assert (ours == theirs) is not parallel


def test_a_trial_created_past_the_budget_by_a_racing_process_trains_nothing():
    """The race the process test above can hit only by chance, forced: another process creates and finishes
    the last trial of the budget between this process's budget check and its own trial's creation."""
    from optuna.trial import TrialState

    class RacingStorage(optuna.storages.InMemoryStorage):
        race_at = 2   # when the study has this many trials, another process slips one in first

        def create_new_trial(self, study_id, template_trial=None):
            if len(self.get_all_trials(study_id, deepcopy=False)) == self.race_at:
                self.race_at = -1
                other = super().create_new_trial(study_id)
                self.set_trial_state_values(other, TrialState.COMPLETE, [-9.0])
            return super().create_new_trial(study_id, template_trial)

    calls = []

    def objective(p, report):
        calls.append(p)
        return toy_value(p)

    study = run_study(RacingStorage(), "toy", TOY_SPACE, objective, trials=3, seed=0, poll_s=0.01)
    assert len(calls) == 2   # the third config of the budget was the other process's
    states = [(t.number, t.state.name, t.user_attrs.get("surplus", False)) for t in study.get_trials()]
    assert states == [(0, "COMPLETE", False), (1, "COMPLETE", False), (2, "COMPLETE", False), (3, "FAIL", True)]
    assert [t.number for t in counted_trials(study, 3)] == [0, 1, 2]


# ---- errors --------------------------------------------------------------------------------------------------
def _registry_with(*methods):
    class Plugin:
        __name__ = "tune-test-plugin"

        @staticmethod
        @leanrec.hookimpl
        def leanrec_register_methods(register):
            for m in methods:
                register(m)

    import leanrec.builtin_datasets as builtin

    return load_registry([_TestPlugin(), Plugin(), builtin], entry_points=False)


def _bad_method(name, **fields):
    cfg = dataclass(type(f"Cfg_{name.replace('-', '_')}", (TinyConfig,), {
        "__annotations__": {k: type(v[0]) for k, v in fields.items()},
        **{k: tunable(*v) for k, v in fields.items()}}))

    def validate(self):
        TinyConfig.validate(self)
        if not 0 <= getattr(self, "rate", 0.0) < 1:
            raise ConfigError(f"rate must be in [0, 1), got {self.rate}")
    cfg.validate = validate
    return type(f"M_{name}", (TinyMethod,), {"name": name, "Config": cfg})


@pytest.mark.parametrize("fields, message", [
    ({"rate": (0.1, Uniform(0.5, 0.2))}, r"bad-0: search space of 'rate' .*low < high"),
    ({"rate": (0.1, LogUniform(0.0, 0.5))}, r"0 < low < high"),
    ({"rate": (0.1, Uniform(0.0, 1.5))}, r"'rate'.*rate must be in \[0, 1\), got 1.5"),   # the config's own check
    ({"width": (4, IntRange(2, 8, step=0))}, r"step >= 1"),
    ({"width": (4, Choice(2, "wide"))}, r"'width'.*'wide' as an integer"),
    ({"width": (4, Choice())}, r"at least one value"),
    ({"width": (4, (2, 8))}, r"not a leanrec.space space"),
])
def test_a_space_with_a_bad_range_fails_clearly_before_any_trial(tmp_path, fields, message):
    method = _bad_method("bad-0", **fields)
    with pytest.raises(SearchSpaceError, match=message):
        tune([str(SYNTHETIC_CARD)], [parse_method("bad-0")], tmp_path, trials=2, reg=_registry_with(method),
             progress=False)
    assert not (tmp_path / "tuning").exists()
    assert issubclass(SearchSpaceError, LeanrecError)


def test_unknown_method_or_key_fails_clearly(tmp_path):
    with pytest.raises(UnknownNameError, match="tiny-dnn"):
        tune([str(SYNTHETIC_CARD)], [parse_method("tiny-dn")], tmp_path, trials=2, reg=_registry_with(),
             progress=False)
    with pytest.raises(ConfigError, match="hiden"):
        tune([str(SYNTHETIC_CARD)], [parse_method("tiny-dnn:hiden=[8]")], tmp_path, trials=2,
             reg=_registry_with(), progress=False)
    with pytest.raises(UnknownNameError, match="dataset 'no-such-data'"):
        tune([str(SYNTHETIC_CARD), "no-such-data"], [parse_method("tiny-dnn")], tmp_path, trials=2,
             reg=_registry_with(), progress=False)
    assert not (tmp_path / "tuning").exists()
    with pytest.raises(LeanrecError, match="trials"):
        tune([str(SYNTHETIC_CARD)], [parse_method("tiny-dnn")], tmp_path, trials=0, reg=_registry_with())


# ---- spaces declared on config fields ------------------------------------------------------------------------
def test_spaces_are_inherited_overridden_and_removed():
    @dataclass
    class Parent(MethodConfig):
        keep: float = tunable(0.5, Uniform(0.2, 1.0))

    @dataclass
    class Child(Parent):
        keep: float = 0.7                       # re-declared without metadata: keeps the parent's space
        embedding_dim: int = tunable(16, None)  # taken out of the search
        lr: float = tunable(1e-3, LogUniform(1e-5, 1e-3))

    space = declared_space(Child)
    assert space["keep"] == Uniform(0.2, 1.0) and "embedding_dim" not in space
    assert space["lr"] == LogUniform(1e-5, 1e-3) and space["batch_size"] == Choice(256, 512, 1024, 2048)
    method = type("M", (TinyMethod,), {"name": "m", "Config": Child})
    resolved = search_space(method, fixed={"lr": 1e-4}, budget=Budget(max_batch_size=512))
    assert "lr" not in resolved and resolved["batch_size"] == Choice(256, 512)
    assert "batch_size" not in search_space(method, budget=Budget(max_batch_size=256))   # one choice left
    assert search_space(TinyMethod)["embedding_dim"] == Choice(8, 16, 32, 4)   # the default is a candidate


def test_the_papers_methods_declare_their_knobs():
    from leanrec.plugins import registry

    reg = registry()
    expect = {"dnn": {"lr", "dropout", "hidden"}, "deepfm": {"lr", "dropout", "hidden"},
              "dcnv2": {"num_cross_layers", "dropout"}, "reaction": {"keep_ratio", "tau", "dropout"},
              "lightfmp": {"gate_lr", "pretrain_lr"}, "ssr-s": {"b", "d_v"}, "irazor": {"tau", "cpt", "arch_lr"}}
    for name, keys in expect.items():
        try:
            space = search_space(reg.method(name))
        except UnknownNameError:
            pytest.skip(f"plugin of {name} not installed")
        assert keys <= set(space), name
    assert "embedding_dim" not in search_space(reg.method("irazor"))   # unused by i-Razor


# ---- the trainer's validation callback -----------------------------------------------------------------------
def test_on_eval_sees_every_validation_with_steps_counted_over_stages():
    ds = tiny_dataset(800, seed=1)
    seen = []
    ctx = RunContext(torch.device("cpu"), budget=Budget(max_epochs=2, min_steps=6, eval_every=3), progress=False,
                     on_eval=lambda step, auc: seen.append((step, auc)))
    cfg = TinyConfig(batch_size=128)
    for name in ("first", "second"):
        ctx.train(TinyDNN(field_specs(ds)), ds, cfg, name=name)
    first, second = ctx.train_results["first"], ctx.train_results["second"]
    expect = [(h["step"], h["valid_auc"]) for h in first.history] + \
             [(first.steps + h["step"], h["valid_auc"]) for h in second.history]
    assert seen == expect and len(second.history) >= 2


# ---- end to end: tune, run the best over seeds, same identity as a plain run, marked on the leaderboard --------
def test_tune_then_final_runs_are_ordinary_runs_marked_tuned(tmp_path):
    reg = _registry_with()
    budget = Budget(max_epochs=1, min_steps=10, eval_every=5)
    data = {"synthetic": {"n_rows": 2000}}
    lines = []
    summaries = tune([str(SYNTHETIC_CARD)], [parse_method("tiny-dnn:hidden=[8]")], tmp_path, trials=3, seed=0,
                     budget=budget, data_overrides=data, progress=False, reg=reg,
                     on_trial=lambda target, t: lines.append(t.number))
    (summary,) = summaries.values()
    assert lines == [0, 1, 2] and summary["trials_counted"] == 3 and summary["trial_seconds"] > 0
    assert summary["fixed"] == {"hidden": [8]} and "hidden" not in summary["space"]
    assert summary["trials"][0]["config"] == {"batch_size": 1024, "embedding_dim": 4, "lr": 0.001}   # defaults
    best = max((t for t in summary["trials"] if t["state"] == "complete"), key=lambda t: t["valid_auc"])
    assert summary["best"]["valid_auc"] == best["valid_auc"]
    zero, vs = summary["trials"][0], summary["best_vs_defaults"]
    assert vs["delta"] == pytest.approx(best["valid_auc"] - zero["valid_auc"])
    if best["number"] != 0:   # DeLong SEs of both trials, combined as if independent
        assert vs["se"] == pytest.approx(math.hypot(best["valid_auc_se"], zero["valid_auc_se"]))
        assert vs["beyond_noise"] == (vs["delta"] > 1.96 * vs["se"]) and 0 < vs["se"] < 0.2
    else:
        assert vs == {"delta": 0.0, "se": None, "beyond_noise": None}
    label = summary["dataset"]
    assert label == "synthetic[n_rows=2000]"   # the label records file under (data overrides included)
    saved = json.loads((tmp_path / "tuning" / "synthetic_n_rows_2000" / "tiny-dnn_hidden_8.json").read_text())
    assert saved["best"] == summary["best"]

    # rerunning the same tune does no trial; more trials continue the same study
    assert tune([str(SYNTHETIC_CARD)], [parse_method("tiny-dnn:hidden=[8]")], tmp_path, trials=3, seed=0,
                budget=budget, data_overrides=data, progress=False, reg=reg,
                on_trial=lambda target, t: lines.append(t.number))
    assert lines == [0, 1, 2]
    more = tune([str(SYNTHETIC_CARD)], [parse_method("tiny-dnn:hidden=[8]")], tmp_path, trials=4, seed=0,
                budget=budget, data_overrides=data, progress=False, reg=reg,
                on_trial=lambda target, t: lines.append(t.number))
    assert lines == [0, 1, 2, 3] and next(iter(more.values()))["trials_counted"] == 4
    summary = tune([str(SYNTHETIC_CARD)], [parse_method("tiny-dnn:hidden=[8]")], tmp_path, trials=3, seed=0,
                   budget=budget, data_overrides=data, progress=False, reg=reg)[(str(SYNTHETIC_CARD), "tiny-dnn[hidden=[8]]")]
    assert summary["trials_counted"] == 3 and lines == [0, 1, 2, 3]   # a smaller budget: the first 3 trials

    # the best config over two seeds, by the normal runner; a plain run of that config is the same run
    spec = parse_method(summary["best"]["spec"])
    records = run_grid([str(SYNTHETIC_CARD)], [spec], [0, 1], tmp_path, budget=budget, data_overrides=data,
                       progress=False, reg=reg)
    events = []
    run_grid([str(SYNTHETIC_CARD)], [parse_method(summary["best"]["spec"].replace("tiny-dnn", "TINY-DNN"))], [0, 1],
             tmp_path, budget=budget, data_overrides=data, progress=False, reg=reg,
             report=lambda r, e: events.append(e))
    assert events == ["reused", "reused"] and all(r["variant"] == summary["best"]["variant"] for r in records)
    assert all("tuning" not in r["identity"] for r in records)

    rows = build_rows(iter_records(tmp_path), load_tuning(tmp_path))[label]
    (row,) = rows
    assert row.tuned_trials == 3 and row.tuning_s == summary["trial_seconds"]
    assert "✦ tuned (3 trials" in to_markdown({label: rows})
    # under another budget the same config is not the tuned one
    other = [dict(r, budget={**r["budget"], "max_epochs": 2}) for r in iter_records(tmp_path)]
    assert build_rows(other, load_tuning(tmp_path))[label][0].tuned_trials == 0


def test_tuned_view_keeps_tuned_configs_and_their_defaults():
    tuning = {("d", "m[lr=0.002]"): [{"dataset": "d", "method": "m", "fixed": {}}],
              ("d", "k[b=2,x=1]"): [{"dataset": "d", "method": "k", "fixed": {"x": 1}}]}
    records = [{"dataset": d, "variant": v} for d, v in
               [("d", "m"), ("d", "m[lr=0.002]"), ("d", "m[lr=0.1]"), ("e", "m"), ("d", "k[x=1]"), ("d", "k"),
                ("d", "k[b=2,x=1]")]]
    assert [(r["dataset"], r["variant"]) for r in tuned_records(records, tuning)] == [
        ("d", "m"), ("d", "m[lr=0.002]"), ("d", "k[x=1]"), ("d", "k[b=2,x=1]")]
