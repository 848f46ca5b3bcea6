"""docs/plugins.md is enough to write a plugin: its Python snippets run as written (in order, as one module),
and what they define registers cleanly as a plugin."""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "plugins.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_snippets(text: str) -> list[str]:
    """The bodies of the ```python blocks of a Markdown text, in order."""
    return FENCE.findall(text)


def test_snippet_extraction_finds_every_python_block():
    text = DOC.read_text()
    assert len(python_snippets(text)) == text.count("```python") >= 4


@pytest.fixture
def docs_module(monkeypatch):
    """A fresh module that the page's snippets run in (registered in sys.modules like a real plugin module)."""
    module = types.ModuleType("leanrec_docs_plugin_snippets")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


def test_snippets_run_as_written(docs_module, capsys):
    for i, code in enumerate(python_snippets(DOC.read_text())):
        try:
            exec(compile(code, f"{DOC}:snippet{i + 1}", "exec"), docs_module.__dict__)
        except Exception as exc:  # pragma: no cover - the message says which snippet broke
            pytest.fail(f"snippet {i + 1} of docs/plugins.md raised {type(exc).__name__}: {exc}\n{code}")
    ns = docs_module.__dict__
    # the try-it snippet ran the method: a checked FitResult keeping round(keep_ratio * F) fields
    result, data = ns["result"], ns["data"]
    assert len(result.selected_fields) == round(0.5 * len(data.fields))
    assert set(ns["ctx"].stage_times) == {"search", "prune", "retrain"}
    assert str(result.selected_fields) in capsys.readouterr().out


def test_docs_plugin_drops_fields_exactly(docs_module):
    """The docs' transfer_fields is right: the pruned model equals the full one with the dropped fields'
    representations masked to zero (an oracle computed with field_weights on the unpruned model)."""
    import torch

    from leanrec.methods import field_specs
    from leanrec.testing import tiny_dataset

    method_snippet = next(c for c in python_snippets(DOC.read_text()) if "class GatedFwFMModel" in c)
    exec(compile(method_snippet, "method snippet", "exec"), docs_module.__dict__)
    data = tiny_dataset(n=200)
    torch.manual_seed(0)
    model = docs_module.GatedFwFMModel(field_specs(data), 4)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    keep = [1, 3, 4, 6]
    mask = torch.zeros(len(data.fields))
    mask[keep] = 1.0
    X = torch.as_tensor(data.train.X)
    with torch.no_grad():
        assert torch.allclose(model.drop_fields(keep)(X), model(X, field_weights=mask), atol=1e-5)


def test_toml_snippet_is_a_valid_pyproject_with_a_leanrec_entry_point():
    import tomllib

    block = re.search(r"^```toml\n(.*?)^```", DOC.read_text(), re.S | re.M).group(1)
    meta = tomllib.loads(block)
    assert meta["build-system"]["build-backend"] == "setuptools.build_meta"
    (name, target), = meta["project"]["entry-points"]["leanrec"].items()
    assert name == meta["project"]["name"] and re.fullmatch(r"[a-z_]+\.plugin", target)
    assert "leanrec" in meta["project"]["dependencies"]
