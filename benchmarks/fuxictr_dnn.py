"""FuxiCTR 2.3.10 side of the Frappe and scale training benchmarks (bench_frappe_training.py, bench_scale.py).

Runs in its OWN virtual environment (fuxictr==2.3.10, polars<2), never in leanrec's: it must not import
leanrec. The PyPI wheel ships no model zoo, so the DNN below is written with FuxiCTR's own BaseModel,
FeatureEmbedding and MLP_Block, exactly like the zoo's DNN (model_zoo/DNN/src/DNN.py upstream).

Given a directory with train.csv / valid.csv / test.csv (the raw rows of one split, with a header line and
--sep between values), it measures, in one process and after imports. --schema picks the columns:
"frappe" (label,user,...,city, all categorical) or "criteo" (label, I1..I13 bucketed with FuxiCTR's own
Criteo processor `convert_to_bucket`, as in its Criteo configs, C1..C26 categorical):

* prep_s: FeatureProcessor + build_dataset (read CSV, fit vocabularies on train, transform every split
  to parquet through Ray) -- FuxiCTR's preprocessing of the raw CSVs;
* per loader ("parquet" = the default RankDataLoader path for csv/parquet data, a Ray Data loader; "npz" =
  NpzDataLoader over the same encoded columns saved as .npz): training wall time with the per-epoch
  validation evaluations timed separately, epochs run, training samples/s, test AUC (sklearn);
* end_to_end_s: prep_s + the default loader's loading, training and test evaluation.

build_dataset skips preprocessing when <work-dir>/data/<dataset id>/feature_map.json exists, so a caller can
time preparation and each loader in separate processes: --loaders "" (prepare only), then --loaders parquet
with the same --work-dir (prep_s is then ~0 and `prep_skipped` is true).

Prints one JSON object on the last line of stdout (and writes it to --out when given).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, help="directory holding train.csv, valid.csv, test.csv")
    p.add_argument("--work-dir", required=True, help="scratch directory (encoded data, checkpoints)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--embedding-dim", type=int, default=10)
    p.add_argument("--hidden", default="400,400,400")
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--loaders", default="parquet,npz",
                   help="comma list of parquet (default loader), npz; empty = prepare only")
    p.add_argument("--schema", default="frappe", choices=sorted(SCHEMAS), help="column layout of the CSVs")
    p.add_argument("--sep", default=",", help="value separator of the CSVs (e.g. a tab)")
    p.add_argument("--min-count", type=int, default=1, help="min_categr_count (rarer values become OOV)")
    p.add_argument("--out", default=None, help="also write the JSON result here")
    return p.parse_args(argv)


FIELDS = ["user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country", "city"]
CRITEO_INT = [f"I{i}" for i in range(1, 14)]
CRITEO_CAT = [f"C{i}" for i in range(1, 27)]
# schema -> FuxiCTR feature_cols (the Criteo one as in FuxiCTR's Criteo configs, with fill_na for empty cells)
SCHEMAS = {
    "frappe": [{"name": FIELDS, "active": True, "dtype": "str", "type": "categorical"}],
    "criteo": [{"name": CRITEO_INT, "active": True, "dtype": "float", "type": "categorical",
                "preprocess": "convert_to_bucket", "fill_na": 0},
               {"name": CRITEO_CAT, "active": True, "dtype": "str", "type": "categorical", "fill_na": ""}],
}


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_import = time.perf_counter()
    import numpy as np
    import polars as pl
    import torch
    import fuxictr
    from fuxictr.features import FeatureMap
    from fuxictr.preprocess import FeatureProcessor, build_dataset
    from fuxictr.datasets.criteo import CustomizedFeatureProcessor as CriteoFeatureProcessor
    from fuxictr.pytorch.dataloaders import RankDataLoader
    from fuxictr.pytorch.layers import FeatureEmbedding, MLP_Block
    from fuxictr.pytorch.models import BaseModel
    from fuxictr.pytorch.torch_utils import seed_everything
    from sklearn.metrics import roc_auc_score
    import_s = time.perf_counter() - t_import

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    hidden = [int(h) for h in args.hidden.split(",")]

    class DNN(BaseModel):
        """The FuxiCTR model-zoo DNN, verbatim in structure (embedding -> MLP_Block with sigmoid output)."""

        def __init__(self, feature_map, model_id="DNN", gpu=-1, learning_rate=1e-3, embedding_dim=10,
                     hidden_units=(400, 400, 400), hidden_activations="ReLU", net_dropout=0.0,
                     batch_norm=False, embedding_regularizer=None, net_regularizer=None, **kwargs):
            super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_regularizer=embedding_regularizer,
                             net_regularizer=net_regularizer, **kwargs)
            self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
            self.mlp = MLP_Block(input_dim=embedding_dim * feature_map.num_fields, output_dim=1,
                                 hidden_units=list(hidden_units), hidden_activations=hidden_activations,
                                 output_activation=self.output_activation, dropout_rates=net_dropout,
                                 batch_norm=batch_norm)
            self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
            self.reset_parameters()
            self.model_to_device()

        def forward(self, inputs):
            X = self.get_inputs(inputs)
            feature_emb = self.embedding_layer(X)
            return {"y_pred": self.mlp(feature_emb.flatten(start_dim=1))}

    dataset_id = f"{args.schema}_seed{args.seed}"
    data_root = os.path.join(args.work_dir, "data")
    model_root = os.path.join(args.work_dir, "checkpoints")
    params = {
        "dataset_id": dataset_id, "data_root": data_root, "model_root": model_root,
        "data_format": "csv", "sep": args.sep,
        "train_data": os.path.join(args.data_dir, "train.csv"),
        "valid_data": os.path.join(args.data_dir, "valid.csv"),
        "test_data": os.path.join(args.data_dir, "test.csv"),
        "min_categr_count": args.min_count,
        "feature_cols": SCHEMAS[args.schema],
        "label_col": {"name": "label", "dtype": "float"},
        "embedding_dim": args.embedding_dim, "hidden_units": hidden, "hidden_activations": "relu",
        "net_dropout": args.dropout, "batch_norm": True, "embedding_regularizer": 0, "net_regularizer": 0,
        "learning_rate": args.lr, "batch_size": args.batch_size, "epochs": args.epochs,
        "optimizer": "adam", "loss": "binary_crossentropy", "metrics": ["AUC", "logloss"],
        "monitor": "AUC", "monitor_mode": "max", "early_stop_patience": args.patience,
        "reduce_lr_on_plateau": True, "max_gradient_norm": 10.0, "shuffle": True, "verbose": 0,
        "gpu": -1, "num_workers": 1, "seed": args.seed,
    }

    # ---- preprocessing: raw CSVs -> vocabularies + encoded parquet (FuxiCTR's build_dataset) ----------------
    t0 = time.perf_counter()
    prep_skipped = os.path.exists(os.path.join(data_root, dataset_id, "feature_map.json"))
    encoder = (CriteoFeatureProcessor if args.schema == "criteo" else FeatureProcessor)(**params)
    train_p, valid_p, test_p = build_dataset(encoder, **params)
    prep_s = time.perf_counter() - t0
    print(f"[fuxictr] seed {args.seed}: preprocessing {prep_s:.1f}s (imports {import_s:.1f}s)", file=sys.stderr)
    feature_map = FeatureMap(dataset_id, os.path.join(data_root, dataset_id))
    feature_map.load(os.path.join(data_root, dataset_id, "feature_map.json"), params)

    loaders = [x for x in args.loaders.split(",") if x]
    # npz copies of the same encoded splits (for the NpzDataLoader); timed separately, not part of prep_s
    t0 = time.perf_counter()
    npz = {}
    for split, path in (("train", train_p), ("valid", valid_p), ("test", test_p)) if "npz" in loaders else ():
        df = pl.read_parquet(path)
        npz[split] = os.path.join(data_root, dataset_id, f"{split}.npz")
        np.savez(npz[split], **{c: df[c].to_numpy() for c in df.columns})
    npz_convert_s = time.perf_counter() - t0

    def run(loader: str) -> dict:
        seed_everything(args.seed)
        t_start = time.perf_counter()
        paths = ({"train_data": train_p, "valid_data": valid_p, "test_data": test_p} if loader == "parquet"
                 else {"train_data": npz["train"], "valid_data": npz["valid"], "test_data": npz["test"]})
        fmt = "parquet" if loader == "parquet" else "npz"
        p = {**params, **paths, "data_format": fmt, "model_id": f"DNN_{loader}_seed{args.seed}"}
        train_gen, valid_gen = RankDataLoader(feature_map, stage="train", **p)
        model = DNN(feature_map, **p)
        os.makedirs(model.model_dir, exist_ok=True)
        eval_time = [0.0]
        orig_evaluate = model.evaluate

        def timed_evaluate(gen, metrics=None):
            t = time.perf_counter()
            try:
                return orig_evaluate(gen, metrics)
            finally:
                eval_time[0] += time.perf_counter() - t

        model.evaluate = timed_evaluate
        epochs = [0]
        orig_train_epoch = model.train_epoch

        def counted_train_epoch(gen):
            epochs[0] += 1
            return orig_train_epoch(gen)

        model.train_epoch = counted_train_epoch
        t_fit = time.perf_counter()
        model.fit(train_gen, epochs=args.epochs, validation_data=valid_gen,
                  max_gradient_norm=p["max_gradient_norm"])
        fit_s = time.perf_counter() - t_fit
        test_gen = RankDataLoader(feature_map, stage="test", **p)
        t_test = time.perf_counter()
        y_true, y_pred = [], []
        model.eval()
        with torch.no_grad():
            for batch in test_gen:
                y_pred.append(model.forward(batch)["y_pred"].reshape(-1).cpu().numpy())
                y_true.append(model.get_labels(batch).reshape(-1).cpu().numpy())
        y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred).astype(np.float64)
        auc = float(roc_auc_score(y_true, y_pred))
        test_s = time.perf_counter() - t_test
        n_train = train_gen.num_samples
        train_only_s = fit_s - eval_time[0]
        return {
            "loader": loader, "epochs_run": epochs[0], "n_train": int(n_train), "fit_s": fit_s,
            "valid_eval_s": eval_time[0], "train_s": train_only_s,
            "samples_per_s": epochs[0] * n_train / train_only_s,
            "samples_per_s_incl_eval": epochs[0] * n_train / fit_s,
            "test_auc": auc, "test_rows": int(len(y_true)), "test_eval_s": test_s,
            "load_fit_test_s": time.perf_counter() - t_start,
        }

    results = {}
    for loader in loaders:
        results[loader] = run(loader)
        r = results[loader]
        print(f"[fuxictr] seed {args.seed} {loader}: {r['epochs_run']} epochs, {r['samples_per_s']:.0f} samples/s, "
              f"test AUC {r['test_auc']:.4f}", file=sys.stderr)
    default = results.get("parquet")
    out = {
        "fuxictr_version": getattr(fuxictr, "__version__", "2.3.10"), "torch_version": torch.__version__,
        "polars_version": pl.__version__, "seed": args.seed, "threads": torch.get_num_threads(),
        "import_s": import_s, "prep_s": prep_s, "prep_skipped": prep_skipped, "npz_convert_s": npz_convert_s,
        "loaders": results, "schema": args.schema,
        "end_to_end_s": (prep_s + default["load_fit_test_s"]) if default else None,
        "python": sys.version.split()[0],
    }
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except Exception:  # noqa: BLE001 - shutting Ray down is best effort
        pass
    text = json.dumps(out)
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, args.out)
    print(text)
    return out


if __name__ == "__main__":
    main()
