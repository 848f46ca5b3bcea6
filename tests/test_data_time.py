"""Time columns: ISO 8601 date-times and epoch seconds/milliseconds order rows for the time split; values of
neither form fail with the file, line and column. Oracle: Python's datetime."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leanrec.data import load_dataset
from leanrec.data.readers import RawTable, to_time
from leanrec.errors import DataError

UTC = dt.timezone.utc


def _to_time(values, typ=pa.string()) -> np.ndarray:
    return to_time(RawTable(pa.table({"t": pa.array(values, typ)})), "t")


def _iso(moment: dt.datetime, sep: str, zone: dt.timezone | None, micros: bool) -> str:
    """`moment` (UTC) written as ISO 8601 in `zone` (None: no zone, the UTC wall clock)."""
    local = moment.astimezone(zone) if zone is not None else moment.replace(tzinfo=None)
    text = local.isoformat(sep=sep, timespec="microseconds" if micros else "seconds")
    return text.replace("+00:00", "Z") if zone is UTC else text


moments = st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2099, 12, 31),
                       timezones=st.just(UTC))
zones = st.one_of(st.none(), st.just(UTC),
                  st.integers(-14 * 4, 14 * 4).map(lambda q: dt.timezone(dt.timedelta(minutes=15 * q))))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(moments, st.sampled_from(["T", " "]), zones, st.booleans()), min_size=1, max_size=30))
def test_iso_values_are_epoch_seconds(rows):
    """Any mix of separators, zones (Z, offsets, none = UTC) and fractional seconds gives datetime's epoch."""
    values = [_iso(*r) for r in rows]
    expected = [(r[0] if r[3] else r[0].replace(microsecond=0)).timestamp() for r in rows]
    np.testing.assert_allclose(_to_time(values), expected, rtol=0, atol=1e-6)


def test_dates_missing_values_and_typed_columns():
    got = _to_time(["2017-11-07", None, " 2017-11-07 09:30:38 ", "2017-11-07T09:30"])
    want = [dt.datetime(2017, 11, 7, tzinfo=UTC).timestamp(), np.nan,
            dt.datetime(2017, 11, 7, 9, 30, 38, tzinfo=UTC).timestamp(),
            dt.datetime(2017, 11, 7, 9, 30, tzinfo=UTC).timestamp()]
    np.testing.assert_array_equal(got, want)
    stamp = dt.datetime(2017, 11, 7, 9, 30, 38, 250000, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    np.testing.assert_array_equal(_to_time([stamp, None], pa.timestamp("ms", tz="+01:00")), [stamp.timestamp(), np.nan])
    np.testing.assert_array_equal(_to_time([dt.date(2017, 11, 7)], pa.date32()),
                                  [dt.datetime(2017, 11, 7, tzinfo=UTC).timestamp()])
    # numbers (epoch seconds or milliseconds, as strings or numeric columns) are kept as they are
    np.testing.assert_array_equal(_to_time(["1510047038", "1510047038000", None]), [1510047038, 1510047038000, np.nan])
    np.testing.assert_array_equal(_to_time([3, 1], pa.int64()), [3.0, 1.0])


@pytest.mark.parametrize("values, message", [
    (["2017-11-07 09:30:38", "2017-13-07 09:30:38"], "ISO 8601 date-time such as 2017-11-07 09:30:38"),
    (["2017-11-07", "yesterday"], "found 'yesterday'"),
    (["2017-11-07T09:30:38Z", "2017-11-07T09:30:38+01:00x"], "found '2017-11-07T09:30:38+01:00x'"),
    (["1510047038", "2017-11-07"], "expected a number (epoch seconds or milliseconds) like the first value"),
    (["2017-11-07", "1510047038"], "holds numbers or date-times, not both"),
])
def test_bad_values_name_file_line_and_column(tmp_path, values, message):
    rows = [("2017-11-01", "0")] * 7 + [(values[0], "1"), (values[1], "0")] + [("2017-11-02", "1")] * 3
    if values[0].isdigit():
        rows = [("1509000000", "0")] * 7 + rows[7:]
    card = _write_csv(tmp_path, rows)
    with pytest.raises(DataError) as e:
        load_dataset(card, cache_dir=tmp_path / "c", progress=False)
    assert e.value.path == str(tmp_path / "log.csv") and e.value.line == 10 and e.value.column == "ts"
    assert message in str(e.value)


def _write_csv(tmp_path, rows, name="log") -> str:
    (tmp_path / f"{name}.csv").write_text("ts,label,item\n" + "".join(f"{t},{y},i{k % 5}\n"
                                                                     for k, (t, y) in enumerate(rows)))
    card = tmp_path / f"{name}.toml"
    card.write_text(f'name = "{name}"\ntime = "ts"\nfields = ["item"]\n[source]\nbase = "card"\n'
                    f'files = {{ all = "{name}.csv" }}\n[[labels]]\nname = "label"\n[split]\nmethod = "time"\n')
    return str(card)


def test_time_split_is_the_same_for_iso_epoch_seconds_and_milliseconds(tmp_path):
    """The same log with its time column written as mixed ISO 8601 forms, as epoch seconds (computed by
    datetime) and as epoch milliseconds gives identical encoded splits, each in time order."""
    rng = np.random.default_rng(0)
    n = 300
    base = dt.datetime(2017, 11, 7, tzinfo=UTC)
    moments = [base + dt.timedelta(seconds=int(s)) for s in rng.permutation(n) * 37]
    labels = [str(int(v)) for v in rng.random(n) < 0.3]
    forms = [("T", None, False), (" ", UTC, False), ("T", dt.timezone(dt.timedelta(hours=-5)), True)]
    iso = [_iso(m, *forms[k % 3]) for k, m in enumerate(moments)]
    epoch = [str(int(m.timestamp())) for m in moments]
    millis = [str(int(m.timestamp()) * 1000) for m in moments]
    loaded = [load_dataset(_write_csv(tmp_path, list(zip(ts, labels)), name), cache_dir=tmp_path / "c",
                           progress=False) for name, ts in (("iso", iso), ("epoch", epoch), ("millis", millis))]
    order = np.argsort([m.timestamp() for m in moments], kind="stable")
    cuts = np.cumsum([len(loaded[0].splits[s]) for s in ("train", "valid", "test")])
    for ds in loaded:
        for s, rows in zip(("train", "valid", "test"), np.split(order, cuts[:2])):
            np.testing.assert_array_equal(ds.splits[s].y[:, 0], np.asarray(labels, float)[rows])
            np.testing.assert_array_equal(ds.splits[s].X, loaded[0].splits[s].X)
    assert cuts[-1] == n and len(loaded[0].splits["train"]) > len(loaded[0].splits["test"]) > 0


def test_parquet_timestamp_column_orders_rows(tmp_path):
    n = 60
    hours = np.random.default_rng(1).permutation(n)
    stamps = [dt.datetime(2020, 1, 1, tzinfo=UTC) + dt.timedelta(hours=int(h)) for h in hours]
    pq.write_table(pa.table({"ts": pa.array(stamps, pa.timestamp("us", tz="UTC")),
                             "label": [str(k % 2) for k in range(n)], "item": [f"i{k % 4}" for k in range(n)]}),
                   tmp_path / "log.parquet")
    card = tmp_path / "log.toml"
    card.write_text('name = "p"\ntime = "ts"\nfields = ["item"]\n[source]\nformat = "parquet"\nbase = "card"\n'
                    'files = { all = "log.parquet" }\n[[labels]]\nname = "label"\n[split]\nmethod = "time"\n')
    ds = load_dataset(card, cache_dir=tmp_path / "c", progress=False)
    order = np.argsort([s.timestamp() for s in stamps], kind="stable")
    got = np.concatenate([ds.splits[s].y[:, 0] for s in ("train", "valid", "test")])
    np.testing.assert_array_equal(got, (order % 2).astype(float))
