"""Run identity: a finished record is reused only for the same run (leanrec.records, leanrec.runner)."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import pytest

from leanrec.methods import canonical_overrides, make_config
from leanrec.errors import ConfigError
from leanrec.protocol import Budget
from leanrec.records import SCHEMA_VERSION, iter_records, migrate_v1, read_record, write_record
from leanrec.runner import parse_method, run_grid
from test_harness import SYNTHETIC_CARD, TinyConfig, TinyMethod, _registry

SMALL = {"synthetic": {"n_rows": 2000}}


def _run(tmp_path, methods, *, budget=None, data=None, card=None, seeds=(0,)):
    events = []
    recs = run_grid([str(card or SYNTHETIC_CARD)], [parse_method(m) for m in methods], list(seeds), tmp_path,
                    budget=budget or Budget(max_epochs=1, min_steps=4), data_overrides=data or SMALL,
                    progress=False, reg=_registry(), report=lambda r, e: events.append(e))
    return recs, events


def test_equal_configs_are_one_variant():
    assert canonical_overrides(TinyConfig, {"lr": "1e-2"}) == canonical_overrides(TinyConfig, {"lr": "0.01"}) \
        == {"lr": 0.01}
    assert canonical_overrides(TinyConfig, {"hidden": "[64,64]"}) == canonical_overrides(
        TinyConfig, {"hidden": "[64, 64]"}) == {"hidden": [64, 64]}
    assert canonical_overrides(TinyConfig, {"lr": "0.001", "epochs": "3"}) == {}   # the defaults
    reg = _registry()
    assert parse_method("TINY-DNN:lr=1e-2").canonical(reg).variant == parse_method(
        "tiny-dnn:lr=0.01").canonical(reg).variant == "tiny-dnn[lr=0.01]"


def test_config_values_of_the_wrong_element_type_are_refused():
    with pytest.raises(ConfigError, match="hidden"):
        make_config(TinyConfig, {"hidden": "[abc]"})
    with pytest.raises(ConfigError, match=r"hidden\[1\]"):
        make_config(TinyConfig, {"hidden": '[8, "x"]'})
    with pytest.raises(ConfigError, match="epochs"):
        make_config(TinyConfig, {"epochs": "2.5"})


def test_identical_rerun_is_skipped_and_spellings_share_the_run(tmp_path):
    _, first = _run(tmp_path, ["tiny-dnn:lr=0.01"])
    assert first == ["ran"]
    path = next((tmp_path / "runs").rglob("*.json"))
    mtime = path.stat().st_mtime_ns
    _, again = _run(tmp_path, ["TINY-DNN:lr=1e-2"])
    assert again == ["reused"] and path.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("change", ["budget", "config_default", "data_override", "card"])
def test_each_identity_part_causes_a_rerun(tmp_path, change, monkeypatch):
    card = tmp_path / "card.toml"
    shutil.copy(SYNTHETIC_CARD, card)
    _run(tmp_path, ["tiny-dnn"], card=card)
    kwargs = {"card": card}
    if change == "budget":
        kwargs["budget"] = Budget(max_epochs=2, min_steps=4)
    elif change == "data_override":
        kwargs["data"] = {"synthetic": {"n_rows": 2400}}
    elif change == "card":   # the card's content: fewer fields change the encoded data
        text = card.read_text()
        assert "n_fields = 20" in text
        card.write_text(text.replace("n_fields = 20", "n_fields = 12"))
    elif change == "config_default":
        @dataclass
        class NewDefaults(TinyConfig):   # a new leanrec version changing a default
            hidden: tuple[int, ...] = (8,)

        monkeypatch.setattr(TinyMethod, "Config", NewDefaults)
    recs, events = _run(tmp_path, ["tiny-dnn"], **kwargs)
    if change == "data_override":   # overrides are part of the dataset's label: a run of its own, beside the old
        assert events == ["ran"] and recs[0]["dataset"] == "synthetic[n_rows=2400]"
        assert len(list(iter_records(tmp_path))) == 2
        return
    assert len(events) == 2 and events[0].startswith("redo") and events[1] == "ran", events
    assert {"budget": "budget", "card": "data", "config_default": "config"}[change] in events[0]
    superseded = list((tmp_path / "superseded").rglob("*.json"))
    assert len(superseded) == 1                    # the old record kept aside, not in the leaderboard
    assert len(list(iter_records(tmp_path))) == 1


def test_version_1_records_are_migrated_and_never_reused(tmp_path):
    recs, _ = _run(tmp_path, ["tiny-dnn"])
    path = next((tmp_path / "runs").rglob("*.json"))
    v1 = {k: v for k, v in read_record(path).items() if k not in ("identity", "identity_hash", "protocol")}
    v1.update(schema_version=1, budget={"max_epochs": 1}, overrides={})
    write_record(path, v1)
    migrated = read_record(path)
    assert migrated["schema_version"] == SCHEMA_VERSION and migrated["protocol"] == 1
    assert migrated["identity"]["budget"]["min_steps"] == 0
    assert migrate_v1({**v1, "overrides": {"hidden": "[8,8]"}, "method": "tiny-dnn"})["variant"] == \
        "tiny-dnn[hidden=[8,8]]"
    _, events = _run(tmp_path, ["tiny-dnn"])
    assert events[0].startswith("redo") and "protocol" in events[0]


def test_a_failed_grid_exits_nonzero_and_names_the_record(tmp_path, monkeypatch, capsys):
    import typer

    import leanrec.cli_run as cli_run
    import leanrec.runner

    monkeypatch.setattr(leanrec.runner, "registry", _registry)
    with pytest.raises(typer.Exit) as exc:
        cli_run._run_and_rank([str(SYNTHETIC_CARD)], ["exploding", "tiny-dnn"], [0], tmp_path,
                              Budget(max_epochs=1, min_steps=4), SMALL, "cpu", False)
    assert exc.value.exit_code == 1
    out = capsys.readouterr().out
    assert "traceback in" in out and "exploding__seed0.json" in out.replace("\n", "")
    rec = json.loads(next((tmp_path / "runs").rglob("exploding__seed0.json")).read_text())
    assert rec["status"] == "failed" and "always fails" in rec["error"]["traceback"]
    # the grid's leaderboard printed only this grid (and the good run is kept)
    assert "tiny-dnn" in out


def test_old_searches_get_diagnostics_and_uniform_ones_report_no_selection():
    from leanrec.leaderboard import build_rows

    def rec(seed, probs):
        return migrate_v1({"schema_version": 1, "dataset": "d", "method": "irazor", "variant": "irazor", "seed": seed,
                           "status": "ok", "overrides": {}, "budget": {"max_epochs": 10}, "config": {},
                           "total_time": 1.0, "training": {}, "extra": {"region_probs": {"a": probs, "b": probs}},
                           "selection": {"fields": ["a"], "field_dims": {"a": 4}},
                           "metrics": {"auc": 0.7, "logloss": 0.5, "params": {"total": 1, "embedding": 1, "backbone": 0},
                                       "flops_per_sample": 1.0,
                                       "latency_s_per_sample": {"batch_1": 1e-6, "batch_4096": 1e-7}}})

    uniform, chosen = rec(0, [0.25, 0.25, 0.26, 0.24]), rec(1, [0.97, 0.01, 0.01, 0.01])
    assert uniform["extra"]["search"]["near_uniform"] and not chosen["extra"]["search"]["near_uniform"]
    row = build_rows([uniform])["d (protocol 1)"][0]
    assert row.uniform_search == 1 and row.fields != row.fields          # NaN: no selection reported
    assert build_rows([uniform, chosen])["d (protocol 1)"][0].fields == 1.0   # only the search that chose
