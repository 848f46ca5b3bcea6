"""CUDA readiness checked on CPU: tensors made inside the nn blocks follow the module's device (the `meta`
device stands in for a GPU: any tensor created on the host would mix devices and fail)."""
from __future__ import annotations

import torch

from leanrec.nn import FieldEmbedding, FieldSpec


def _fields(n=3, vocab=5):
    return [FieldSpec(f"f{i}", vocab) for i in range(n)]


def test_zero_dim_field_rows_live_on_the_module_device():
    emb = FieldEmbedding(_fields(), [0, 3, 2]).to("meta")
    assert emb.field_rows(0).device.type == "meta" and emb.field_rows(0).shape == (5, 0)
    assert emb.field_rows(1).device.type == "meta"


def test_mixed_dim_scaling_builds_nothing_on_the_host():
    emb = FieldEmbedding(_fields(), [1, 3, 2]).to("meta")
    X = torch.zeros(4, 3, dtype=torch.long, device="meta")
    E = emb(X)
    out = emb.scale(E, torch.ones(4, 3, device="meta"))
    assert out.device.type == "meta" and out.shape == (4, 6)


def test_mixed_dim_scaling_matches_a_loop():
    emb = FieldEmbedding(_fields(), [1, 3, 2])
    X = torch.randint(0, 5, (7, 3))
    w = torch.rand(7, 3)
    E = emb(X)
    expected = torch.cat([E[:, 0:1] * w[:, 0:1], E[:, 1:4] * w[:, 1:2], E[:, 4:6] * w[:, 2:3]], dim=1)
    torch.testing.assert_close(emb.scale(E, w), expected)
