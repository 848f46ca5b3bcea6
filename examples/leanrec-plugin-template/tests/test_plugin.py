"""The plugin's own tests. Run `pytest` after `pip install -e '.[test]'` (the first test needs the install:
leanrec finds plugins through their entry point only)."""
from __future__ import annotations

import torch

from leanrec.context import RunContext, seed_everything
from leanrec.methods import check_fit_result, field_specs
from leanrec.metrics import roc_auc
from leanrec.plugins import load_registry
from leanrec.testing import tiny_dataset
from leanrec_example.plugin import MeanPool, MeanPoolModel

DISTRIBUTION = "leanrec-example"  # [project] name in pyproject.toml


def test_registered_through_the_entry_point():
    reg = load_registry()
    assert DISTRIBUTION in reg.plugins, "not installed? run `pip install -e .` first"
    info = reg.plugins[DISTRIBUTION]
    assert not info.errors, "\n".join(info.errors)
    assert reg.method(MeanPool.name) is MeanPool


def test_fit_returns_what_the_harness_expects_and_learns():
    data = tiny_dataset(n=3000)
    seed_everything(0)  # what the harness does before every fit
    method = MeanPool.from_overrides({"epochs": 6, "batch_size": 128, "lr": 0.03})
    ctx = RunContext(device=torch.device("cpu"), progress=False)
    untrained = method.build_model(field_specs(data)).eval()
    with torch.no_grad():
        before = roc_auc(data.valid.y[:, 0], untrained(torch.as_tensor(data.valid.X)).numpy())
    result = check_fit_result(method.fit(data, ctx), data, MeanPool.name, family=MeanPool.family)
    logits = result.model(torch.as_tensor(data.test.X))
    assert logits.shape == (len(data.test.X),) and torch.isfinite(logits).all()
    # it learned the planted signal: clearly better than the same model untrained (about chance)
    assert ctx.train_results["train"].best_valid_auc > max(before, 0.5) + 0.07


def test_drop_fields_keeps_the_kept_fields_weights():
    data = tiny_dataset(n=64)
    model = MeanPoolModel(field_specs(data), embedding_dim=4, hidden=(8,)).eval()
    keep = [0, 2, 5]
    pruned = model.drop_fields(keep).eval()
    X = torch.as_tensor(data.train.X)
    with torch.no_grad():
        # oracle: the original model's own embedding rows of the kept fields, averaged, through its MLP
        emb = model.embed(X).emb[:, keep]
        expected = model.mlp(emb.mean(dim=1)).squeeze(-1)
        assert torch.allclose(pruned(X), expected, atol=1e-6)
    assert [f.name for f in pruned.fields] == [data.fields[i].name for i in keep]
