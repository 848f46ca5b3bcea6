"""Model-free and shallow selectors: MI top-k, chi-square, target-rate variance, group lasso, PCA.

All score fields on the train split against the training target (label column ``label``, default 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from leanrec.errors import ConfigError
from leanrec.methods import field_specs
from leanrec.selection import SelectorConfig, SelectorMethod

if TYPE_CHECKING:
    from leanrec.context import RunContext
    from leanrec.data import EncodedDataset


def _train_arrays(data: "EncodedDataset", label: int, max_rows: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(data.train.X)
    y = np.asarray(data.train.y).reshape(len(X), -1)
    if not 0 <= label < y.shape[1]:
        raise ConfigError(f"label={label} but the dataset has {y.shape[1]} label column(s)")
    y = y[:, label]
    if max_rows and len(X) > max_rows:  # uniform subsample, fixed by the run seed
        idx = np.sort(np.random.default_rng(seed).choice(len(X), max_rows, replace=False))
        X, y = X[idx], y[idx]
    return X, y


def _value_counts(X: np.ndarray, vocab: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """Counts per (field, value) in one flat vector over the fused vocabulary (offsets by field), or per
    (field, value, label) when y (binary) is given: shape (sum vocab,) or (sum vocab, 2)."""
    offsets = np.concatenate([[0], np.cumsum(vocab)[:-1]])
    flat = (X.astype(np.int64) + offsets).ravel()
    total = int(vocab.sum())
    if y is None:
        return np.bincount(flat, minlength=total)
    yy = np.repeat((np.asarray(y) > 0.5).astype(np.int64), X.shape[1])
    return np.bincount(flat * 2 + yy, minlength=2 * total).reshape(total, 2)


def _per_field(values: np.ndarray, vocab: np.ndarray) -> np.ndarray:
    """Sum a per-(field, value) vector into per-field totals."""
    return np.add.reduceat(values, np.concatenate([[0], np.cumsum(vocab)[:-1]]))


@dataclass
class StatConfig(SelectorConfig):
    label: int = 0               # which label column the statistic is computed against


MI_CORRECTIONS = ("g-test", "miller-madow", "shuffle", "none")


class MutualInfo(SelectorMethod):
    """MI top-k: rank fields by I(X_f; y) on the train split, from the Rust statistics engine
    (``leanrec.stats.field_label_mi``, plug-in estimator, nats). Classic filter baseline used by ERASE
    (Jia et al., KDD 2024) and the REACTION paper's ablations.

    The plug-in MI of a field with many rare values is biased upward by roughly (K_x - 1)(K_y - 1) / (2N), so
    raw MI lets a high-cardinality pure-noise field outscore a weak informative one. ``correction``:
    ``"g-test"`` (default) ranks by the significance of the MI: G = 2 N MI is asymptotically chi-square with
    (K_x - 1)(K_y - 1) degrees of freedom (K observed values), scored as its Wilson-Hilferty z;
    ``"miller-madow"`` subtracts the first-order bias ((K_xy - 1) - (K_x - 1) - (K_y - 1)) / (2N) (too small
    when most cells hold one or two rows); ``"shuffle"`` subtracts the MI's mean over two label permutations
    (``leanrec.stats.permutation_null``: the bias at the field's actual cardinality); ``"none"`` ranks by the
    raw plug-in MI.
    """

    name = "mi"
    paper = "Jia et al., ERASE: Benchmarking Feature Selection Methods for Deep Recommender Systems, KDD 2024 (MI filter)"

    @dataclass
    class Config(StatConfig):
        correction: str = "g-test"   # g-test | miller-madow | shuffle | none

        def validate(self) -> None:
            super().validate()
            if self.correction not in MI_CORRECTIONS:
                raise ConfigError(f"correction must be one of {MI_CORRECTIONS}, got {self.correction!r}")

    def rank(self, data: "EncodedDataset", ctx: "RunContext") -> dict[str, float]:
        from leanrec import stats

        X, y = _train_arrays(data, self.config.label)
        mi = np.asarray(stats.field_label_mi(X, y.reshape(-1, 1)), dtype=np.float64).reshape(len(data.fields), -1)[:, 0]
        if self.config.correction == "shuffle":
            mi = mi - stats.permutation_null(stats.field_label_mi, X, y.reshape(-1, 1))[:, 0]
        elif self.config.correction != "none":
            vocab = np.array([f.vocab_size for f in data.fields])
            cells = _value_counts(X, vocab, y)
            k_x = _per_field((cells.sum(1) > 0).astype(np.int64), vocab)
            k_y = len(np.unique(y > 0.5))
            if self.config.correction == "g-test":
                mi = wilson_hilferty_z(2.0 * len(X) * mi, (k_x - 1) * (k_y - 1))
            else:
                k_xy = _per_field((cells > 0).sum(1), vocab)
                mi = mi + ((k_x - 1) + (k_y - 1) - (k_xy - 1)) / (2.0 * len(X))
        return {f.name: float(s) for f, s in zip(data.fields, mi)}


def _chi2_statistic(result: Any) -> float:
    """The statistic from leanrec.stats.chi2's result (a float, a (statistic, ...) tuple or a mapping)."""
    if isinstance(result, dict):
        for key in ("statistic", "chi2", "stat"):
            if key in result:
                return float(result[key])
        raise TypeError(f"leanrec.stats.chi2 returned a mapping without a statistic: {sorted(result)}")
    if isinstance(result, (tuple, list)):
        return float(result[0])
    return float(getattr(result, "statistic", result))


def wilson_hilferty_z(stat: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Normal z-score of a chi-square statistic with df degrees of freedom (Wilson-Hilferty cube-root
    approximation): monotone in the p-value but never underflows, so strong fields stay ordered."""
    df = np.maximum(np.asarray(df, dtype=np.float64), 1.0)
    c = 2.0 / (9.0 * df)
    return ((np.maximum(stat, 0.0) / df) ** (1.0 / 3.0) - (1.0 - c)) / np.sqrt(c)


class ChiSquare(SelectorMethod):
    """Chi-square test of independence between each field and the label (``leanrec.stats.chi2``), the
    classic filter baseline (ERASE, Jia et al., KDD 2024).

    ``score="z"`` (default) ranks by the Wilson-Hilferty z of the statistic at its degrees of freedom
    (K_x observed - 1)(K_y - 1), i.e. by significance, which does not favour high-cardinality noise fields;
    ``score="statistic"`` ranks by the raw statistic.
    """

    name = "chi2"
    paper = "Jia et al., ERASE: Benchmarking Feature Selection Methods for Deep Recommender Systems, KDD 2024 (chi2 filter)"

    @dataclass
    class Config(StatConfig):
        score: str = "z"   # z | statistic

        def validate(self) -> None:
            super().validate()
            if self.score not in ("z", "statistic"):
                raise ConfigError(f"score must be 'z' or 'statistic', got {self.score!r}")

    def rank(self, data: "EncodedDataset", ctx: "RunContext") -> dict[str, float]:
        from leanrec import stats

        X, y = _train_arrays(data, self.config.label)
        yi = (y > 0.5).astype(np.int32)
        stat = np.array([_chi2_statistic(stats.chi2(np.ascontiguousarray(X[:, j]), yi)) for j in range(X.shape[1])])
        if self.config.score == "z":
            vocab = np.array([f.vocab_size for f in data.fields])
            k_x = _per_field((_value_counts(X, vocab) > 0).astype(np.int64), vocab)
            df = (k_x - 1) * (len(np.unique(yi)) - 1)
            stat = wilson_hilferty_z(stat, df)
        return {f.name: float(s) for f, s in zip(data.fields, stat)}


class VarianceFilter(SelectorMethod):
    """Variance filter (the low-variance filter of ERASE, Jia et al., KDD 2024) made meaningful for categorical
    codes, whose numeric variance is arbitrary: each field is replaced by its empirical target-rate encoding
    r(v) = (clicks_v + m * p) / (n_v + m) (additive smoothing of strength m toward the global rate p), and the
    score is the variance of r over the train rows minus its expectation under independence,
    sum_v (n_v / N) * n_v p (1 - p) / (n_v + m)^2 -- so a field's score is the label variance its values
    explain beyond what sampling noise of its (possibly many, rare) values would produce.
    """

    name = "variance"
    paper = "Jia et al., ERASE: Benchmarking Feature Selection Methods for Deep Recommender Systems, KDD 2024 (variance filter)"

    @dataclass
    class Config(StatConfig):
        smoothing: float = 20.0   # m: prior strength (pseudo-rows at the global rate)

        def validate(self) -> None:
            super().validate()
            if self.smoothing < 0:
                raise ConfigError(f"smoothing must be >= 0, got {self.smoothing}")

    def rank(self, data: "EncodedDataset", ctx: "RunContext") -> dict[str, float]:
        X, y = _train_arrays(data, self.config.label)
        vocab = np.array([f.vocab_size for f in data.fields])
        cells = _value_counts(X, vocab, y).astype(np.float64)
        n_v, pos_v = cells.sum(1), cells[:, 1]
        N, p, m = float(len(X)), float((y > 0.5).mean()), self.config.smoothing
        denom = np.maximum(n_v + m, 1e-12)
        r = (pos_v + m * p) / denom
        w = n_v / N   # row weights of each value (sum to 1 within a field)
        mean_f = _per_field(w * r, vocab)
        var_f = _per_field(w * r * r, vocab) - mean_f ** 2
        null_f = _per_field(w * n_v * p * (1 - p) / denom ** 2, vocab)
        return {f.name: float(s) for f, s in zip(data.fields, var_f - null_f)}


class GroupLasso(SelectorMethod):
    """Lasso selector: L1 (group) logistic regression on the one-hot encoding, one group per field (Yuan & Lin,
    "Model selection and estimation in regression with grouped variables", JRSS-B 2006; the LASSO baseline of
    ERASE, Jia et al., KDD 2024, and of REACTION's Table 4).

    Fitted with proximal gradient (FISTA, full batch on up to ``max_rows`` train rows, step 1/L with
    L = F/4, a bound on the logistic loss' curvature for F one-hot fields) along a regularisation path of
    ``n_lambdas`` values from lambda_max (all groups zero) down to ``lambda_min_ratio * lambda_max``. A field's
    score is the number of path points at which its group is non-zero (earlier entry = more important) plus
    a tie-break in [0, 1) from its final group norm. ``group_weight="none"`` (default) penalises every group
    equally: under independence a group's gradient norm at zero has the same scale whatever its cardinality,
    so equal weights do not favour small or large vocabularies; ``"sqrt_size"`` is the textbook sqrt(|group|).
    """

    name = "lasso"
    paper = "Yuan & Lin, Model selection and estimation in regression with grouped variables, JRSS-B 2006"

    @dataclass
    class Config(StatConfig):
        n_lambdas: int = 12
        lambda_min_ratio: float = 0.01
        iters_per_lambda: int = 60
        max_rows: int = 200_000
        group_weight: str = "none"   # none | sqrt_size

        def validate(self) -> None:
            super().validate()
            if self.n_lambdas < 2 or self.iters_per_lambda < 1 or not 0 < self.lambda_min_ratio < 1:
                raise ConfigError("need n_lambdas >= 2, iters_per_lambda >= 1, 0 < lambda_min_ratio < 1")
            if self.group_weight not in ("none", "sqrt_size"):
                raise ConfigError(f"group_weight must be 'none' or 'sqrt_size', got {self.group_weight!r}")

    def rank(self, data: "EncodedDataset", ctx: "RunContext") -> dict[str, float]:
        cfg = self.config
        Xn, yn = _train_arrays(data, cfg.label, cfg.max_rows, ctx.seed)
        dev = ctx.device
        vocab = torch.tensor([f.vocab_size for f in data.fields], device=dev)
        offsets = torch.cat([vocab.new_zeros(1), vocab.cumsum(0)[:-1]])
        X = torch.as_tensor(Xn.astype(np.int64), device=dev) + offsets
        y = torch.tensor(yn, dtype=torch.float32, device=dev)  # a copy: yn may be a read-only memory map
        N, F = X.shape
        V = int(vocab.sum())
        group = torch.repeat_interleave(torch.arange(F, device=dev), vocab)
        gw = vocab.float().sqrt() if cfg.group_weight == "sqrt_size" else torch.ones(F, device=dev)
        p = y.mean().clamp(1e-6, 1 - 1e-6)
        b = torch.log(p / (1 - p))
        flat = X.reshape(-1)

        def grad(w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            r = torch.sigmoid(b + w[X].sum(1)) - y
            return torch.zeros(V, device=dev).index_add_(0, flat, r.repeat_interleave(F) / N), r.mean()

        def group_norms(w: torch.Tensor) -> torch.Tensor:
            return torch.zeros(F, device=dev).index_add_(0, group, w * w).sqrt()

        def prox(w: torch.Tensor, thresh: torch.Tensor) -> torch.Tensor:  # group soft-thresholding
            norms = group_norms(w)
            factor = torch.clamp(1 - thresh / norms.clamp_min(1e-12), min=0.0)
            return w * factor[group]

        w = torch.zeros(V, device=dev)
        g0, _ = grad(w, b)
        lam_max = float((group_norms(g0) / gw).max())
        step = 4.0 / F
        lambdas = lam_max * np.geomspace(1.0, cfg.lambda_min_ratio, cfg.n_lambdas)
        active = torch.zeros(F, device=dev)
        with torch.no_grad():
            for lam in lambdas:
                z, w_prev, t = w.clone(), w.clone(), 1.0
                for _ in range(cfg.iters_per_lambda):
                    gz, gb = grad(z, b)
                    b = b - step * gb
                    w = prox(z - step * gz, step * lam * gw)
                    t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
                    z = w + ((t - 1) / t_next) * (w - w_prev)
                    w_prev, t = w, t_next
                active += (group_norms(w) > 0).float()
            final = group_norms(w) / gw
        score = active + final / (1 + final)   # integer path-entry level + tie-break in [0, 1)
        return {f.name: float(s) for f, s in zip(data.fields, score.cpu().numpy())}


class PCARank(SelectorMethod):
    """PCA-based field ranking (the PCA baseline of REACTION's Table 4; Jolliffe, Principal Component Analysis,
    2002, ch. 6 on selecting variables by their loadings).

    Reading: a field's importance is the variance of its representation captured by the leading principal
    components, score_f = sum_c lambda_c * ||V[f, c]||^2 over the components explaining ``variance_kept`` of
    the total variance (V[f, c]: the loadings of field f's columns on component c).
    ``representation="learned"`` (default) takes the per-field embeddings of the backbone after training it on
    all fields (stage "select" includes that pretraining): fields the label depends on get embeddings that
    vary, noise fields stay near their small initialisation -- so the reading is supervised through training.
    ``representation="onehot"`` runs PCA on the centred one-hot matrix (unsupervised, label-blind: it ranks by
    how evenly spread a field's values are, and serves as the naive reference).
    """

    name = "pca"
    paper = "Jolliffe, Principal Component Analysis (2nd ed.), Springer 2002; PCA baseline of REACTION (AAAI 2026)"

    @dataclass
    class Config(StatConfig):
        representation: str = "learned"   # learned | onehot
        variance_kept: float = 0.9
        max_rows: int = 50_000
        components: int = 32              # onehot: number of components of the randomized PCA
        batch_size: int = 4096            # pretraining batch (ERASE reference)

        def validate(self) -> None:
            super().validate()
            if self.representation not in ("learned", "onehot"):
                raise ConfigError(f"representation must be 'learned' or 'onehot', got {self.representation!r}")
            if not 0 < self.variance_kept <= 1:
                raise ConfigError(f"variance_kept must be in (0, 1], got {self.variance_kept}")

    def rank(self, data: "EncodedDataset", ctx: "RunContext") -> dict[str, float]:
        cfg = self.config
        Xn, _ = _train_arrays(data, cfg.label, cfg.max_rows, ctx.seed)
        if cfg.representation == "learned":
            model = self.backbone().build_model(field_specs(data)).to(ctx.device)
            ctx.train(model, data, cfg, name="pretrain")
            with torch.no_grad():
                X = torch.as_tensor(Xn, dtype=torch.long, device=ctx.device)
                Z = torch.cat([model.embed(X[i:i + 16384]).emb.flatten(1) for i in range(0, len(X), 16384)])
            dims = list(model.embedding.dims)
            Z = Z - Z.mean(0)
            # Eigen-decomposition of the (sum d x sum d) covariance; small for any field count we meet.
            evals, evecs = torch.linalg.eigh(Z.T @ Z / max(len(Z) - 1, 1))
            evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
        else:
            vocab = np.array([f.vocab_size for f in data.fields])
            offsets = np.concatenate([[0], np.cumsum(vocab)[:-1]])
            rows = np.repeat(np.arange(len(Xn)), Xn.shape[1])
            cols = (Xn.astype(np.int64) + offsets).ravel()
            A = torch.sparse_coo_tensor(torch.as_tensor(np.stack([rows, cols])), torch.ones(len(cols)),
                                        (len(Xn), int(vocab.sum()))).coalesce()
            q = min(cfg.components, min(A.shape) - 1)
            torch.manual_seed(ctx.seed)
            _, S, evecs = torch.pca_lowrank(A, q=q, center=True)
            evals = S ** 2 / max(len(Xn) - 1, 1)
            dims = vocab.tolist()
        share = torch.cumsum(evals, 0) / evals.sum().clamp_min(1e-12)
        n_comp = int((share < cfg.variance_kept).sum()) + 1
        contrib = (evecs[:, :n_comp] ** 2 * evals[:n_comp]).sum(1)   # per column
        field_of_col = torch.repeat_interleave(torch.arange(len(dims)), torch.tensor(dims))
        score = torch.zeros(len(dims), dtype=contrib.dtype).index_add_(0, field_of_col, contrib.cpu())
        return {f.name: float(s) for f, s in zip(data.fields, score.numpy())}
