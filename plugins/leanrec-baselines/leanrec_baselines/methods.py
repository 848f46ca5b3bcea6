"""One BackboneMethod per architecture. Config defaults follow the BARS/FuxiCTR reference settings (embedding
10, DNN [400, 400, 400] with batch norm and dropout 0.2 as in BARS Frappe_x1, Adam 1e-3, batch 1024) unless a
model's paper says otherwise; every paper hyperparameter is a config field (CLI: ``dnn:hidden=[128,128]``).

Every config field that is not a training key of MethodConfig is passed to the model's constructor.
"""
from __future__ import annotations

from dataclasses import dataclass

from leanrec.errors import ConfigError
from leanrec.methods import BackboneMethod, MethodConfig

from leanrec_baselines import models as M


def _positive(cfg: MethodConfig, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        values = value if isinstance(value, (tuple, list)) else (value,)
        if any(v < 1 for v in values):
            raise ConfigError(f"{name} must be >= 1 (every entry), got {value!r}")


def _fraction(cfg: MethodConfig, name: str) -> None:
    if not 0.0 <= getattr(cfg, name) < 1.0:
        raise ConfigError(f"{name} must be in [0, 1), got {getattr(cfg, name)}")


@dataclass
class MLPConfig(MethodConfig):
    """Adds the DNN tower (BARS Frappe_x1 DNN: [400, 400, 400], batch norm, dropout 0.2)."""

    hidden: tuple[int, ...] = (400, 400, 400)
    dropout: float = 0.2
    batch_norm: bool = True

    def validate(self) -> None:
        super().validate()
        _positive(self, "hidden")
        _fraction(self, "dropout")


# ---- LR / FM family -----------------------------------------------------------------------------------------
class LR(BackboneMethod):
    """Logistic regression over one-hot features (the linear baseline of every CTR benchmark, e.g.
    Richardson et al., "Predicting Clicks", WWW 2007)."""

    name = "lr"
    paper = "Richardson, Dominowska, Ragno. Predicting clicks: estimating the click-through rate for new ads. WWW 2007"
    is_baseline = True
    model_class = M.LRModel
    Config = MethodConfig


class FM(BackboneMethod):
    """Factorization Machines (Rendle, ICDM 2010)."""

    name = "fm"
    paper = "Rendle. Factorization Machines. ICDM 2010"
    is_baseline = True
    model_class = M.FMModel
    Config = MethodConfig


class FwFM(BackboneMethod):
    """Field-weighted Factorization Machines (Pan et al., WWW 2018)."""

    name = "fwfm"
    paper = ("Pan et al. Field-weighted Factorization Machines for Click-Through Rate Prediction in Display "
             "Advertising. WWW 2018")
    is_baseline = True
    model_class = M.FwFMModel
    Config = MethodConfig


# ---- MLP family ---------------------------------------------------------------------------------------------
class DNN(BackboneMethod):
    """A plain DNN over concatenated embeddings (the DNN baseline of BARS, Zhu et al., SIGIR 2022)."""

    name = "dnn"
    paper = "Zhu et al. BARS: Towards Open Benchmarking for Recommender Systems. SIGIR 2022 (DNN baseline)"
    is_baseline = True
    model_class = M.DNNModel
    Config = MLPConfig


class WideDeep(BackboneMethod):
    """Wide & Deep Learning for Recommender Systems (Cheng et al., DLRS 2016)."""

    name = "wide-deep"
    paper = "Cheng et al. Wide & Deep Learning for Recommender Systems. DLRS 2016"
    is_baseline = True
    model_class = M.WideDeepModel
    Config = MLPConfig


class DeepFM(BackboneMethod):
    """DeepFM: A Factorization-Machine based Neural Network for CTR Prediction (Guo et al., IJCAI 2017)."""

    name = "deepfm"
    paper = "Guo et al. DeepFM: A Factorization-Machine based Neural Network for CTR Prediction. IJCAI 2017"
    is_baseline = True
    model_class = M.DeepFMModel
    Config = MLPConfig


class IPNN(BackboneMethod):
    """Product-based Neural Networks, inner-product variant (Qu et al., ICDM 2016)."""

    name = "ipnn"
    paper = "Qu et al. Product-based Neural Networks for User Response Prediction. ICDM 2016"
    is_baseline = True
    model_class = M.IPNNModel
    Config = MLPConfig


@dataclass
class XDeepFMConfig(MLPConfig):
    """CIN layer sizes: FuxiCTR's xDeepFM default (16, 16, 16) (modest; the paper searched 100-200 maps)."""

    cin_layer_units: tuple[int, ...] = (16, 16, 16)
    cin_split_half: bool = False   # the official code's option: half of each layer's maps go to the output

    def validate(self) -> None:
        super().validate()
        _positive(self, "cin_layer_units")
        if self.cin_split_half and any(h % 2 for h in self.cin_layer_units[:-1]):
            raise ConfigError(f"cin_split_half needs even cin_layer_units (but the last), got {self.cin_layer_units}")


class XDeepFM(BackboneMethod):
    """xDeepFM: Combining Explicit and Implicit Feature Interactions (Lian et al., KDD 2018)."""

    name = "xdeepfm"
    paper = ("Lian et al. xDeepFM: Combining Explicit and Implicit Feature Interactions for Recommender "
             "Systems. KDD 2018")
    is_baseline = True
    model_class = M.XDeepFMModel
    Config = XDeepFMConfig


ALL_METHODS: list[type[BackboneMethod]] = [LR, FM, FwFM, DNN, WideDeep, DeepFM, IPNN, XDeepFM]
