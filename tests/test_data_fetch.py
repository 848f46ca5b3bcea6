"""`leanrec data fetch`: downloads from a local HTTP server on 127.0.0.1 only (never the internet)."""
from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from functools import partial

import pytest

from leanrec.data import DatasetCard
from leanrec.data.fetch import fetch
from leanrec.errors import DataError, LeanrecError


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _card(tmp_path, **fetch_entry):
    return DatasetCard.from_dict({"name": "dl", "source": {"files": {"all": "dl/data.csv"}, "base": "card"},
                                  "labels": ["label"], "fetch": [fetch_entry]}, path=tmp_path / "card.toml")


def test_fetch_verifies_and_places_file(server, tmp_path):
    root, url = server
    payload = b"label,a\n1,x\n0,y\n"
    (root / "data.csv").write_bytes(payload)
    card = _card(tmp_path, url=f"{url}/data.csv", path="dl/data.csv", sha256=hashlib.sha256(payload).hexdigest())
    assert fetch(card, log=lambda m: None) == [tmp_path / "dl" / "data.csv"]
    assert (tmp_path / "dl" / "data.csv").read_bytes() == payload
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["data.csv"]  # no temp files left
    (root / "data.csv").write_bytes(b"changed")
    fetch(card, log=lambda m: None)  # exists: skipped without --force
    assert (tmp_path / "dl" / "data.csv").read_bytes() == payload


def test_checksum_mismatch_writes_nothing(server, tmp_path):
    root, url = server
    (root / "data.csv").write_bytes(b"tampered")
    card = _card(tmp_path, url=f"{url}/data.csv", path="dl/data.csv", sha256="0" * 64)
    with pytest.raises(DataError, match="sha256 mismatch"):
        fetch(card, log=lambda m: None)
    assert not (tmp_path / "dl").exists() or list((tmp_path / "dl").iterdir()) == []


def test_missing_checksum_warns_with_computed_hash(server, tmp_path):
    root, url = server
    (root / "data.csv").write_bytes(b"abc")
    logs: list[str] = []
    fetch(_card(tmp_path, url=f"{url}/data.csv", path="dl/data.csv"), log=logs.append)
    assert any(hashlib.sha256(b"abc").hexdigest() in m for m in logs)


def test_zip_extract_with_strip(server, tmp_path):
    root, url = server
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t2\t5\t0\n")
        zf.writestr("ml-100k/u.user", "1|24|M|x|0\n")
    (root / "a.zip").write_bytes(buf.getvalue())
    card = _card(tmp_path, url=f"{url}/a.zip", path="ml", extract="zip", strip=1,
                 sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    fetch(card, log=lambda m: None)
    assert sorted(p.name for p in (tmp_path / "ml").iterdir()) == ["u.data", "u.user"]


def test_http_error_and_no_urls(server, tmp_path):
    _, url = server
    with pytest.raises(DataError, match="download failed"):
        fetch(_card(tmp_path, url=f"{url}/missing.csv", path="dl/x.csv"), log=lambda m: None)
    card = DatasetCard.from_dict({"name": "n", "source": {"files": {"all": "x"}}, "labels": ["y"]})
    with pytest.raises(LeanrecError, match="no public download URL"):
        fetch(card)


def test_fetch_movielens_1m_zip_then_prepare(server, tmp_path, monkeypatch):
    """The ml-1m card's [[fetch]] entry (zip, strip 1) pointed at a zip built here: fetched, verified,
    extracted atomically, replaced with --force, and then readable by the card."""
    import dataclasses

    from conftest import CARDS
    from test_data_movielens import _ml1m

    from leanrec.data import load_card, load_dataset

    src = tmp_path / "src"
    src.mkdir()
    ratings, _, _ = _ml1m(src)
    root, url = server

    def publish() -> str:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name in ("ratings.dat", "users.dat", "movies.dat"):
                zf.write(src / "ml-1m" / name, f"ml-1m/{name}")
        (root / "ml-1m.zip").write_bytes(buf.getvalue())
        return hashlib.sha256(buf.getvalue()).hexdigest()

    card = load_card(CARDS / "movielens-1m.toml")
    assert card.fetch[0].url == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    data = tmp_path / "data"
    monkeypatch.setenv("LEANREC_DATA_DIR", str(data))
    local = dataclasses.replace(card, fetch=(dataclasses.replace(card.fetch[0], url=f"{url}/ml-1m.zip",
                                                                 sha256=publish()),))
    assert fetch(local, log=lambda m: None) == [data / "ml-1m"]
    assert sorted(p.name for p in (data / "ml-1m").iterdir()) == ["movies.dat", "ratings.dat", "users.dat"]
    assert [p.name for p in data.iterdir()] == ["ml-1m"]  # no temporary folders left
    ds = load_dataset(local, cache_dir=tmp_path / "cache", progress=False)
    assert sum(len(s) for s in ds.splits.values()) == len(ratings)
    # a new archive with a wrong checksum leaves the extracted copy untouched
    _ml1m(src, n=50)
    publish()
    with pytest.raises(DataError, match="sha256 mismatch"):
        fetch(local, force=True, log=lambda m: None)
    assert (data / "ml-1m" / "ratings.dat").read_text().count("\n") == len(ratings)
    # with the right checksum and --force it is replaced as a whole
    fresh = dataclasses.replace(local, fetch=(dataclasses.replace(local.fetch[0], sha256=publish()),))
    fetch(fresh, force=True, log=lambda m: None)
    assert (data / "ml-1m" / "ratings.dat").read_text().count("\n") == 50
    assert [p.name for p in data.iterdir()] == ["ml-1m"]
