"""The method protocol that every plugin implements (see docs/plugins.md for a walk-through).

A method is a class with a unique ``name``, a ``Config`` dataclass whose defaults are its paper's settings,
and ``fit(data, ctx) -> FitResult``. Inside ``fit`` the method trains through ``ctx.train`` (the harness
trainer) and wraps each phase in ``with ctx.stage("name"):`` so the harness times it. It returns the
serving model; the harness -- never the method -- measures AUC, logloss, parameters, FLOPs and latency.
"""
from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from torch import nn

from leanrec.errors import ConfigError, PluginError, check_keys
from leanrec.nn import CTRModel, FieldSpec
from leanrec.space import Choice, LogUniform, tunable

if TYPE_CHECKING:
    from leanrec.context import RunContext
    from leanrec.data import EncodedDataset


@dataclass
class MethodConfig:
    """Training settings shared by every method. Subclasses add their own fields (with the paper's defaults).

    ``tunable(default, space)`` declares what `leanrec tune` searches (:mod:`leanrec.space`): every method
    inherits the spaces of lr, embedding_dim and batch_size below; subclasses add their own keys."""

    embedding_dim: int = tunable(10, Choice(8, 16, 32))
    batch_size: int = tunable(1024, Choice(256, 512, 1024, 2048))
    lr: float = tunable(1e-3, LogUniform(1e-4, 1e-2))
    epochs: int = 20               # the paper's epoch count; the run's budget caps it and its min_steps floor
    patience: int = 2              # validations without improvement before stopping (see leanrec.protocol)
    lr_decay: float = 0.1          # multiply the LR by this on every plateau (FuxiCTR's reduce-on-plateau)
    weight_decay: float = 0.0      # L2 on non-embedding parameters
    embedding_l2: float = 0.0      # L2 on embedding rows (adam: every row, every step; row-wise: rows in the batch)
    grad_clip: float = 10.0        # max global gradient norm (0 = off)
    embedding_optimizer: str = "auto"  # auto | adam (exact dense) | lazy_adam | deferred_adam | rowwise_adagrad (leanrec.optim)

    def validate(self) -> None:
        """Raise ConfigError on values that make no sense. Subclasses extend it (call super())."""
        for name in ("embedding_dim", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.patience < 0:
            raise ConfigError(f"patience must be >= 0, got {self.patience}")
        from leanrec.optim import EMBEDDING_OPTIMIZERS

        if self.embedding_optimizer not in EMBEDDING_OPTIMIZERS:
            raise ConfigError(f"embedding_optimizer must be one of {EMBEDDING_OPTIMIZERS}, "
                              f"got {self.embedding_optimizer!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


TRAINING_KEYS = frozenset(f.name for f in dataclasses.fields(MethodConfig)) - {"embedding_dim"}


_SCALARS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a CLI string (or JSON value) to the type a config field declares; ConfigError on a value (or an
    element of a list/tuple) of the wrong type."""
    import json

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):          # e.g. int | None: the first type that takes it
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    structured = origin in (list, tuple, dict) or annotation in (int, float, bool, list, tuple, dict)
    if isinstance(value, str) and annotation is not str and annotation is not Any:
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            if structured:
                expected = _SCALARS.get(annotation) or f"JSON {'object' if origin is dict else 'list'}"
                raise ConfigError(f"config key {key!r}: cannot parse {value!r} as {expected}") from None
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in _SCALARS and annotation is not str and (
            not isinstance(value, annotation) or (annotation is int and isinstance(value, bool))):
        raise ConfigError(f"config key {key!r} expects {_SCALARS[annotation]}, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} expects a list, got {value!r}")
        element = args[0] if args and (origin is list or (len(args) == 2 and args[1] is Ellipsis)) else None
        if element is not None:
            value = [_coerce(v, element, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(value) if origin is tuple else list(value)
    if origin is dict and not isinstance(value, dict):
        raise ConfigError(f"config key {key!r} expects a JSON object, got {value!r}")
    return value


def make_config(config_cls: type[MethodConfig], overrides: dict[str, Any] | None = None) -> MethodConfig:
    """Instantiate a config from overrides, rejecting unknown keys and badly typed values."""
    overrides = dict(overrides or {})
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    check_keys(overrides, fields, f"{config_cls.__name__}")
    hints = typing.get_type_hints(config_cls)
    values = {k: _coerce(v, hints.get(k, Any), k) for k, v in overrides.items()}
    config = config_cls(**values)
    config.validate()
    return config


def canonical_overrides(config_cls: type[MethodConfig], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Overrides as the config resolves them, minus those equal to the defaults: `lr=1e-2` and `lr=0.01` give
    {"lr": 0.01}, `hidden=[64, 64]` gives {"hidden": [64, 64]}, `lr=0.001` (the default) gives {}. JSON-able
    (tuples become lists). Raises ConfigError like make_config on unknown keys or bad values."""
    import json

    config, default = make_config(config_cls, overrides), config_cls()
    out = {}
    for key in sorted(overrides or {}):
        value = json.loads(json.dumps(getattr(config, key), default=str))
        if value != json.loads(json.dumps(getattr(default, key), default=str)):
            out[key] = value
    return out


@dataclass
class FitResult:
    """What a method hands back to the harness."""

    model: nn.Module                                  # serving model: forward(X (B, F_dataset) int) -> logits (B,)
    selected_fields: list[str] | None = None          # fields the serving model reads, when the method chose them
    field_dims: dict[str, int] | None = None          # per-field embedding dims, when the method chose them
    field_scores: dict[str, float] | None = None      # importance per field (selectors), higher = more important
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-able method-specific facts (selection order, ...)
    # other models the method trained that are worth knowing about but are not served (each DTF tower, the
    # towers' ensemble): the harness scores them on test (AUC, logloss) into metrics["companions"]; never ranked
    companions: dict[str, nn.Module] = field(default_factory=dict)


# What each family implies (docs/plugins.md, "Families"):
#   backbone          a plain architecture (BackboneMethod); other methods build on it via get_backbone(name), and
#                     the selection table uses its row as the all-fields reference (keep ratio 1.0)
#   selector          chooses a subset of fields: fit must return selected_fields and extra["keep_ratio"]
#                     (share of fields kept), which groups its rows in the selection table
#   model, pruning, dimension-search   labels shown in the leaderboard's family column (no extra contract)
#   reference         not a method to rank but a known bound, e.g. a synthetic log's true click probability
#                     (`oracle`): the leaderboard lists it above the ranked rows, outside every comparison
FAMILIES: tuple[str, ...] = ("model", "backbone", "selector", "pruning", "dimension-search", "reference")


class Method:
    """Base class of every method plugin. Subclass, set the class attributes, implement ``fit``."""

    name: ClassVar[str]
    paper: ClassVar[str] = ""          # citation of the paper the method comes from
    family: ClassVar[str] = "model"    # one of FAMILIES (model, backbone, selector, pruning, ...)
    is_baseline: ClassVar[bool] = False  # the best baseline row is what the leaderboard's p-value compares against
    Config: ClassVar[type[MethodConfig]] = MethodConfig

    def __init__(self, config: MethodConfig | None = None):
        self.config = config if config is not None else self.Config()
        self.config.validate()

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | None = None) -> "Method":
        """Build the method with its paper defaults updated by `overrides` (validated)."""
        return cls(make_config(cls.Config, overrides))

    def fit(self, data: "EncodedDataset", ctx: "RunContext") -> FitResult:
        """Train on ``data.train`` (validating on ``data.valid``) and return the serving model."""
        raise NotImplementedError(f"method {self.name!r} does not implement fit()")


def check_fit_result(result: Any, data: "EncodedDataset", method_name: str, *,
                     family: str | None = None) -> FitResult:
    """Check what a method's ``fit`` returned against the protocol; return it unchanged when it is valid.

    Raises PluginError saying what was expected when: `result` is not a FitResult (e.g. a bare model);
    ``model`` is not an ``nn.Module``; ``selected_fields`` is not a non-empty list of distinct dataset field
    names, or (for a CTRModel) differs from the dataset columns the serving model reads; ``field_dims`` has
    fields that are not kept or values that are not ints >= 0; ``field_scores`` names unknown fields or has
    non-numeric values; ``extra`` is not a dict. With ``family="selector"``, ``selected_fields`` and
    ``extra["keep_ratio"]`` are required. ``companions`` must map names to ``nn.Module`` s.
    """
    who = f"method {method_name!r}: fit() returned"
    if not isinstance(result, FitResult):
        hint = " (wrap the model: `return FitResult(model=model)`)" if isinstance(result, nn.Module) else ""
        raise PluginError(f"{who} a {type(result).__name__}; expected a leanrec.methods.FitResult{hint}")
    if not isinstance(result.model, nn.Module):
        raise PluginError(f"{who} FitResult(model=<{type(result.model).__name__}>); expected the serving model, "
                          "a torch.nn.Module mapping X (B, F) to logits (B,)")
    names = [f.name for f in data.fields]
    kept = names
    sel = result.selected_fields
    if sel is not None:
        if isinstance(sel, str) or not isinstance(sel, Sequence) or not all(isinstance(n, str) for n in sel):
            raise PluginError(f"{who} selected_fields={sel!r}; expected a list of field names (or None)")
        unknown = [n for n in sel if n not in names]
        if unknown:
            raise PluginError(f"{who} selected_fields naming fields the dataset does not have: {unknown}; "
                              f"dataset fields: {names}")
        if not sel or len(set(sel)) != len(sel):
            raise PluginError(f"{who} selected_fields={list(sel)}; expected a non-empty list of distinct names")
        if isinstance(result.model, CTRModel):
            cols = result.model.input_index.tolist()
            read = sorted(names[c] for c in cols if 0 <= c < len(names))
            if len(read) != len(cols) or read != sorted(sel):
                raise PluginError(
                    f"{who} selected_fields={sorted(sel)}, but the serving model reads the fields {read}; "
                    "return the fields the model keeps (drop the others first: model.drop_fields(keep))")
        kept = list(sel)
    dims = result.field_dims
    if dims is not None:
        if not isinstance(dims, dict):
            raise PluginError(f"{who} field_dims={dims!r}; expected a dict field name -> embedding dim")
        stray = [n for n in dims if n not in kept]
        if stray:
            raise PluginError(f"{who} field_dims for fields that are not kept: {stray}; kept fields: {kept}")
        bad = {n: d for n, d in dims.items() if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 0}
        if bad:
            raise PluginError(f"{who} field_dims with values that are not ints >= 0: {bad}")
    scores = result.field_scores
    if scores is not None:
        if not isinstance(scores, dict):
            raise PluginError(f"{who} field_scores={scores!r}; expected a dict field name -> score")
        unknown = [n for n in scores if n not in names]
        if unknown:
            raise PluginError(f"{who} field_scores for fields the dataset does not have: {unknown}")
        bad = {n: v for n, v in scores.items() if isinstance(v, bool) or not isinstance(v, numbers.Real)}
        if bad:
            raise PluginError(f"{who} field_scores with values that are not numbers: {bad}")
    if not isinstance(result.extra, dict):
        raise PluginError(f"{who} extra={result.extra!r}; expected a dict of JSON-able facts")
    comp = result.companions
    if not isinstance(comp, dict) or not all(isinstance(k, str) and isinstance(m, nn.Module) for k, m in comp.items()):
        raise PluginError(f"{who} companions={comp!r}; expected a dict name -> torch.nn.Module (X (B, F) -> logits)")
    if family == "selector":
        missing = "selected_fields" if sel is None else "extra['keep_ratio']" if "keep_ratio" not in result.extra else ""
        if missing:
            raise PluginError(f"{who} no {missing}; a method of family 'selector' returns selected_fields and "
                              "extra['keep_ratio'] (the share of fields kept)")
    return result


def field_specs(data: "EncodedDataset") -> list[FieldSpec]:
    """FieldSpecs for a dataset's fields, in column order."""
    return [FieldSpec(f.name, f.vocab_size) for f in data.fields]


class BackboneMethod(Method):
    """A plain model trained end to end: the model zoo registers one subclass per architecture.

    The model is built as ``model_class(fields, embedding_dim=..., **other config fields)``; training keys of
    MethodConfig are consumed by the trainer, every other config field is passed to the model.
    """

    model_class: ClassVar[type[CTRModel]]
    family = "backbone"

    def model_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.config.to_dict().items() if k not in TRAINING_KEYS}

    def build_model(self, fields: Sequence[FieldSpec], **changes: Any) -> CTRModel:
        """An untrained model over `fields`; `changes` override config values (e.g. embedding_dim=[...])."""
        return self.model_class(list(fields), **{**self.model_kwargs(), **changes})

    def fit(self, data: "EncodedDataset", ctx: "RunContext") -> FitResult:
        model = self.build_model(field_specs(data)).to(ctx.device)
        with ctx.stage("train"):
            ctx.train(model, data, self.config)
        return FitResult(model=model)


def get_backbone(name: str, overrides: dict[str, Any] | None = None) -> BackboneMethod:
    """A registered backbone method (e.g. "deepfm") configured with `overrides`, for methods that build on one
    (Light-FMP, i-Razor, selectors' retraining). Use ``.build_model(fields)`` to get an untrained CTRModel."""
    from leanrec.plugins import registry

    cls = registry().method(name)
    if not (isinstance(cls, type) and issubclass(cls, BackboneMethod)):
        raise ConfigError(f"{name!r} is not a backbone (it is a {getattr(cls, 'family', '?')} method)")
    return cls.from_overrides(overrides)


@dataclass
class BackboneChoiceConfig(MethodConfig):
    """Config of a method that builds on a registered backbone (selectors, Light-FMP, i-Razor, ...).

    ``backbone_config`` holds the backbone's architecture keys (e.g. ``{"hidden": [128, 128]}``); training
    keys and ``embedding_dim`` belong to the method itself, which decides how the backbone is trained.
    """

    backbone: str = "dnn"
    backbone_config: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.backbone_config, dict):
            raise ConfigError(f"backbone_config must be a JSON object, got {self.backbone_config!r}")
        misplaced = sorted(set(self.backbone_config) & (TRAINING_KEYS | {"embedding_dim"}))
        if misplaced:
            raise ConfigError(f"backbone_config may hold architecture keys only; set {misplaced} on the method itself")

    def build_backbone(self) -> BackboneMethod:
        """The configured backbone method, with this method's embedding_dim."""
        return get_backbone(self.backbone, {"embedding_dim": self.embedding_dim, **self.backbone_config})
