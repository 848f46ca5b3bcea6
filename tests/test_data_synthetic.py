"""Synthetic data: determinism, ground truth recoverable by MI, interaction structure, streaming writer."""
from __future__ import annotations

import numpy as np
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from leanrec.data import DatasetCard, load_card, load_dataset
from leanrec.data import synthetic
from leanrec.errors import ConfigError

from conftest import CARDS

SYNTHETIC_CARD = CARDS / "synthetic.toml"


def field_label_mi(codes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(F, L) plug-in MI: the statistics engine when its native extension is built, else scikit-learn."""
    try:
        from leanrec.stats import field_label_mi as engine
        return np.asarray(engine(np.ascontiguousarray(codes), labels))
    except ImportError:
        from sklearn.metrics import mutual_info_score
        return np.array([[mutual_info_score(codes[:, f], labels[:, j]) for j in range(labels.shape[1])]
                         for f in range(codes.shape[1])])


def test_generate_is_deterministic_and_shaped():
    a, gt = synthetic.generate(n_rows=5000, seed=3)
    b, _ = synthetic.generate(n_rows=5000, seed=3)
    c, gt_c = synthetic.generate(n_rows=5000, seed=4)
    assert a.equals(b) and not a.equals(c)
    names = [n for n in a.column_names if n != "click"]
    assert len(names) == 20
    roles = gt["informative"] + gt["interaction"] + gt["redundant"] + gt["noise"]
    assert sorted(roles) == sorted(names)  # roles partition the fields
    assert (len(gt["informative"]), len(gt["interaction"]), len(gt["redundant"])) == (5, 2, 3)
    cards = sorted(gt["cardinality"].values())
    assert cards[0] <= 5 and cards[-1] >= 5000  # Criteo-like spread of cardinalities
    for n in names:
        assert a[n].to_numpy().max() < gt["cardinality"][n]


@pytest.mark.parametrize("seed", [0, 1])
def test_mi_ranks_planted_informative_fields_above_noise(seed, tmp_path):
    # min_count=10 sends rare values to OOV: the plug-in MI of a 10K-value noise field is otherwise biased
    # upwards by about (K - 1) / 2N nats, which is what any practitioner would correct for.
    ds = load_dataset(SYNTHETIC_CARD, overrides={"min_count": 10, "synthetic": {"seed": seed}},
                      cache_dir=tmp_path, progress=False)
    mi = field_label_mi(np.asarray(ds.train.X), np.asarray(ds.train.y))[:, 0]
    score = dict(zip(ds.field_names, mi))
    gt = ds.ground_truth
    k = len(gt["informative"])
    top = sorted(score, key=score.get, reverse=True)
    signal = set(gt["informative"]) | set(gt["redundant"])
    assert set(top[:k]) <= signal  # precision@k of informative-or-redundant fields is 1
    assert min(score[f] for f in gt["informative"]) > max(score[f] for f in gt["noise"])
    # the interaction pair is (nearly) invisible alone but informative jointly
    a, b = (ds.field_names.index(f) for f in gt["interaction"])
    joint = np.asarray(ds.train.X[:, a]).astype(np.int64) * 1000 + ds.train.X[:, b]
    joint_mi = field_label_mi(joint[:, None], np.asarray(ds.train.y))[0, 0]
    assert max(score[f] for f in gt["interaction"]) < 0.1 * joint_mi
    assert joint_mi > max(score[f] for f in gt["noise"])


def test_two_labels_conversion_only_after_click(tmp_path):
    ds = load_dataset(SYNTHETIC_CARD, overrides={"synthetic": {"n_rows": 20000, "n_labels": 2}},
                      cache_dir=tmp_path, progress=False)
    y = np.asarray(ds.train.y)
    assert ds.labels == ["click", "conversion"] and y.shape[1] == 2
    assert (y[:, 1] <= y[:, 0]).all() and 0 < y[:, 1].mean() < y[:, 0].mean()


def test_streaming_write_matches_generate(tmp_path):
    table, gt = synthetic.generate(n_rows=2500, seed=5)
    gt_p = synthetic.write(tmp_path / "s.parquet", 2500, "parquet", chunk_rows=1000, seed=5)
    # chunking is part of the stream: default chunk_rows (1M) equals the in-memory table
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 2500
    assert {k: gt_p[k] for k in gt} == gt
    synthetic.write(tmp_path / "full.parquet", 2500, "parquet", seed=5)
    assert pq.read_table(tmp_path / "full.parquet").equals(table)
    synthetic.write(tmp_path / "s.tsv", 1500, "tsv", chunk_rows=700, seed=5)
    t = pcsv.read_csv(tmp_path / "s.tsv", parse_options=pcsv.ParseOptions(delimiter="\t"))
    assert t.num_rows == 1500 and t.column_names == table.column_names
    assert not list(tmp_path.glob("*.tmp"))


def test_streamed_file_loads_through_a_card(tmp_path):
    gt = synthetic.write(tmp_path / "s.parquet", 4000, "parquet", chunk_rows=1500, seed=1)
    (tmp_path / "c.toml").write_text('name = "s"\n[source]\nformat = "parquet"\nbase = "card"\n'
                                     'files = { all = "s.parquet" }\n[[labels]]\nname = "click"\n')
    ds = load_dataset(load_card(tmp_path / "c.toml"), cache_dir=tmp_path, progress=False)
    assert ds.field_names == sorted(gt["cardinality"], key=lambda n: int(n[1:]))


def test_config_validation():
    with pytest.raises(ConfigError, match="n_row"):
        DatasetCard.from_dict({"name": "x", "source": {"format": "synthetic"}, "synthetic": {"n_row": 5}})
    with pytest.raises(ConfigError, match="n_interaction"):
        synthetic.SyntheticConfig.from_options({"n_interaction": 3})
