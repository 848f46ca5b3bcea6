"""`leanrec data prepare|info|list` through the typer app."""
from __future__ import annotations

import json

from conftest import CARDS
from typer.testing import CliRunner

from leanrec.cli_data import data_app, parse_sets

CARD = str(CARDS / "synthetic.toml")


def test_parse_sets():
    assert parse_sets(["min_count=2", "synthetic.n_rows=500", "split=time", "cross_fields=true"]) == {
        "min_count": 2, "synthetic": {"n_rows": 500}, "split": "time", "cross_fields": True}


def test_prepare_then_info(tmp_path):
    runner = CliRunner()
    args = ["--set", "synthetic.n_rows=4000", "--cache-dir", str(tmp_path)]
    r = runner.invoke(data_app, ["prepare", CARD, *args])
    assert r.exit_code == 0, r.output
    assert "prepared synthetic: 20 fields" in r.output
    r = runner.invoke(data_app, ["info", CARD, *args, "--json"])
    info = json.loads(r.output)
    from leanrec.data.preprocess import PrepConfig, split_indices

    assert info["splits"]["train"]["rows"] == len(split_indices(4000, PrepConfig(), 0)["train"])
    assert sum(v["rows"] for v in info["splits"].values()) == 4000 and len(info["fields"]) == 20
    r = runner.invoke(data_app, ["info", CARD, *args])
    assert r.exit_code == 0 and "planted role" in r.output and "informative" in r.output


def test_bad_override_is_a_clean_error(tmp_path):
    r = CliRunner().invoke(data_app, ["prepare", CARD, "--set", "min_cuont=2", "--cache-dir", str(tmp_path)])
    assert r.exit_code != 0 and "min_cuont" in str(r.exception)
