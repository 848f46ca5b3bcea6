"""Which fields carry signal on their own, and did the runs that collapsed drop them?

    python benchmarks/field_signal.py frappe --fields item --fields user,daytime,cost,country,city \
        --runs results --variants 'lightfmp*' --variants autofield --key item

Part 1: validation AUC of a logistic regression on the one-hot encoding of each given field set (trained on the
train split of seed 0, scikit-learn). Part 2: for every run record of the dataset whose variant matches a glob,
its seed, test AUC and whether it kept the `--key` field (from the record's selected fields). This is the
evidence behind docs/lightfmp.md's explanation of the Frappe collapses.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from leanrec.data import load_dataset
from leanrec.leaderboard import near_uniform_search, select_records
from leanrec.records import iter_records


def one_hot_lr_auc(data, columns: list[int]) -> float:
    """Validation AUC of an L2 logistic regression on the one-hot codes of `columns`."""
    enc = OneHotEncoder(handle_unknown="ignore").fit(data.train.X[:, columns])
    lr = LogisticRegression(max_iter=300).fit(enc.transform(data.train.X[:, columns]), data.train.y[:, 0])
    return float(roc_auc_score(data.valid.y[:, 0], lr.predict_proba(enc.transform(data.valid.X[:, columns]))[:, 1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--fields", action="append", default=[], help="comma-separated field set (repeatable)")
    ap.add_argument("--runs", type=Path, default=None, help="results dir whose run records to list")
    ap.add_argument("--variants", action="append", default=[], help="variant glob (repeatable)")
    ap.add_argument("--key", default="item", help="field whose presence in the kept set is reported")
    args = ap.parse_args()
    data = load_dataset(args.dataset, seed=0, progress=False)
    names = [f.name for f in data.fields]
    for spec in args.fields:
        cols = [names.index(f) for f in spec.split(",")]
        print(f"one-hot LR on {spec}: validation AUC {one_hot_lr_auc(data, cols):.4f}")
    if args.runs is not None:
        recs = select_records(iter_records(args.runs), args.variants, [args.dataset])
        for r in sorted(recs, key=lambda r: (r["variant"], r["seed"])):
            if r["status"] == "ok":
                kept = (r.get("selection") or {}).get("fields") or names
                # a search that ended near uniform did not choose: its kept fields are not the method's
                keeps = "- (search near uniform)" if near_uniform_search(r) else args.key in kept
                print(f"{r['variant']:<40} seed {r['seed']}  test AUC {r['metrics']['auc']:.4f}  "
                      f"keeps {args.key}: {keeps}")


if __name__ == "__main__":
    main()
