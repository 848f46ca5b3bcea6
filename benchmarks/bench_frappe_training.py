"""Issue-5 training benchmark on the real Frappe sample: leanrec vs FuxiCTR 2.3.10 vs a plain PyTorch loop.

Same data (the Frappe sample, /work/shared/data/frappe_nfm_partial/valid.csv, 57,722 rows, split 80/10/10 at
random by leanrec's seeded splitter), same model (DNN [400,400,400] + BatchNorm + dropout 0.2, embedding 10),
batch 1024, Adam 1e-3, gradient clipping 10, early stopping on validation AUC (patience 2, LR x0.1 on every
plateau, best weights restored), same thread count (torch.set_num_threads), all in one run:

(a) leanrec: raw CSV -> encoded arrays (load_dataset into a fresh cache dir), training throughput, test AUC,
    raw file -> test AUC end to end (in-process, after imports; a throwaway warm-up load is done first so
    lazily imported modules are not charged to the first seed);
(b) a plain PyTorch loop on leanrec's encoded arrays and split: one nn.Embedding per field, the same MLP,
    a hand-written slicing loop with the same early-stopping protocol;
(c) FuxiCTR 2.3.10 in its own virtual environment (benchmarks/fuxictr_dnn.py, run as a subprocess) on the
    same split exported as raw CSVs to a temp dir: its preprocessing (build_dataset), training on its default
    loader (Ray Data parquet) and on its NpzDataLoader, test AUC.

It also reports the model's FLOP rate (leanrec.measure.flops_per_sample x samples/s, plus the training FLOPs
of a forward+backward step counted by torch's FLOP counter) against a plain torch.matmul on the same cores.

Training samples/s = epochs run x train rows / training time, where the per-epoch validation evaluation is
timed separately and excluded (for all three); times that include it are in the JSON too.

Writes benchmarks/results/frappe_training.json and .md (atomically). Timings on a shared machine are noisy:
run it when the machine is quiet and read ratios rather than absolute numbers.

Usage (from the repo root, leanrec's venv; the FuxiCTR venv is made once, see --fuxictr-python):

    python -m venv /tmp/venv-fuxictr && /tmp/venv-fuxictr/bin/pip install fuxictr==2.3.10 "polars<2"
    # torch for that venv: pip install torch, or (as here) a .pth line pointing at leanrec's site-packages
    .venv/bin/python benchmarks/bench_frappe_training.py --seeds 3 --fuxictr-seeds 3
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as scipy_stats
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
RAW_CSV = Path(os.environ.get("LEANREC_FRAPPE_CSV", "/work/shared/data/frappe_nfm_partial/valid.csv"))
DEFAULT_FUXICTR_PYTHON = "/tmp/venv-fuxictr/bin/python"

# FuxiCTR numbers the issue gives for this machine kind (quiet machine) and the targets it sets.
ISSUE_REFERENCE = {"fuxictr_prep_s": [35.0, 42.0], "fuxictr_default_samples_per_s": 4800.0,
                   "fuxictr_npz_samples_per_s": 20000.0, "plain_samples_per_s": 20000.0, "fuxictr_test_auc": 0.927}
TARGETS = {"prep_speedup_min": 50.0, "train_vs_npz_min": 1.0, "train_vs_default_min": 4.0,
           "end_to_end_speedup_min": 5.0, "auc_abs_diff_max": 0.001}

HIDDEN = [400, 400, 400]
EMBEDDING_DIM = 10
BATCH_SIZE = 1024
LR = 1e-3
DROPOUT = 0.2
GRAD_CLIP = 10.0
PATIENCE = 2
LR_DECAY = 0.1


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def mean_std(xs: list[float]) -> dict[str, float | None]:
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)}


# ---- (a) leanrec -------------------------------------------------------------------------------------------
class EvalTimer:
    """Times leanrec.trainer.predict_logits (the per-epoch validation pass) so it can be excluded."""

    def __init__(self):
        import leanrec.trainer as trainer

        self.trainer, self.orig, self.seconds = trainer, trainer.predict_logits, 0.0

    def __enter__(self):
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return self.orig(*a, **k)
            finally:
                self.seconds += time.perf_counter() - t

        self.trainer.predict_logits = timed
        return self

    def __exit__(self, *exc):
        self.trainer.predict_logits = self.orig


def run_leanrec(seed: int, epochs: int) -> tuple[dict[str, Any], Any, nn.Module]:
    import leanrec.methods as lm
    from leanrec.context import RunContext, seed_everything
    from leanrec.data import load_dataset
    from leanrec.measure import quality

    with tempfile.TemporaryDirectory(prefix="leanrec-bench-cache-") as cache:
        t0 = time.perf_counter()
        ds = load_dataset("frappe", seed=seed, cache_dir=cache, progress=False)
        prep_s = time.perf_counter() - t0
        # read the memory maps into memory before the cache dir goes away (counted: part of end to end)
        t1 = time.perf_counter()
        seed_everything(seed)
        method = lm.get_backbone("dnn", {"hidden": HIDDEN, "embedding_dim": EMBEDDING_DIM, "batch_size": BATCH_SIZE,
                                         "lr": LR, "epochs": epochs, "patience": PATIENCE, "lr_decay": LR_DECAY,
                                         "grad_clip": GRAD_CLIP, "dropout": DROPOUT})
        model = method.build_model(lm.field_specs(ds))
        ctx = RunContext(device=torch.device("cpu"), seed=seed, progress=False)
        train_t, valid_t, test_t = (ctx.tensors(ds, s) for s in ("train", "valid", "test"))
        setup_s = time.perf_counter() - t1
        with EvalTimer() as et:
            t2 = time.perf_counter()
            result = ctx.train(model, ds, method.config)
            fit_s = time.perf_counter() - t2
        t3 = time.perf_counter()
        q = quality(model, test_t)
        test_s = time.perf_counter() - t3
        n_train = len(train_t)
        train_s = fit_s - et.seconds
        rec = {
            "prep_s": prep_s, "build_seconds_in_meta": ds.meta.get("build_seconds"), "setup_s": setup_s,
            "epochs_run": result.epochs_run, "best_epoch": result.best_epoch, "n_train": n_train,
            "fit_s": fit_s, "valid_eval_s": et.seconds, "train_s": train_s,
            "samples_per_s": result.epochs_run * n_train / train_s,
            "samples_per_s_incl_eval": result.epochs_run * n_train / fit_s,
            "best_valid_auc": result.best_valid_auc, "test_auc": q["auc"], "test_logloss": q["logloss"],
            "test_eval_s": test_s, "end_to_end_s": prep_s + setup_s + fit_s + test_s,
            "rows": {"train": len(train_t), "valid": len(valid_t), "test": len(test_t)},
        }
        data = {"train": (ds.train.X.copy(), ds.train.y.copy()), "valid": (ds.valid.X.copy(), ds.valid.y.copy()),
                "test": (ds.test.X.copy(), ds.test.y.copy()), "vocab": [f.vocab_size for f in ds.fields]}
    return rec, data, model


# ---- (b) plain per-field nn.Embedding PyTorch loop ---------------------------------------------------------
class PlainDNN(nn.Module):
    """One nn.Embedding per field, concatenated, then Linear-BN-ReLU-Dropout x3 and a Linear output."""

    def __init__(self, vocab_sizes: list[int], dim: int, hidden: list[int], dropout: float):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(v, dim) for v in vocab_sizes)
        for e in self.embeddings:
            nn.init.normal_(e.weight, std=1e-2)
        layers: list[nn.Module] = []
        prev = dim * len(vocab_sizes)
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(dropout)]
            prev = h
        layers.append(nn.Linear(prev, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        emb = torch.cat([e(X[:, i]) for i, e in enumerate(self.embeddings)], dim=1)
        return self.mlp(emb).squeeze(-1)


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from leanrec.metrics import roc_auc

    return float(roc_auc(y, s))


@torch.no_grad()
def _predict(model: nn.Module, X: torch.Tensor, bs: int = 16384) -> np.ndarray:
    model.eval()
    out = torch.cat([model(X[i:i + bs]) for i in range(0, len(X), bs)]).numpy()
    model.train()
    return out


def run_plain(seed: int, data: dict, epochs: int) -> dict[str, Any]:
    torch.manual_seed(seed)
    np.random.seed(seed)
    Xtr, ytr = (torch.from_numpy(np.ascontiguousarray(a)) for a in data["train"])
    Xtr = Xtr.long()
    ytr = ytr[:, 0].float()
    Xva, yva = torch.from_numpy(data["valid"][0]).long(), data["valid"][1][:, 0]
    Xte, yte = torch.from_numpy(data["test"][0]).long(), data["test"][1][:, 0]
    model = PlainDNN(data["vocab"], EMBEDDING_DIM, HIDDEN, DROPOUT)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    n = len(Xtr)
    best, best_state, bad, epochs_run, eval_s = -math.inf, None, 0, 0, 0.0
    t0 = time.perf_counter()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, BATCH_SIZE):
            idx = perm[i:i + BATCH_SIZE]
            loss = nn.functional.binary_cross_entropy_with_logits(model(Xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            opt.step()
        epochs_run += 1
        te = time.perf_counter()
        auc = _auc(yva, _predict(model, Xva))
        eval_s += time.perf_counter() - te
        if auc > best:
            best, bad, best_state = auc, 0, copy.deepcopy(model.state_dict())
        else:
            bad += 1
            for g in opt.param_groups:
                g["lr"] = max(g["lr"] * LR_DECAY, 1e-6)
            if bad >= PATIENCE:
                break
    fit_s = time.perf_counter() - t0
    model.load_state_dict(best_state)
    test_auc = _auc(yte, _predict(model, Xte))
    train_s = fit_s - eval_s
    return {"epochs_run": epochs_run, "n_train": n, "fit_s": fit_s, "valid_eval_s": eval_s, "train_s": train_s,
            "samples_per_s": epochs_run * n / train_s, "samples_per_s_incl_eval": epochs_run * n / fit_s,
            "best_valid_auc": best, "test_auc": test_auc}


# ---- (c) FuxiCTR in its own venv ---------------------------------------------------------------------------
def export_split_csvs(seed: int, out_dir: Path, check_y: np.ndarray) -> dict[str, int]:
    """Write the raw rows of leanrec's split for `seed` as train/valid/test CSVs (same header as the source)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    from leanrec.data.preprocess import PrepConfig, split_indices

    table = pacsv.read_csv(RAW_CSV)
    splits = split_indices(table.num_rows, PrepConfig(split="random", ratios=(0.8, 0.1, 0.1)), seed)
    labels = table.column("label").to_numpy()
    if not np.array_equal(labels[splits["train"]].astype(np.float32), check_y[:, 0]):
        raise RuntimeError("exported split does not match leanrec's encoded train split")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, idx in splits.items():
        pacsv.write_csv(table.take(pa.array(idx)), out_dir / f"{name}.csv",
                        pacsv.WriteOptions(quoting_style="none"))
    return {k: int(len(v)) for k, v in splits.items()}


def run_fuxictr(seed: int, python: str, threads: int, epochs: int, check_y: np.ndarray, loaders: str,
                timeout: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fuxictr-bench-") as tmp:
        tmp = Path(tmp)
        rows = export_split_csvs(seed, tmp / "csv", check_y)
        cmd = [python, str(REPO / "benchmarks" / "fuxictr_dnn.py"), "--data-dir", str(tmp / "csv"),
               "--work-dir", str(tmp / "work"), "--seed", str(seed), "--threads", str(threads),
               "--epochs", str(epochs), "--patience", str(PATIENCE), "--batch-size", str(BATCH_SIZE),
               "--lr", str(LR), "--embedding-dim", str(EMBEDDING_DIM), "--hidden", ",".join(map(str, HIDDEN)),
               "--dropout", str(DROPOUT), "--loaders", loaders, "--out", str(tmp / "result.json")]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "RAY_DEDUP_LOGS": "0"}
        env.pop("PYTHONPATH", None)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not (tmp / "result.json").exists():
            tail = (proc.stderr or "")[-3000:]
            raise RuntimeError(f"FuxiCTR run failed (rc={proc.returncode}):\n{tail}")
        out = json.loads((tmp / "result.json").read_text())
    out["process_wall_s"] = wall
    out["rows"] = rows
    return out


# ---- FLOP rates ---------------------------------------------------------------------------------------------
def train_flops_per_sample(model: nn.Module, X: torch.Tensor) -> float:
    """FLOPs of one forward+backward training step per sample (torch's FLOP counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        loss = model(X).float().sum()
        loss.backward()
    model.zero_grad(set_to_none=True)
    model.eval()
    return counter.get_total_flops() / X.shape[0]


def matmul_gflops(m: int, k: int, n: int, seconds: float = 2.0) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        torch.matmul(a, b)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.matmul(a, b)
        reps += 1
    return 2.0 * m * k * n * reps / (time.perf_counter() - t0) / 1e9


# ---- report -------------------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def hardware() -> dict[str, Any]:
    cpu = cpu_model()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "loadavg_1_5_15": list(load) if load else None}


def versions(fux: list[dict]) -> dict[str, Any]:
    import leanrec

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    v = {"leanrec": leanrec.__version__, "git_commit": commit, "python": platform.python_version(),
         "torch": torch.__version__, "numpy": np.__version__}
    if fux:
        v.update({"fuxictr": fux[0].get("fuxictr_version"), "fuxictr_torch": fux[0].get("torch_version"),
                  "fuxictr_polars": fux[0].get("polars_version"), "fuxictr_python": fux[0].get("python")})
    return v


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def summarize(lean: list[dict], plain: list[dict], fux: list[dict]) -> dict[str, Any]:
    def col(rows, key, sub=None):
        return [(r[sub][key] if sub else r[key]) for r in rows if (r.get(sub) if sub else True)]

    s: dict[str, Any] = {
        "leanrec": {k: mean_std(col(lean, k)) for k in
                    ("prep_s", "samples_per_s", "samples_per_s_incl_eval", "test_auc", "end_to_end_s", "epochs_run")},
        "plain": {k: mean_std(col(plain, k)) for k in ("samples_per_s", "samples_per_s_incl_eval", "test_auc",
                                                       "epochs_run")},
    }
    if fux:
        f: dict[str, Any] = {"prep_s": mean_std(col(fux, "prep_s")),
                             "end_to_end_s": mean_std(col(fux, "end_to_end_s")),
                             "process_wall_s": mean_std(col(fux, "process_wall_s"))}
        for loader in ("parquet", "npz"):
            rows = [r["loaders"][loader] for r in fux if loader in r["loaders"]]
            f[loader] = {k: mean_std([r[k] for r in rows]) for k in
                         ("samples_per_s", "samples_per_s_incl_eval", "test_auc", "epochs_run")}
        s["fuxictr"] = f
    return s


def targets(summary: dict, lean: list[dict], fux: list[dict]) -> list[dict[str, Any]]:
    out = []
    L, F = summary["leanrec"], summary.get("fuxictr")

    def add(name, value, threshold, ok, note=""):
        out.append({"target": name, "value": value, "threshold": threshold,
                    "pass": None if value is None else bool(ok), "note": note})

    if not F:
        return [{"target": "all", "value": None, "threshold": None, "pass": None, "note": "FuxiCTR not run"}]
    lean_by_seed = {r["seed"]: r for r in lean}

    def same_seed_note(fn) -> str:
        """`fn(leanrec_run, fuxictr_run)` on every seed both ran, as a note (None values skipped)."""
        vals = [fn(lean_by_seed[r["seed"]], r) for r in fux if r["seed"] in lean_by_seed]
        vals = [v for v in vals if v is not None]
        return ("same-seed ratio " + ", ".join(f"{v:.2f}" for v in vals)) if vals else ""

    prep = F["prep_s"]["mean"] / L["prep_s"]["mean"]
    add("raw CSV prep speedup vs FuxiCTR (x)", prep, TARGETS["prep_speedup_min"], prep >= TARGETS["prep_speedup_min"],
        same_seed_note(lambda lr, fr: fr["prep_s"] / lr["prep_s"]))
    sps = L["samples_per_s"]["mean"]
    npz = F["npz"]["samples_per_s"]["mean"] if F["npz"]["samples_per_s"]["n"] else None
    dft = F["parquet"]["samples_per_s"]["mean"] if F["parquet"]["samples_per_s"]["n"] else None

    def ratio(loader):
        return lambda lr, fr: (lr["samples_per_s"] / fr["loaders"][loader]["samples_per_s"]
                               if loader in fr["loaders"] else None)

    if npz is not None:
        add("training samples/s vs FuxiCTR npz loader (x)", sps / npz, TARGETS["train_vs_npz_min"],
            sps / npz >= TARGETS["train_vs_npz_min"], same_seed_note(ratio("npz")))
    if dft is not None:
        add("training samples/s vs FuxiCTR default loader (x)", sps / dft, TARGETS["train_vs_default_min"],
            sps / dft >= TARGETS["train_vs_default_min"], same_seed_note(ratio("parquet")))
    if F["end_to_end_s"]["n"]:
        e2e = F["end_to_end_s"]["mean"] / L["end_to_end_s"]["mean"]
        add("raw file -> test AUC end-to-end speedup (x)", e2e, TARGETS["end_to_end_speedup_min"],
            e2e >= TARGETS["end_to_end_speedup_min"],
            same_seed_note(lambda lr, fr: fr["end_to_end_s"] / lr["end_to_end_s"] if fr.get("end_to_end_s") else None))
    # AUC on the seeds both ran (paired), default loader
    by_seed = {r["seed"]: r["loaders"].get("parquet", r["loaders"].get("npz"))["test_auc"] for r in fux}
    paired = [(r["test_auc"], by_seed[r["seed"]]) for r in lean if r["seed"] in by_seed]
    if paired:
        d = statistics.fmean(a for a, _ in paired) - statistics.fmean(b for _, b in paired)
        note = f"{len(paired)} paired seed(s)" + ("" if len(paired) >= 3 else "; the issue asks for 3+")
        # context: FuxiCTR's own spread on the same seeds, model and data (its two loaders differ)
        npz_auc = {r["seed"]: r["loaders"]["npz"]["test_auc"] for r in fux if "npz" in r["loaders"]}
        both = [(r["test_auc"], npz_auc[r["seed"]]) for r in lean if r["seed"] in npz_auc]
        if both and "parquet" in fux[0]["loaders"]:
            d_npz = statistics.fmean(a for a, _ in both) - statistics.fmean(b for _, b in both)
            own = statistics.fmean(by_seed[s] - npz_auc[s] for s in npz_auc if s in by_seed)
            welch = scipy_stats.ttest_ind([a for a, _ in paired], [b for _, b in paired], equal_var=False).pvalue
            note += (f"; vs FuxiCTR's npz loader {d_npz:+.4f}; FuxiCTR default minus its own npz run on the same "
                     f"seeds {own:+.4f}; Welch t-test leanrec vs default p = {welch:.2f}")
        add("test AUC leanrec - FuxiCTR (mean, same seeds)", d, TARGETS["auc_abs_diff_max"],
            abs(d) <= TARGETS["auc_abs_diff_max"], note)
    return out


def fmt(x, nd=1):
    if x is None:
        return "-"
    return f"{x:,.{nd}f}"


def ms(d, nd=1):
    if not d or d.get("mean") is None:
        return "-"
    return f"{fmt(d['mean'], nd)} ± {fmt(d['std'], nd)} (n={d['n']})"


def markdown(res: dict) -> str:
    s, L, P = res["summary"], res["summary"]["leanrec"], res["summary"]["plain"]
    F = s.get("fuxictr")
    lines = [
        "# Frappe training benchmark: leanrec vs FuxiCTR 2.3.10 vs a plain PyTorch loop", "",
        f"Command: `{res['command']}`", "",
        f"Date: {res['date']}. Hardware: {res['hardware']['cpu']}, {res['hardware']['cpu_count']} cores, "
        f"torch threads {res['config']['threads']}; load average at start/end "
        f"{res['hardware']['loadavg_1_5_15']} / {res['hardware_end']['loadavg_1_5_15']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()) + ".", "",
        "**Timings are noisy:** the machine's 2 cores are shared with other engineers' jobs (see the load "
        "average), so absolute samples/s and seconds are depressed and vary run to run; the ratios, measured "
        "seed by seed in the same run, are the meaningful part.", "",
        f"Setup: Frappe sample ({res['config']['rows']}), random 80/10/10 split per seed (leanrec's splitter; "
        "FuxiCTR gets the same rows as CSVs), DNN [400,400,400] + BatchNorm + dropout 0.2, embedding 10, batch 1024, "
        f"Adam 1e-3, grad clip 10, early stopping on valid AUC (patience 2, LR x0.1 per plateau, max "
        f"{res['config']['epochs']} epochs, best weights restored). Seeds: leanrec/plain {res['config']['seeds']}, "
        f"FuxiCTR {res['config']['fuxictr_seeds']}. Training samples/s exclude the per-epoch validation pass.", "",
        "## Results (mean ± std over seeds)", "",
        "| | prep raw CSV -> arrays (s) | train samples/s | epochs | test AUC | raw file -> test AUC (s) |",
        "|---|---|---|---|---|---|",
        f"| leanrec | {ms(L['prep_s'], 2)} | {ms(L['samples_per_s'], 0)} | {ms(L['epochs_run'], 1)} | "
        f"{ms(L['test_auc'], 4)} | {ms(L['end_to_end_s'], 1)} |",
        f"| plain per-field nn.Embedding loop | (uses leanrec's arrays) | {ms(P['samples_per_s'], 0)} | "
        f"{ms(P['epochs_run'], 1)} | {ms(P['test_auc'], 4)} | - |",
    ]
    if F:
        lines += [
            f"| FuxiCTR, default loader (Ray Data parquet) | {ms(F['prep_s'], 1)} | {ms(F['parquet']['samples_per_s'], 0)} | "
            f"{ms(F['parquet']['epochs_run'], 1)} | {ms(F['parquet']['test_auc'], 4)} | {ms(F['end_to_end_s'], 1)} |",
            f"| FuxiCTR, NpzDataLoader | (same prep + npz save) | {ms(F['npz']['samples_per_s'], 0)} | "
            f"{ms(F['npz']['epochs_run'], 1)} | {ms(F['npz']['test_auc'], 4)} | - |",
        ]
    lines += ["", "Per seed:", "", "| seed | leanrec AUC | plain AUC | FuxiCTR AUC (default / npz) | leanrec samples/s | "
              "plain samples/s | FuxiCTR samples/s (default / npz) | leanrec prep s | FuxiCTR prep s |",
              "|---|---|---|---|---|---|---|---|---|"]
    fx = {r["seed"]: r for r in res["runs"]["fuxictr"]}
    for lr_, pl_ in zip(res["runs"]["leanrec"], res["runs"]["plain"]):
        f = fx.get(lr_["seed"])
        fa = (f"{f['loaders']['parquet']['test_auc']:.4f} / {f['loaders']['npz']['test_auc']:.4f}"
              if f and "npz" in f["loaders"] and "parquet" in f["loaders"] else "-")
        fs = (f"{f['loaders']['parquet']['samples_per_s']:,.0f} / {f['loaders']['npz']['samples_per_s']:,.0f}"
              if f and "npz" in f["loaders"] and "parquet" in f["loaders"] else "-")
        lines.append(f"| {lr_['seed']} | {lr_['test_auc']:.4f} | {pl_['test_auc']:.4f} | {fa} | "
                     f"{lr_['samples_per_s']:,.0f} | {pl_['samples_per_s']:,.0f} | {fs} | {lr_['prep_s']:.2f} | "
                     f"{fmt(f['prep_s'], 1) if f else '-'} |")
    lines += ["", "## Targets (issue 5)", "", "| target | measured | threshold | pass |", "|---|---|---|---|"]
    for t in res["targets"]:
        v = t["value"]
        vs = "-" if v is None else (f"{v:+.4f}" if t["target"].startswith("test AUC") else f"{v:,.1f}")
        p = {True: "PASS", False: "FAIL", None: "n/a"}[t["pass"]]
        lines.append(f"| {t['target']} | {vs} | {t['threshold']} | {p}{' (' + t['note'] + ')' if t['note'] else ''} |")
    fl = res["flops"]
    lines += ["", "## FLOP rate", "",
              f"- Model forward FLOPs/sample (leanrec.measure.flops_per_sample): {fl['forward_flops_per_sample']:,.0f}; "
              f"training step (forward+backward, torch FLOP counter): {fl['train_flops_per_sample']:,.0f}.",
              f"- leanrec training: {fmt(fl['leanrec_forward_gflops'], 2)} GFLOP/s by forward FLOPs x samples/s; "
              f"{fmt(fl['leanrec_train_gflops'], 2)} GFLOP/s counting forward+backward.",
              f"- plain loop training: {fmt(fl['plain_train_gflops'], 2)} GFLOP/s (forward+backward).",
              f"- torch.matmul on the same {res['config']['threads']} threads: "
              + ", ".join(f"{k}: {v:.1f} GFLOP/s" for k, v in fl["matmul_gflops"].items()) + ".",
              f"- leanrec training reaches {fmt(100 * fl['leanrec_train_fraction_of_matmul'], 1)}% of the "
              f"{fl['matmul_reference']} matmul rate (small 400-wide layers, embedding gathers/scatters, BatchNorm, "
              "Adam and Python per-batch overhead make up the rest).", ""]
    if F:
        lines += ["## Reference numbers from the issue (quiet machine)", "",
                  f"FuxiCTR: prep 35-42 s, default loader ~4.8K samples/s, npz loader ~20K samples/s (= plain loop), "
                  f"test AUC ~0.927. Measured here: prep {ms(F['prep_s'], 1)} s, default "
                  f"{ms(F['parquet']['samples_per_s'], 0)}, npz {ms(F['npz']['samples_per_s'], 0)}, plain "
                  f"{ms(P['samples_per_s'], 0)} samples/s. Absolute numbers are lower than the issue's because of "
                  "the shared, loaded cores; compare ratios.", ""]
    if res.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in res["notes"]] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description="Frappe training benchmark (issue 5): leanrec vs FuxiCTR vs plain loop")
    p.add_argument("--seeds", type=int, default=3, help="seeds for leanrec and the plain loop (0..n-1)")
    p.add_argument("--fuxictr-seeds", type=int, default=None, help="seeds for FuxiCTR (default: --seeds; 0 = skip)")
    p.add_argument("--fuxictr-python", default=os.environ.get("FUXICTR_PYTHON", DEFAULT_FUXICTR_PYTHON))
    p.add_argument("--fuxictr-loaders", default="parquet,npz")
    p.add_argument("--fuxictr-timeout", type=int, default=3600)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=20, help="max epochs (early stopping usually ends sooner)")
    p.add_argument("--quick", action="store_true", help="2 epochs max, 1 seed each (a smoke run)")
    p.add_argument("--out", default=str(RESULTS / "frappe_training"), help="output path without extension")
    p.add_argument("--render-only", action="store_true",
                   help="re-derive targets and the Markdown from the existing <out>.json (no runs)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.render_only:
        res = json.loads(out.with_suffix(".json").read_text())
        res["summary"] = summarize(res["runs"]["leanrec"], res["runs"]["plain"], res["runs"]["fuxictr"])
        res["targets"] = targets(res["summary"], res["runs"]["leanrec"], res["runs"]["fuxictr"])
        write_atomic(out.with_suffix(".json"), json.dumps(res, indent=2) + "\n")
        write_atomic(out.with_suffix(".md"), markdown(res))
        print(markdown(res))
        return res
    if args.quick:
        args.epochs, args.seeds = 2, 1
        args.fuxictr_seeds = 1 if args.fuxictr_seeds is None else min(args.fuxictr_seeds, 1)
    fux_seeds = args.seeds if args.fuxictr_seeds is None else args.fuxictr_seeds
    torch.set_num_threads(args.threads)
    command = "python " + " ".join(shlex.quote(a) for a in
                                   [os.path.relpath(__file__, REPO), *(argv if argv is not None else sys.argv[1:])])
    hw = hardware()
    notes = []

    t_imp = time.perf_counter()
    import leanrec.methods  # noqa: F401
    from leanrec.data import load_dataset
    from leanrec.plugins import registry

    registry()
    with tempfile.TemporaryDirectory() as warm:  # warm-up: lazily imported modules, file cache
        t_w = time.perf_counter()
        load_dataset("frappe", seed=0, cache_dir=warm, progress=False)
        warm_s = time.perf_counter() - t_w
    import_s = time.perf_counter() - t_imp - warm_s
    log(f"imports {import_s:.1f}s, warm-up load {warm_s:.2f}s")

    lean, plain, fux = [], [], []
    model = data = None
    for seed in range(args.seeds):
        rec, data, model = run_leanrec(seed, args.epochs)
        rec["seed"] = seed
        lean.append(rec)
        log(f"seed {seed} leanrec: prep {rec['prep_s']:.2f}s, {rec['epochs_run']} epochs, "
            f"{rec['samples_per_s']:.0f} samples/s, test AUC {rec['test_auc']:.4f}, e2e {rec['end_to_end_s']:.1f}s")
        pr = run_plain(seed, data, args.epochs)
        pr["seed"] = seed
        plain.append(pr)
        log(f"seed {seed} plain: {pr['epochs_run']} epochs, {pr['samples_per_s']:.0f} samples/s, "
            f"test AUC {pr['test_auc']:.4f}")
        if seed < fux_seeds:
            try:
                fr = run_fuxictr(seed, args.fuxictr_python, args.threads, args.epochs, data["train"][1],
                                 args.fuxictr_loaders, args.fuxictr_timeout)
                fr["seed"] = seed
                fux.append(fr)
                log(f"seed {seed} FuxiCTR: prep {fr['prep_s']:.1f}s, " + ", ".join(
                    f"{k} {v['samples_per_s']:.0f} samples/s AUC {v['test_auc']:.4f}" for k, v in fr["loaders"].items()))
            except Exception as exc:  # noqa: BLE001 - the report says what failed
                notes.append(f"FuxiCTR seed {seed} failed: {type(exc).__name__}: {str(exc)[-500:]}")
                log(notes[-1])

    # FLOP rates (serving model of the last leanrec seed; the plain model has the same layers)
    from leanrec.measure import flops_per_sample

    Xs = torch.from_numpy(np.ascontiguousarray(data["test"][0][:BATCH_SIZE]))
    fwd = flops_per_sample(model, Xs[:256])
    trn = train_flops_per_sample(model, Xs)
    mm = {"1024x100 @ 100x400": matmul_gflops(1024, 100, 400), "1024x400 @ 400x400": matmul_gflops(1024, 400, 400),
          "2048x2048 @ 2048x2048": matmul_gflops(2048, 2048, 2048)}
    ref = "1024x400 @ 400x400"
    lsps = statistics.fmean(r["samples_per_s"] for r in lean)
    psps = statistics.fmean(r["samples_per_s"] for r in plain)
    flops = {"forward_flops_per_sample": fwd, "train_flops_per_sample": trn,
             "leanrec_forward_gflops": fwd * lsps / 1e9, "leanrec_train_gflops": trn * lsps / 1e9,
             "plain_train_gflops": trn * psps / 1e9, "matmul_gflops": mm, "matmul_reference": ref,
             "leanrec_train_fraction_of_matmul": trn * lsps / 1e9 / mm[ref]}
    log(f"FLOPs/sample fwd {fwd:,.0f} train {trn:,.0f}; leanrec {flops['leanrec_train_gflops']:.1f} GFLOP/s; "
        f"matmul {mm}")

    if fux and len(fux) < args.seeds:
        notes.append("Targets compare leanrec's mean over all its seeds with FuxiCTR's over its seeds; the same-seed "
                     "ratios in the notes column pair runs made minutes apart (less exposed to load drift).")
        notes.append(f"FuxiCTR ran {len(fux)} seed(s) against {args.seeds} for leanrec/plain (time); the AUC "
                     "comparison is paired on the common seeds.")
    if args.epochs < 20:
        notes.append(f"max epochs capped at {args.epochs} for all three (time on the shared cores); the AUC comparison "
                     "is like for like, but absolute AUCs can sit below fully early-stopped runs "
                     "(tests/test_frappe_acceptance.py runs the full protocol).")
    if args.quick:
        notes.append("--quick: at most 2 epochs and one seed; not a full benchmark.")
    notes.append("leanrec prep = load_dataset('frappe') into a fresh cache dir (reads the CSV, checks its sha256, "
                 "splits, builds vocabularies, encodes, writes the cache); FuxiCTR prep = FeatureProcessor + "
                 "build_dataset (polars read, vocabularies, Ray transform to parquet), both after imports. End to end = "
                 "prep + model build + training with validation + test AUC, in-process after imports "
                 f"(leanrec's imports took {import_s:.1f}s here; FuxiCTR's "
                 f"{statistics.fmean(r['import_s'] for r in fux) if fux else float('nan'):.1f}s).")
    notes.append("FuxiCTR's venv (/tmp/venv-fuxictr) uses leanrec's torch build through a .pth entry, so both sides "
                 "run the same torch; FuxiCTR's own DNN uses its defaults otherwise (xavier-normal Linear init, "
                 "embedding std 1e-4, sigmoid output + BCE); leanrec and the plain loop use embedding std 1e-2 and "
                 "torch's default Linear init.")
    notes.append("What makes leanrec faster than the plain loop with the same model: its Dropout draws masks from "
                 "the native counter-based generator (leanrec.nn.Dropout; torch's CPU bernoulli_, which the plain "
                 "loop and FuxiCTR use, is slow: see benchmarks/results/dropout.md), Adam runs torch's fused kernel, "
                 "and batches are sliced from one in-memory tensor (no DataLoader).")
    res = {
        "command": command, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "hardware": hw, "hardware_end": hardware(), "versions": versions(fux),
        "config": {"threads": args.threads, "epochs": args.epochs, "seeds": list(range(args.seeds)),
                   "fuxictr_seeds": [r["seed"] for r in fux], "hidden": HIDDEN, "embedding_dim": EMBEDDING_DIM,
                   "batch_size": BATCH_SIZE, "lr": LR, "dropout": DROPOUT, "grad_clip": GRAD_CLIP,
                   "patience": PATIENCE, "lr_decay": LR_DECAY, "quick": args.quick,
                   "rows": lean[0]["rows"] if lean else None, "raw_csv": str(RAW_CSV)},
        "issue_reference": ISSUE_REFERENCE, "leanrec_import_s": import_s, "leanrec_warmup_load_s": warm_s,
        "runs": {"leanrec": lean, "plain": plain, "fuxictr": fux}, "flops": flops, "notes": notes,
    }
    res["summary"] = summarize(lean, plain, fux)
    res["targets"] = targets(res["summary"], lean, fux)
    write_atomic(out.with_suffix(".json"), json.dumps(res, indent=2) + "\n")
    write_atomic(out.with_suffix(".md"), markdown(res))
    log(f"wrote {out.with_suffix('.json')} and .md")
    print(markdown(res))
    return res


if __name__ == "__main__":
    main()
