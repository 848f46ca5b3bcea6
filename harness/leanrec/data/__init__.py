"""The data layer: dataset cards, readers, preprocessing, encoded caches and synthetic data.

Public API::

    from leanrec.data import load_dataset
    ds = load_dataset("frappe", seed=0, overrides={"min_count": 2})
    ds.train.X  # int32 (N, F) codes: 0 = missing, 1 = OOV, >= 2 vocabulary
    ds.train.y  # float32 (N, L) 0/1 labels
"""
from leanrec.data.cards import DatasetCard, load_card
from leanrec.data.dataset import EncodedDataset, FieldInfo, Split, load_dataset, resolve_card

__all__ = ["DatasetCard", "EncodedDataset", "FieldInfo", "Split", "load_card", "load_dataset", "resolve_card"]
