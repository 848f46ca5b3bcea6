"""MovieLens 1M (`::`, Latin-1, three joined files) and 20M (CSV with headers, quoted titles) readers, on small
files written here in the original formats (the real releases are not in ../shared/data)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import CARDS

from leanrec.data import load_card, load_dataset
from leanrec.data.preprocess import PrepConfig, split_indices
from leanrec.errors import DataError

GENRES = ["Animation|Children's|Comedy", "Drama", "Action|Thriller", "Comedy|Romance", "Sci-Fi"]


def _ml1m(root, n=600, *, bad_ratings=None, bad_users=None):
    """Write ml-1m/{ratings,users,movies}.dat; returns (ratings rows, users by id, movies by id)."""
    rng = np.random.default_rng(7)
    d = root / "ml-1m"
    d.mkdir(exist_ok=True)
    users = {u: ("MF"[u % 2], str([1, 18, 25, 35][u % 4]), str(u % 21), f"{10000 + u}") for u in range(1, 41)}
    movies = {m: (f"Caf\u00e9 {m} (19{m % 90 + 10})", GENRES[m % len(GENRES)]) for m in range(1, 31)}
    ratings = [(int(rng.integers(1, 41)), int(rng.integers(1, 31)), int(rng.integers(1, 6)),
                978300000 + i) for i in range(n)]
    lines = [f"{u}::{m}::{r}::{t}" for u, m, r, t in ratings]
    for k, row in (bad_ratings or {}).items():
        lines[k] = row
    (d / "ratings.dat").write_text("\n".join(lines) + "\n", encoding="latin1")
    ulines = [f"{u}::{g}::{a}::{o}::{z}" for u, (g, a, o, z) in users.items()]
    for k, row in (bad_users or {}).items():
        ulines[k] = row
    (d / "users.dat").write_text("\n".join(ulines) + "\n", encoding="latin1")
    (d / "movies.dat").write_text("".join(f"{m}::{t}::{g}\n" for m, (t, g) in movies.items()), encoding="latin1")
    return ratings, users, movies


def _load(name, root, monkeypatch, **kw):
    monkeypatch.setenv("LEANREC_DATA_DIR", str(root))
    return load_dataset(load_card(CARDS / f"{name}.toml"), cache_dir=root / "cache", progress=False,
                        **kw)


def _decode(ds, split, field):
    """Raw values of `field` in a split, from the codes and the vocabulary (train rows never decode to OOV)."""
    v = ds.vocab(field).to_pydict()
    lookup = dict(zip(v["code"], v["value"]))
    return [lookup[c] for c in np.asarray(getattr(ds, split).X[:, ds.field_names.index(field)]).tolist()]


def test_ml1m_reads_joins_and_labels(tmp_path, monkeypatch):
    ratings, users, movies = _ml1m(tmp_path)
    ds = _load("movielens-1m", tmp_path, monkeypatch)
    assert ds.field_names == ["user", "item", "gender", "age", "occupation", "zip", "genre", "genres"]
    y = np.concatenate([s.y[:, 0] for s in ds.splits.values()])
    assert len(y) == len(ratings) and y.sum() == sum(r >= 4 for _, _, r, _ in ratings)
    # train rows, decoded back through the vocabularies, are exactly the joined source rows (file order)
    train = split_indices(len(ratings), PrepConfig(), 0)["train"]
    rows = [ratings[i] for i in train]
    assert _decode(ds, "train", "user") == [str(u) for u, *_ in rows]
    assert _decode(ds, "train", "gender") == [users[u][0] for u, *_ in rows]
    assert _decode(ds, "train", "zip") == [users[u][3] for u, *_ in rows]
    assert _decode(ds, "train", "genres") == [movies[m][1] for _, m, *_ in rows]
    assert _decode(ds, "train", "genre") == [movies[m][1].split("|")[0] for _, m, *_ in rows]
    assert ds.train.y[:, 0].tolist() == [float(r >= 4) for _, _, r, _ in rows]
    groups = np.concatenate([s.group for s in ds.splits.values()])
    assert len(np.unique(groups)) == len({u for u, *_ in ratings})
    by_time = _load("movielens-1m", tmp_path, monkeypatch, overrides={"split": "time"})
    assert np.asarray(by_time.train.group).size == int(len(ratings) * 0.8)


def test_ml1m_malformed_rows_name_file_line_column(tmp_path, monkeypatch):
    _ml1m(tmp_path, bad_ratings={56: "3::7::5"})
    with pytest.raises(DataError) as e:
        _load("movielens-1m", tmp_path, monkeypatch)
    assert e.value.path.endswith("ratings.dat") and e.value.line == 57
    assert "expected 4 columns, found 3" in str(e.value)
    _ml1m(tmp_path, bad_ratings={119: "3::7::4x::978300000"})
    with pytest.raises(DataError) as e:
        _load("movielens-1m", tmp_path, monkeypatch)
    assert (e.value.path.endswith("ratings.dat"), e.value.line, e.value.column) == (True, 120, "rating")
    assert "'4x'" in str(e.value)
    _ml1m(tmp_path, bad_users={4: "5::F::25::7"})
    with pytest.raises(DataError) as e:
        _load("movielens-1m", tmp_path, monkeypatch)
    assert e.value.path.endswith("users.dat") and e.value.line == 5


def _ml20m(root, n=500, *, bad=None, movies_extra=""):
    rng = np.random.default_rng(3)
    d = root / "ml-20m"
    d.mkdir(exist_ok=True)
    ratings = [(int(rng.integers(1, 60)), int(rng.integers(1, 6)), float(rng.integers(1, 11)) / 2,
                1100000000 + i) for i in range(n)]
    lines = ["userId,movieId,rating,timestamp"] + [f"{u},{m},{r:.1f},{t}" for u, m, r, t in ratings]
    for k, row in (bad or {}).items():
        lines[1 + k] = row
    (d / "ratings.csv").write_text("\n".join(lines) + "\n")
    movies = {1: ("Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"),
              2: ('"Great Escape, The (1963)"', "Action|Adventure|Drama|War"),
              3: ('"Two\nLines (2001)"', "(no genres listed)"),  # a quoted value holding a newline
              4: ('"Say ""Hi"", World (1999)"', "Comedy"),
              5: ("Heat (1995)", "Action|Crime|Thriller")}
    (d / "movies.csv").write_text("movieId,title,genres\n" + "".join(f"{m},{t},{g}\n" for m, (t, g) in movies.items())
                                  + movies_extra)
    return ratings, movies


def test_ml20m_headers_quoted_titles_half_stars(tmp_path, monkeypatch):
    ratings, movies = _ml20m(tmp_path)
    ds = _load("movielens-20m", tmp_path, monkeypatch)
    assert ds.field_names == ["user", "item", "genre", "genres"]
    y = np.concatenate([s.y[:, 0] for s in ds.splits.values()])
    assert y.sum() == sum(r >= 4 for _, _, r, _ in ratings) and len(y) == len(ratings)
    train = split_indices(len(ratings), PrepConfig(), 0)["train"]
    assert _decode(ds, "train", "genre") == [movies[ratings[i][1]][1].split("|")[0] for i in train]
    assert _decode(ds, "train", "genres") == [movies[ratings[i][1]][1] for i in train]


def test_ml20m_errors_name_physical_lines(tmp_path, monkeypatch):
    _ml20m(tmp_path, bad={99: "5,3,four,1100000099"})
    with pytest.raises(DataError) as e:
        _load("movielens-20m", tmp_path, monkeypatch)
    assert (e.value.path.endswith("ratings.csv"), e.value.line, e.value.column) == (True, 101, "rating")
    # movies.csv: header (line 1), movie 3's title spans lines 4-5, so the duplicate record 7 starts on line 8
    _ml20m(tmp_path, movies_extra="2,Again (2000),Drama\n")
    with pytest.raises(DataError) as e:
        _load("movielens-20m", tmp_path, monkeypatch)
    assert e.value.path.endswith("movies.csv") and e.value.line == 8 and "duplicate" in str(e.value)
    _ml20m(tmp_path, movies_extra="6,Short row\n")
    with pytest.raises(DataError) as e:
        _load("movielens-20m", tmp_path, monkeypatch)
    assert e.value.line == 8 and "expected 3 columns, found 2" in str(e.value)
