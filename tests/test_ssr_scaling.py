"""The SSR scaling script (benchmarks/ssr_scaling.py) on real run records of tiny runs."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

pytest.importorskip("leanrec_ssr")

from leanrec.context import Budget
from leanrec.plugins import registry
from leanrec.records import record_path, write_record
from leanrec.runner import parse_method, run_one
from leanrec.testing import tiny_dataset

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ssr_scaling.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("ssr_scaling", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_scaling_rows_and_plot_from_run_records(tmp_path, one_thread):
    mod = _load_script()
    assert mod.sweep_specs("b", [1, 4], ("ssr-s",)) == ["ssr-s:b=1", "ssr-s:b=4"]
    data = tiny_dataset(600, seed=0)
    reg = registry()
    common = "embedding_dim=4,d_v=4,num_layers=1,epochs=1,batch_size=128"
    specs = [f"ssr-s:b={b},{common}" for b in (1, 4)] + [f"ssr-d:b=2,{common}"]
    for seed in (0, 1):
        for text in specs:
            spec = parse_method(text)
            rec = run_one(reg.method(spec.name), spec, data, seed, budget=Budget(), device=torch.device("cpu"),
                          progress=False, reg=reg)
            assert rec["status"] == "ok", rec.get("error")
            write_record(record_path(tmp_path, data.name, spec.variant, seed), rec)
    rows = mod.collect(tmp_path, "b")
    by_b = {(r["method"], r["b"]): r for r in rows}
    assert set(by_b) == {("ssr-s", 1), ("ssr-s", 4), ("ssr-d", 2)}
    assert all(r["seeds"] == 2 for r in rows)
    # ssr-s curve: the two b values share one curve; backbone params grow with b (b * d_v^2 + ... + head)
    assert by_b[("ssr-s", 1)]["curve"] == by_b[("ssr-s", 4)]["curve"]
    assert by_b[("ssr-s", 4)]["backbone_params"] == 4 * by_b[("ssr-s", 1)]["backbone_params"] - 3
    assert by_b[("ssr-d", 2)]["ics_sparsity"] != "" and by_b[("ssr-s", 1)]["ics_sparsity"] == ""
    out = tmp_path / "scaling.png"
    mod.plot(rows, "b", out)
    mod.write_csv(rows, out.with_suffix(".csv"))
    assert out.stat().st_size > 0 and out.with_suffix(".csv").read_text().count("\n") == 4
    assert "ssr-d" in mod.markdown(rows, "b")
