"""The native CSV/TSV reader (Rust parse + count) against the pyarrow reader: same counts, same bad rows."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import leanrec.stats as S
from leanrec import _native
from leanrec.errors import ConfigError, DataError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CRITEO = DATA / "criteo_kaggle_head10k" / "criteo_head10k.txt"
NAMES = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]


def same_report(a: S.StatsReport, b: S.StatsReport) -> None:
    """Equal counts and statistics; numeric means/variances to 1e-12 (they are merged per block, and
    the two readers cut blocks at different rows)."""
    assert (a.rows, a.bad_rows) == (b.rows, b.bad_rows)
    assert [f["name"] for f in a.fields] == [f["name"] for f in b.fields]
    for fa, fb in zip(a.fields, b.fields):
        assert fa.keys() == fb.keys()
        for k in fa:
            if k in ("mean", "variance"):
                assert fa[k] == pytest.approx(fb[k], rel=1e-12, nan_ok=True), (fa["name"], k)
            else:
                both_nan = isinstance(fa[k], float) and np.isnan(fa[k]) and np.isnan(fb[k])
                assert fa[k] == fb[k] or both_nan, (fa["name"], k, fa[k], fb[k])
    assert a.pairs == b.pairs and a.top == b.top


def both(path: Path, **kw) -> tuple[S.StatsReport, S.StatsReport]:
    return (S.compute(path, progress=False, reader="native", **kw),
            S.compute(path, progress=False, reader="arrow", **kw))


def write_rows(path: Path, header: list[str] | None, rows: list[list[str]], newline: str = "\n") -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=newline)
    if header:
        w.writerow(header)
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode())
    return path


# text values with delimiters, quotes, spaces and non-ASCII: the csv module quotes and escapes them
TEXT = st.one_of(st.sampled_from(["", "a", "b", "a,b", 'say "hi"', '"', " x ", "é", "a\tb", "0", "1.5"]),
                 st.text(alphabet='ab,"é ', max_size=4))
NUMBER = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=False, allow_infinity=False).map(repr),
                   st.sampled_from(["", "nan", "-0", "1e5", "+3", ".5"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.sampled_from(["0", "1"]), st.sampled_from(["0", "1"]), NUMBER, TEXT, TEXT),
                     min_size=2, max_size=60),
       newline=st.sampled_from(["\n", "\r\n"]))
def test_native_equals_arrow_on_random_csv(tmp_path: Path, rows, newline):
    rows = [list(r) for r in rows]
    rows[0][:2], rows[1][:2] = ["0", "0"], ["1", "1"]  # both classes of both labels: the report is defined
    p = write_rows(tmp_path / "r.csv", ["click", "buy", "price", "site", "dev"], rows, newline)
    a, b = both(p, label=["click", "buy"], numeric=["price"], pairs=True)
    same_report(a, b)


def test_native_equals_arrow_headerless_tsv_with_empty_lines(tmp_path: Path):
    rng = np.random.default_rng(1)
    lines = []
    for i in range(5000):
        lines.append(f"{int(rng.random() < 0.3)}\t{rng.integers(0, 50)}\t{'' if i % 7 == 0 else 'v%d' % rng.zipf(1.3)}")
        if i % 997 == 0:
            lines.append("")  # empty lines are skipped by both readers
    p = tmp_path / "log.tsv"
    p.write_text("\n".join(lines))  # no newline after the last row
    a, b = both(p, format="tsv", names=["label", "n", "t"])
    same_report(a, b)
    assert a.rows == 5000


@pytest.mark.skipif(not CRITEO.exists(), reason="shared Criteo sample not present")
def test_native_equals_arrow_on_criteo():
    a, b = both(CRITEO, format="tsv", names=NAMES, numeric=NAMES[1:14], pairs=[("C1", "C2"), ("I1", "C3")])
    same_report(a, b)


BAD = {
    "short row": "label,n,t\n1,2,a\n0,3\n1,4,b\n",
    "long row": "label,n,t\n1,2,a\n0,3,b,c\n",
    "label 2": "label,n,t\n1,2,a\n2,3,b\n0,3,c\n",
    "label text": "label,n,t\n1,2,a\n0,3,b\nyes,3,b\n",
    "missing label": "label,n,t\n1,2,a\n,3,b\n0,3,c\n",
    "number": "label,n,t\n1,2,a\n0,x1,b\n0,3,c\n",
    "quoted number": 'label,n,t\n1,2,a\n0,"1 ",b\n0,3,c\n',
    "label and number": "label,n,t\n1,2,a\n5,x,b\n",
    "after empty line": "label,n,t\n1,2,a\n\n0,3,b\n0,3\n1,2,c\n",
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_rows_same_message_and_skip_counts(case: str, tmp_path: Path):
    p = tmp_path / "bad.csv"
    p.write_text(BAD[case] + "0,5,z\n1,6,y\n")  # both classes among the good rows
    errors = []
    for reader in ("native", "arrow"):
        with pytest.raises(DataError) as err:
            S.compute(p, progress=False, numeric=["n"], reader=reader)
        errors.append(str(err.value))
    assert errors[0] == errors[1]
    assert str(p) in errors[0] and "line" in errors[0]
    a, b = both(p, numeric=["n"], on_bad_rows="skip")
    assert a.bad_rows >= 1
    same_report(a, b)


def test_progress_reports_every_row(tmp_path: Path):
    p = tmp_path / "big.csv"
    rng = np.random.default_rng(2)
    rows = [[str(int(rng.random() < 0.5)), f"k{rng.integers(0, 1000)}"] for _ in range(40_000)]
    write_rows(p, None, rows)
    acc = _native.FieldAccumulator(1, keep_values=True)
    seen: list[tuple[int, int]] = []
    rows_counted, bad, first_bad = _native.count_delimited(
        str(p), offset=0, first_line=1, delimiter=",", n_columns=2, labels=[0], text=[1], number=[],
        fields=[(acc, 1)], numeric=[], pairs=[], skip_bad_rows=False, threads=2, progress=lambda rows, nbytes: seen.append((rows, nbytes)),
        block_bytes=1 << 16)
    assert (rows_counted, bad, first_bad) == (40_000, 0, None)
    assert sum(r for r, _ in seen) == 40_000 and len(seen) > 1  # several blocks of 64 KB
    assert sum(b for _, b in seen) == p.stat().st_size
    assert acc.stats()["rows"] == 40_000
    want = {}
    for _, v in rows:
        want[v] = want.get(v, 0) + 1
    assert {raw.decode(): c for _, c, raw in acc.top_k()} == want  # every value with its exact count


def test_native_rejects_bad_arguments(tmp_path: Path):
    p = write_rows(tmp_path / "x.csv", None, [["1", "a"]])
    acc = _native.FieldAccumulator(1)
    kw = dict(offset=0, first_line=1, delimiter=",", n_columns=2, numeric=[], pairs=[], skip_bad_rows=False)
    with pytest.raises(ValueError, match="two roles"):
        _native.count_delimited(str(p), labels=[0], text=[0], number=[], fields=[], **kw)
    with pytest.raises(ValueError, match="out of range"):
        _native.count_delimited(str(p), labels=[0], text=[5], number=[], fields=[], **kw)
    with pytest.raises(ValueError, match="not a text or number column"):
        _native.count_delimited(str(p), labels=[0], text=[], number=[], fields=[(acc, 1)], **kw)
    with pytest.raises(ConfigError, match="reader"):
        S.compute(p, progress=False, reader="polars")


def test_compressed_files(tmp_path: Path):
    """gzip (also several members, as `cat a.gz b.gz` makes) is read natively, other compressions through
    Arrow; both equal the uncompressed file. Shard folders pick up compressed shards."""
    import bz2
    import gzip

    rng = np.random.default_rng(3)
    rows = [[str(int(rng.random() < 0.4)), str(rng.integers(0, 9)), f"s{rng.zipf(1.4)}"] for _ in range(6000)]
    plain = write_rows(tmp_path / "log.csv", ["label", "n", "site"], rows)
    data = plain.read_bytes()
    cut = data.index(b"\n", len(data) // 2) + 1
    (tmp_path / "log.csv.gz").write_bytes(gzip.compress(data[:cut]) + gzip.compress(data[cut:]))  # two members
    (tmp_path / "log.csv.bz2").write_bytes(bz2.compress(data))
    want = S.compute(plain, progress=False, reader="arrow")
    for name in ("log.csv.gz", "log.csv.bz2"):
        a, b = both(tmp_path / name)
        same_report(a, want)
        same_report(b, want)
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "part-0.csv.gz").write_bytes(gzip.compress(data))
    assert S.compute(shards, progress=False).rows == 6000


def test_header_with_byte_order_mark(tmp_path: Path):
    """Spreadsheet exports start with a UTF-8 byte-order mark; the first column keeps its plain name."""
    p = tmp_path / "excel.csv"
    p.write_bytes("\ufefflabel,site\r\n1,a\r\n0,b\r\n1,\ufeffa\r\n".encode())
    a, b = both(p)
    same_report(a, b)
    assert a.rows == 3 and [f["name"] for f in a.fields] == ["site"]
    assert {v for v, _ in a.top["site"]} == {"a", "b", "\ufeffa"}  # only the header's mark is dropped
