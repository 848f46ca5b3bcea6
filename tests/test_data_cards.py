"""Dataset cards: validation with clear errors, built-in cards, registration through the plugin hook."""
from __future__ import annotations

import pytest
from conftest import CARDS

from leanrec import builtin_datasets
from leanrec.data import DatasetCard, load_card, load_dataset
from leanrec.data.cards import data_root
from leanrec.errors import ConfigError, UnknownNameError
from leanrec.plugins import load_registry

BUILTIN = {"synthetic", "frappe", "frappe-libfm", "criteo", "avazu", "movielens-100k", "movielens-1m", "movielens-20m",
           "ipinyou"}


def test_builtin_cards_register_through_the_hook():
    reg = load_registry([builtin_datasets], entry_points=False)
    assert set(reg.datasets) == BUILTIN
    assert reg.plugins["leanrec.builtin_datasets"].errors == []
    assert isinstance(reg.dataset("criteo"), DatasetCard)
    with pytest.raises(UnknownNameError, match="Did you mean 'frappe'"):
        reg.dataset("frapé")


def test_load_dataset_by_registered_name(monkeypatch, tmp_path):
    import leanrec.plugins

    reg = load_registry([builtin_datasets], entry_points=False)
    monkeypatch.setattr(leanrec.plugins, "registry", lambda: reg)
    ds = load_dataset("synthetic", overrides={"synthetic": {"n_rows": 3000}}, cache_dir=tmp_path, progress=False)
    assert ds.name == "synthetic" and sum(len(s) for s in ds.splits.values()) == 3000


def _write(tmp_path, text):
    p = tmp_path / "card.toml"
    p.write_text(text)
    return p


BASE = 'name = "x"\n[source]\nfiles = { all = "x.csv" }\n[[labels]]\nname = "y"\n'


@pytest.mark.parametrize("text, message", [
    ("colour = 1\n" + BASE, r"card.toml top level key\(s\): 'colour'"),
    (BASE.replace("[source]", "[source]\ndelimeter = ','"), r"\[source\] key\(s\): 'delimeter' \(did you mean 'delimiter'\?\)"),
    (BASE + '[split]\nmethod = "random"\nratio = [0.8, 0.1, 0.1]\n', r"'ratio' \(did you mean 'ratios'\?\)"),
    (BASE + "[preprocess]\nmin_counts = 3\n", r"\[preprocess\].*'min_counts' \(did you mean 'min_count'\?\)"),
    (BASE + '[split]\nmethod = "sideways"\n', "method 'sideways' is not one of"),
    ('name = "x"\n[source]\nfiles = { all = "x.csv" }\n', r"\[\[labels\]\]"),
    ('name = "x"\n[source]\nformat = "xlsx"\nfiles = { all = "x.csv" }\n[[labels]]\nname = "y"\n', "format 'xlsx'"),
    ('name = "x"\n[source]\nfiles = { all = "a", train = "b" }\n[[labels]]\nname = "y"\n', "files must be"),
    ("name = \n", "invalid TOML"),
])
def test_invalid_cards_name_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_card(_write(tmp_path, text))
    assert "card.toml" in str(e.value)


def test_field_kind_must_be_known(tmp_path):
    text = 'name = "x"\nfields = [{ name = "a", kind = "text" }]\n' + BASE.split("\n", 1)[1]
    with pytest.raises(ConfigError, match="kind 'text'"):
        load_card(_write(tmp_path, text))


def test_unknown_override_key(tmp_path):
    with pytest.raises(ConfigError, match="min_cont"):
        load_dataset(CARDS / "synthetic.toml", overrides={"min_cont": 2}, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="n_rowz"):
        load_dataset(CARDS / "synthetic.toml", overrides={"synthetic": {"n_rowz": 2}}, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="only applies to synthetic"):
        load_dataset(CARDS / "frappe.toml", overrides={"synthetic": {"n_rows": 2}}, cache_dir=tmp_path)


def test_data_root_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("LEANREC_DATA_DIR", str(tmp_path))
    assert data_root() == tmp_path
    assert load_card(CARDS / "frappe.toml").resolve("frappe_nfm_partial/valid.csv") == \
        tmp_path / "frappe_nfm_partial" / "valid.csv"
    card = load_card(_write(tmp_path, BASE.replace("[source]", '[source]\nbase = "card"')))
    assert card.resolve("x.csv") == tmp_path / "x.csv"


def test_missing_source_file_says_how_to_fix(monkeypatch, tmp_path):
    from leanrec.errors import DataError

    monkeypatch.setenv("LEANREC_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="file not found.*leanrec data fetch"):
        load_dataset(CARDS / "criteo.toml", cache_dir=tmp_path, progress=False)
