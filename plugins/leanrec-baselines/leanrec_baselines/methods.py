"""One BackboneMethod per architecture. Config defaults follow the BARS/FuxiCTR reference settings (embedding
10, DNN [400, 400, 400] with batch norm and dropout 0.2 as in BARS Frappe_x1, Adam 1e-3, batch 1024) unless a
model's paper says otherwise; every paper hyperparameter is a config field (CLI: ``dnn:hidden=[128,128]``).

Every config field that is not a training key of MethodConfig is passed to the model's constructor.
"""
from __future__ import annotations

from dataclasses import dataclass

from leanrec.errors import ConfigError
from leanrec.methods import BackboneMethod, MethodConfig
from leanrec.space import Choice, IntRange, Uniform, tunable

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

    hidden: tuple[int, ...] = tunable((400, 400, 400), Choice((400, 400, 400), (256, 256, 256), (256, 256), (128, 128)))
    dropout: float = tunable(0.2, Uniform(0.0, 0.5, step=0.05))
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


# ---- explicit-interaction networks ---------------------------------------------------------------------------
@dataclass
class DCNv2Config(MLPConfig):
    """FuxiCTR DCNv2 defaults: parallel structure, 3 full-rank cross layers."""

    num_cross_layers: int = tunable(3, IntRange(1, 4))
    model_structure: str = "parallel"   # parallel | stacked | crossnet_only
    low_rank: int = 0                   # 0 = full-rank W_l; r > 0 = W_l = U_l V_l^T of rank r (one expert)

    def validate(self) -> None:
        super().validate()
        if self.model_structure not in M.DCNv2Model.STRUCTURES:
            raise ConfigError(f"model_structure must be one of {M.DCNv2Model.STRUCTURES}, got {self.model_structure!r}")
        if self.num_cross_layers < 0 or self.low_rank < 0:
            raise ConfigError("num_cross_layers and low_rank must be >= 0")


class DCNv2(BackboneMethod):
    """DCN V2: Improved Deep & Cross Network (Wang et al., WWW 2021)."""

    name = "dcnv2"
    paper = ("Wang et al. DCN V2: Improved Deep & Cross Network and Practical Lessons for Web-scale Learning to "
             "Rank Systems. WWW 2021")
    is_baseline = True
    model_class = M.DCNv2Model
    Config = DCNv2Config


@dataclass
class AutoIntConfig(MLPConfig):
    """AutoInt paper settings: 3 interacting layers, 2 heads, attention size d' = 32, residual connections."""

    attention_layers: int = 3
    num_heads: int = 2
    attention_dim: int = 32
    use_residual: bool = True
    use_scale: bool = False             # scale scores by 1/sqrt(d') (not in the paper; FuxiCTR option)

    def validate(self) -> None:
        super().validate()
        _positive(self, "num_heads", "attention_dim")
        if self.attention_layers < 0:
            raise ConfigError(f"attention_layers must be >= 0, got {self.attention_layers}")


class AutoIntPlus(BackboneMethod):
    """AutoInt+: self-attentive feature interactions plus a DNN (Song et al., CIKM 2019)."""

    name = "autoint-plus"
    paper = ("Song et al. AutoInt: Automatic Feature Interaction Learning via Self-Attentive Neural Networks. "
             "CIKM 2019")
    is_baseline = True
    model_class = M.AutoIntPlusModel
    Config = AutoIntConfig


@dataclass
class FiBiNETConfig(MLPConfig):
    """FiBiNET paper/FuxiCTR settings: SENet reduction ratio 3, field-interaction bilinear type."""

    reduction_ratio: float = 3.0
    bilinear_type: str = "field_interaction"   # field_all | field_each | field_interaction

    def validate(self) -> None:
        super().validate()
        if self.reduction_ratio <= 0:
            raise ConfigError(f"reduction_ratio must be > 0, got {self.reduction_ratio}")
        if self.bilinear_type not in ("field_all", "field_each", "field_interaction"):
            raise ConfigError(f"bilinear_type must be field_all, field_each or field_interaction, got {self.bilinear_type!r}")


class FiBiNET(BackboneMethod):
    """FiBiNET: feature importance (SENet) and bilinear feature interactions (Huang et al., RecSys 2019)."""

    name = "fibinet"
    paper = ("Huang, Zhang, Zhang. FiBiNET: Combining Feature Importance and Bilinear feature Interaction for "
             "Click-Through Rate Prediction. RecSys 2019")
    is_baseline = True
    model_class = M.FiBiNETModel
    Config = FiBiNETConfig


# ---- two-stream MLP and scaling architectures -------------------------------------------------------------------
@dataclass
class FinalMLPConfig(MethodConfig):
    """FinalMLP: two streams (MLP1 [400, 400, 400], MLP2 [800]), feature-selection gates with an [800] MLP,
    multi-head bilinear fusion (10 heads); batch norm and dropout 0.2 in both streams."""

    mlp1_hidden: tuple[int, ...] = (400, 400, 400)
    mlp2_hidden: tuple[int, ...] = (800,)
    dropout: float = 0.2
    batch_norm: bool = True
    use_fs: bool = True
    fs_hidden: tuple[int, ...] = (800,)
    fusion_heads: int = 10

    def validate(self) -> None:
        super().validate()
        _positive(self, "mlp1_hidden", "mlp2_hidden", "fs_hidden", "fusion_heads")
        _fraction(self, "dropout")
        for name in ("mlp1_hidden", "mlp2_hidden"):
            widths = getattr(self, name)
            if widths and widths[-1] % self.fusion_heads:
                raise ConfigError(f"fusion_heads ({self.fusion_heads}) must divide the last width of {name} {widths}")


class FinalMLP(BackboneMethod):
    """FinalMLP: an enhanced two-stream MLP model for CTR prediction (Mao et al., AAAI 2023)."""

    name = "finalmlp"
    paper = "Mao et al. FinalMLP: An Enhanced Two-Stream MLP Model for CTR Prediction. AAAI 2023"
    is_baseline = True
    model_class = M.FinalMLPModel
    Config = FinalMLPConfig


@dataclass
class WukongConfig(MLPConfig):
    """Wukong at a modest (CPU) scale: 3 layers of 16 FMB + 16 LCB tokens, FM compression rank 8, FMB MLP
    [256], LayerNorm before the FMB MLP (paper); the top MLP is the shared DNN default."""

    num_layers: int = 3
    fmb_tokens: int = 16
    lcb_tokens: int = 16
    fmb_rank: int = 8
    fmb_hidden: tuple[int, ...] = (256,)
    fmb_layernorm: bool = True

    def validate(self) -> None:
        super().validate()
        _positive(self, "fmb_tokens", "lcb_tokens", "fmb_rank", "fmb_hidden")
        if self.num_layers < 0:
            raise ConfigError(f"num_layers must be >= 0, got {self.num_layers}")


class Wukong(BackboneMethod):
    """Wukong: towards a scaling law for large-scale recommendation (Zang et al., ICML 2024)."""

    name = "wukong"
    paper = "Zang et al. Wukong: Towards a Scaling Law for Large-Scale Recommendation. ICML 2024"
    is_baseline = True
    model_class = M.WukongModel
    Config = WukongConfig


@dataclass
class RankMixerConfig(MethodConfig):
    """RankMixer at a modest (CPU) scale: 8 tokens of width 64, 2 layers, per-token FFN ratio 4. The number
    of mixing heads equals num_tokens (the paper's choice, which keeps every mixed token D wide)."""

    num_tokens: int = 8
    token_dim: int = 64
    num_layers: int = 2
    ffn_ratio: int = 4

    def validate(self) -> None:
        super().validate()
        _positive(self, "num_tokens", "token_dim", "ffn_ratio")
        if self.num_layers < 0:
            raise ConfigError(f"num_layers must be >= 0, got {self.num_layers}")
        if self.token_dim % self.num_tokens:
            raise ConfigError(f"token_dim ({self.token_dim}) must be divisible by num_tokens ({self.num_tokens})")


class RankMixer(BackboneMethod):
    """RankMixer: scaling up ranking models in industrial recommenders (Zhu et al., 2025)."""

    name = "rankmixer"
    paper = "Zhu et al. RankMixer: Scaling Up Ranking Models in Industrial Recommenders. arXiv:2507.15551, 2025"
    is_baseline = True
    model_class = M.RankMixerModel
    Config = RankMixerConfig


ALL_METHODS: list[type[BackboneMethod]] = [LR, FM, FwFM, DNN, WideDeep, DeepFM, IPNN, XDeepFM, DCNv2, AutoIntPlus,
                                           FiBiNET, FinalMLP, Wukong, RankMixer]
