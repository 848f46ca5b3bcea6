"""`leanrec data init`: cards for one's own logs (leanrec.data.init), checked by the card loader, `leanrec data
info` and a tiny `leanrec run`, on generated logs with planted problems and on the real samples."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from conftest import shared_data
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from leanrec.data.cards import load_card
from leanrec.data.init import init_card, numeric_kind
from leanrec.errors import ConfigError, DataError

N = 3000


def own_log(seed: int = 0, time: str = "epoch") -> pa.Table:
    """site/dev/price carry signal; converted leaks the label; uid is an identifier; channel is constant."""
    rng = np.random.default_rng(seed)
    site, dev = rng.integers(0, 10, N), rng.integers(0, 5, N)
    price = np.round(rng.gamma(2.0, 3.0, N), 2) + 0.01
    logit = np.linspace(-2, 1.5, 10)[site] + np.array([-1, -.5, 0, .5, 1])[dev] + 0.05 * price
    y = (rng.random(N) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    t0 = datetime(2017, 11, 7, 9, 30, 38, tzinfo=timezone.utc)
    stamps = [t0 + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 86400 * 30, N))]
    ts: list = {"epoch": [int(t.timestamp()) for t in stamps],
                "epoch_ms": [int(t.timestamp() * 1000) for t in stamps],
                "iso": [t.strftime("%Y-%m-%d %H:%M:%S") for t in stamps]}[time]
    return pa.table({"uid": [f"u{i:07d}" for i in rng.permutation(N)], "ts": ts, "site": [f"s{v}" for v in site],
                     "dev": dev, "price": price, "converted": y, "channel": ["web"] * N, "click": y})


def _csv(table: pa.Table, path: Path, delimiter: str = ",") -> Path:
    pacsv.write_csv(table, path, pacsv.WriteOptions(delimiter=delimiter, quoting_style="none"))
    return path


def _app():
    from leanrec.cli import app

    return app


def _runs_end_to_end(card: Path, tmp_path: Path, run: bool = True) -> dict:
    """`leanrec data info CARD --json` and (`run`) a one-epoch `leanrec run -m lr` succeed; returns the info."""
    runner = CliRunner()
    r = runner.invoke(_app(), ["data", "info", str(card), "--json", "--cache-dir", str(tmp_path / "cache")])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    if not run:
        return info
    r = runner.invoke(_app(), ["run", "-d", str(card), "-m", "lr", "--max-epochs", "1", "--seeds", "1",
                               "--results-dir", str(tmp_path / "results"), "--no-progress", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "1 runs, 0 failed" in " ".join(r.output.split()), r.output
    return info


@pytest.mark.parametrize("time", ["epoch", "iso"])
def test_planted_log_card_drops_leak_identifier_constant_and_runs(tmp_path: Path, time: str):
    log = _csv(own_log(time=time), tmp_path / "log.csv")
    r = CliRunner().invoke(_app(), ["data", "init", str(log), "--label", "click", "--time", "ts",
                                    "--out", str(tmp_path / "card.toml")])
    assert r.exit_code == 0, r.output
    card_path = tmp_path / "card.toml"
    card = load_card(card_path)
    assert [(f.name, f.kind) for f in card.fields] == [("site", "categorical"), ("dev", "categorical"),
                                                        ("price", "numeric")]
    assert card.time == "ts" and card.split["method"] == "time" and [lab.name for lab in card.labels] == ["click"]
    assert card.resolve(card.source.files["all"]) == log.resolve()
    text = card_path.read_text()
    for col, kind in (("uid", "identifier"), ("converted", "leakage"), ("channel", "constant")):
        (line,) = [ln for ln in text.splitlines() if ln.strip().startswith(f'# dropped "{col}"')]
        assert f"{kind}:" in line, line
    assert ("epoch seconds" if time == "epoch" else "ISO 8601 date-times") in text
    info = _runs_end_to_end(card_path, tmp_path)
    assert [f["name"] for f in info["fields"]] == ["site", "dev", "price"]
    assert sum(s["rows"] for s in info["splits"].values()) == N


def test_tsv_and_parquet_inputs(tmp_path: Path):
    table = own_log(1)
    tsv = _csv(table, tmp_path / "log.tsv", delimiter="\t")
    card = load_card(init_card(tsv, "click", out=tmp_path / "tsv.toml"))
    assert card.source.delimiter == "\t" and card.split["method"] == "random" and card.time is None
    # without --time, ts (one value per row, integers) is identifier-like and dropped
    assert [f.name for f in card.fields] == ["site", "dev", "price"]
    pq.write_table(table, tmp_path / "log.parquet")
    pcard = init_card(tmp_path / "log.parquet", "click", "ts", out=tmp_path / "pq.toml")
    assert load_card(pcard).source.format == "parquet"
    assert [f.name for f in load_card(pcard).fields] == ["site", "dev", "price"]
    assert sum(s["rows"] for s in _runs_end_to_end(pcard, tmp_path, run=False)["splits"].values()) == N


@pytest.mark.parametrize("kind, said", [("epoch_ms", "epoch milliseconds"), ("iso", "ISO 8601 date-times")])
def test_time_column_forms_are_marked(tmp_path: Path, kind: str, said: str):
    log = _csv(own_log(2, time=kind), tmp_path / "log.csv")
    card = init_card(log, "click", time="ts", out=tmp_path / "c.toml")
    assert load_card(card).time == "ts"
    assert f'time = "ts"  # {said}' in card.read_text()


def test_bad_time_label_and_columns_name_the_line(tmp_path: Path):
    table = own_log(3, time="iso")
    ts = table["ts"].to_pylist()
    ts[3] = "yesterday"
    bad_time = _csv(table.set_column(1, "ts", pa.array(ts)), tmp_path / "t.csv")
    with pytest.raises(DataError, match=r"t\.csv, line 5, column ts: time value 'yesterday'"):
        init_card(bad_time, "click", time="ts", out=tmp_path / "t.toml")
    y = table["click"].to_pylist()
    y[5] = 2
    bad_label = _csv(table.set_column(7, "click", pa.array(y)), tmp_path / "l.csv")
    with pytest.raises(DataError, match=r"l\.csv, line 7, column click: label must be 0 or 1, found '2'"):
        init_card(bad_label, "click", out=tmp_path / "l.toml")
    with pytest.raises(DataError, match="label column 'clk' not found"):
        init_card(bad_label, "clk", out=tmp_path / "x.toml")
    one_class = _csv(table.set_column(7, "click", pa.array([0] * N)), tmp_path / "o.csv")
    with pytest.raises(DataError, match=r"o\.csv, column click: label 'click' has a single class in the first 3,000"):
        init_card(one_class, "click", out=tmp_path / "o.toml")
    assert not (tmp_path / "t.toml").exists() and not (tmp_path / "l.toml").exists()


def test_existing_card_needs_force(tmp_path: Path):
    log = _csv(own_log(4), tmp_path / "log.csv")
    init_card(log, "click", out=tmp_path / "c.toml")
    with pytest.raises(ConfigError, match="exists"):
        init_card(log, "click", out=tmp_path / "c.toml")
    r = CliRunner().invoke(_app(), ["data", "init", str(log), "--label", "click", "--out", str(tmp_path / "c.toml"),
                                    "--force"])
    assert r.exit_code == 0, r.output


def test_nothing_left_is_an_error(tmp_path: Path):
    log = _csv(own_log(5).select(["uid", "channel", "click"]), tmp_path / "log.csv")
    with pytest.raises(DataError, match="every column was proposed for dropping"):
        init_card(log, "click", out=tmp_path / "c.toml")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False),
                          st.sampled_from(["abc", "x1"])), min_size=1, max_size=30))
def test_numeric_kind_matches_python(values):
    """Numeric exactly when every non-null value is a number and some value is not an integer."""
    col = pa.chunked_array([pa.array([None if v is None else repr(v) for v in values], pa.string())])
    nums = [v for v in values if v is not None]
    expect = bool(nums) and all(not isinstance(v, str) for v in nums) and any(float(v) != int(v) for v in nums)
    assert numeric_kind(col) == expect


# ---- the real samples (skip without ../shared/data) ------------------------------------------------------------
@pytest.mark.parametrize("rel, label", [("frappe_nfm_partial/valid.csv", "label"),
                                        ("avazu_head10k/avazu_head10k.csv", "click"),
                                        ("ipinyou_sample/train.csv", "click")])
def test_real_samples(tmp_path: Path, rel: str, label: str):
    path = shared_data(*rel.split("/"))
    card_path = init_card(path, label, out=tmp_path / "card.toml")
    card = load_card(card_path)
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True, null_values=[""]))
    n = table.num_rows
    fields = [c for c in table.column_names if c != label]
    states = {c: pc.count_distinct(table[c], mode="all").as_py() for c in fields}
    # oracle: constant columns and columns with a value per row are exactly the dropped ones here
    expect_drop = {c for c in fields if states[c] <= 1 or states[c] == n}
    assert {f.name for f in card.fields} == set(fields) - expect_drop
    for c in expect_drop:
        assert f'# dropped "{c}"' in card_path.read_text()
    _runs_end_to_end(card_path, tmp_path)


def test_data_file_tells_logs_from_cards_and_names(tmp_path: Path):
    from leanrec.data.init import data_file

    log = _csv(own_log(6), tmp_path / "log.csv")
    card = init_card(log, "click", out=tmp_path / "c.toml")
    assert data_file(str(log)) == log
    assert data_file(card) is None and data_file("frappe") is None and data_file(tmp_path / "missing.csv") is None
