"""Issue-5 acceptance: the DNN baseline on the real Frappe sample (80/10/10, 5 seeds) reaches FuxiCTR's test AUC
on the same split and model, mean within 0.002.

Too slow for CI (five full trainings on 46K rows): it runs only with LEANREC_ACCEPTANCE=1, e.g.

    LEANREC_ACCEPTANCE=1 .venv/bin/python -m pytest -m slow tests/test_frappe_acceptance.py -s

The reference is FuxiCTR 2.3.10's test AUC with the same DNN on the same split, as measured by
benchmarks/bench_frappe_training.py (benchmarks/results/frappe_training.json, when it ran the full
protocol, max 20 epochs); set LEANREC_FUXICTR_AUC to
override it. Without either, the issue's figure (about 0.927) is used.
"""
from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import pytest

from conftest import shared_data

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("LEANREC_ACCEPTANCE") != "1",
                       reason="acceptance run (minutes on 2 cores): set LEANREC_ACCEPTANCE=1"),
]

REPO = Path(__file__).resolve().parents[1]
ISSUE_FUXICTR_AUC = 0.927
TOLERANCE = 0.002
SEEDS = 5


def fuxictr_reference() -> tuple[float, str]:
    """FuxiCTR's test AUC on the same split/model: env override, else the benchmark's measurement, else the issue's."""
    if os.environ.get("LEANREC_FUXICTR_AUC"):
        return float(os.environ["LEANREC_FUXICTR_AUC"]), "LEANREC_FUXICTR_AUC"
    path = REPO / "benchmarks" / "results" / "frappe_training.json"
    if path.exists():
        res = json.loads(path.read_text())
        if res["config"]["epochs"] < 20 or res["config"].get("quick"):
            return ISSUE_FUXICTR_AUC, "issue 5 (the benchmark's FuxiCTR runs were epoch-capped)"
        aucs = [r["loaders"][k]["test_auc"] for r in res["runs"]["fuxictr"] for k in ("parquet", "npz")
                if k in r["loaders"]]
        if aucs:
            return statistics.fmean(aucs), f"{path.name} (FuxiCTR seeds {res['config']['fuxictr_seeds']})"
    return ISSUE_FUXICTR_AUC, "issue 5"


def test_dnn_reaches_fuxictr_auc_on_frappe(tmp_path, capsys):
    shared_data("frappe_nfm_partial", "valid.csv")
    import torch

    from leanrec.runner import parse_method, run_grid

    torch.set_num_threads(int(os.environ.get("LEANREC_THREADS", "2")))
    records = run_grid(["frappe"], [parse_method("dnn")], list(range(SEEDS)), tmp_path / "results",
                       device="cpu", progress=False)
    assert len(records) == SEEDS
    failed = [r for r in records if r["status"] != "ok"]
    assert not failed, failed[0]["error"]["traceback"]
    cfg = records[0]["config"]
    assert list(cfg["hidden"]) == [400, 400, 400] and cfg["embedding_dim"] == 10
    assert cfg["batch_size"] == 1024 and cfg["lr"] == 1e-3
    assert records[0]["training"]["train"]["steps"] > 0
    aucs = [r["metrics"]["auc"] for r in records]
    ref, source = fuxictr_reference()
    mean, std = statistics.fmean(aucs), statistics.stdev(aucs)
    with capsys.disabled():
        print(f"\nFrappe DNN test AUC over {SEEDS} seeds: {mean:.4f} ± {std:.4f} "
              f"({', '.join(f'{a:.4f}' for a in aucs)}); FuxiCTR reference {ref:.4f} [{source}]; "
              f"diff {mean - ref:+.4f}")
    assert abs(mean - ref) <= TOLERANCE, (
        f"mean test AUC {mean:.4f} ± {std:.4f} is not within {TOLERANCE} of FuxiCTR's {ref:.4f} ({source})")
