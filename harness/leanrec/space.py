"""Search spaces for `leanrec tune`, declared next to a method's config (see docs/tune.md).

A config field is tunable when its dataclass field carries a space in its metadata::

    from leanrec.space import Choice, LogUniform, Uniform, tunable

    @dataclass
    class MyConfig(MethodConfig):
        keep_ratio: float = tunable(0.5, Uniform(0.2, 1.0))   # = field(default=0.5, metadata={"search": ...})
        temperature: float = tunable(0.1, LogUniform(0.01, 1.0))
        embedding_dim: int = tunable(10, None)                # not searched here (the shared key is removed)

A field's space is its nearest declaration in the config's class hierarchy: ``MethodConfig`` declares the
shared training keys (``lr``, ``embedding_dim``, ``batch_size``), so every method gets them, and a subclass that
re-declares a field without metadata (e.g. ``embedding_dim: int = 16``) keeps its parent's space;
``tunable(default, None)`` takes a field out of the search. This module does not need Optuna.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from leanrec.errors import ConfigError

if TYPE_CHECKING:
    from leanrec.methods import Method, MethodConfig
    from leanrec.protocol import Budget

SEARCH_KEY = "search"
SIGNIFICANT_DIGITS = 3   # sampled floats are rounded to this many digits, so variant names stay readable


class SearchSpaceError(ConfigError):
    """A search space that cannot be searched (bad range, values the config rejects, wrong kind for the field)."""


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from [low, high] (rounded to 3 significant digits, or to multiples of `step`)."""

    low: float
    high: float
    step: float | None = None

    def check(self) -> None:
        if not (_finite(self.low) and _finite(self.high) and self.low < self.high):
            raise SearchSpaceError(f"needs finite low < high, got [{self.low}, {self.high}]")
        if self.step is not None and not (_finite(self.step) and 0 < self.step <= self.high - self.low):
            raise SearchSpaceError(f"step must be in (0, high - low], got {self.step}")

    def bounds(self) -> list[Any]:
        return [self.low, self.high]


@dataclass(frozen=True)
class LogUniform:
    """A positive float whose logarithm is uniform on [log low, log high] (rounded to 3 significant digits)."""

    low: float
    high: float

    def check(self) -> None:
        if not (_finite(self.low) and _finite(self.high) and 0 < self.low < self.high):
            raise SearchSpaceError(f"needs 0 < low < high, got [{self.low}, {self.high}]")

    def bounds(self) -> list[Any]:
        return [self.low, self.high]


@dataclass(frozen=True)
class IntRange:
    """An integer in [low, high] (every `step`-th; `log` samples its logarithm uniformly)."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def check(self) -> None:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high, self.step)):
            raise SearchSpaceError(f"needs integer low, high and step, got {self.low!r}, {self.high!r}, {self.step!r}")
        if not self.low < self.high or self.step < 1 or (self.log and (self.low < 1 or self.step != 1)):
            raise SearchSpaceError(f"needs low < high, step >= 1 (log: low >= 1, step 1), got "
                                   f"[{self.low}, {self.high}] step {self.step}")

    def bounds(self) -> list[Any]:
        return [self.low, self.high]


@dataclass(frozen=True)
class Choice:
    """One of a few values (numbers, strings, booleans or lists such as layer widths)."""

    values: tuple[Any, ...]

    def __init__(self, *values: Any):
        object.__setattr__(self, "values", tuple(_freeze(v) for v in values))

    def check(self) -> None:
        if len(self.values) < 1:
            raise SearchSpaceError("needs at least one value")
        if len({encode(v) for v in self.values}) != len(self.values):
            raise SearchSpaceError(f"has repeated values: {list(self.values)}")

    def bounds(self) -> list[Any]:
        return list(self.values)


Space = Union[Uniform, LogUniform, IntRange, Choice]
SPACES = (Uniform, LogUniform, IntRange, Choice)


def tunable(default: Any, space: Space | None) -> Any:
    """A dataclass field with `default` whose search space is `space` (None: not searched, even where a
    parent class declares a space for it). Lists and dicts become default factories."""
    metadata = {SEARCH_KEY: space}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def declared_space(config_cls: type["MethodConfig"]) -> dict[str, Space]:
    """Every field's nearest declared space in `config_cls`'s hierarchy (fields declared None left out)."""
    out: dict[str, Space] = {}
    for f in dataclasses.fields(config_cls):
        for klass in config_cls.__mro__:
            own = klass.__dict__.get("__annotations__", {})
            if f.name not in own or not dataclasses.is_dataclass(klass):
                continue
            declared = klass.__dataclass_fields__[f.name].metadata
            if SEARCH_KEY in declared:
                if declared[SEARCH_KEY] is not None:
                    out[f.name] = declared[SEARCH_KEY]
                break
    return out


def search_space(method_cls: type["Method"], *, fixed: dict[str, Any] | None = None,
                 budget: "Budget | None" = None) -> dict[str, Space]:
    """The space `leanrec tune` searches for `method_cls`: its config's declared spaces, minus the keys in
    `fixed` (overrides given on the command line). Under a budget with ``max_batch_size``, batch sizes above
    the cap are left out, and batch_size is not searched when fewer than two remain.

    Every space is checked: a bad range, a kind that does not fit the field, or an end point or value the
    config itself rejects (e.g. dropout 1.0) raises :class:`SearchSpaceError` naming the method and key."""
    from leanrec.methods import make_config

    out: dict[str, Space] = {}
    defaults = method_cls.Config()
    for key, space in declared_space(method_cls.Config).items():
        if key in (fixed or {}):
            continue
        where = f"{method_cls.name}: search space of {key!r} ({space!r})"
        if not isinstance(space, SPACES):
            raise SearchSpaceError(f"{where}: not a leanrec.space space (Uniform, LogUniform, IntRange, Choice)")
        try:
            space.check()
            for value in space.bounds():
                make_config(method_cls.Config, {**(fixed or {}), key: thaw(value)})
        except ConfigError as exc:
            raise SearchSpaceError(f"{where}: {exc}") from None
        if isinstance(space, Choice):   # the default is always a candidate (trial 0 runs the defaults)
            default = _freeze(getattr(defaults, key))
            if encode(default) not in {encode(v) for v in space.values}:
                space = Choice(*space.values, default)
        if key == "batch_size" and budget is not None and budget.max_batch_size and isinstance(space, Choice):
            kept = tuple(v for v in space.values if v <= budget.max_batch_size)
            if len(kept) < 2:
                continue
            space = Choice(*kept)
        out[key] = space
    return out


def suggest(trial: Any, key: str, space: Space) -> Any:
    """A config value for `key` drawn by an Optuna trial (floats rounded, Choice values decoded)."""
    if isinstance(space, Choice):
        return decode(trial.suggest_categorical(key, [encode(v) for v in space.values]))
    if isinstance(space, IntRange):
        return trial.suggest_int(key, space.low, space.high, step=space.step, log=space.log)
    if isinstance(space, Uniform) and space.step is not None:
        return round(trial.suggest_float(key, space.low, space.high, step=space.step), 12)
    return min(max(round_sig(trial.suggest_float(key, space.low, space.high, log=isinstance(space, LogUniform))),
                   space.low), space.high)


def default_params(space: dict[str, Space], config: "MethodConfig") -> dict[str, Any]:
    """Optuna parameters (encoded as :func:`suggest` asks for them) that reproduce `config`'s values, for the
    keys whose value lies in its space (the others are left for the sampler)."""
    out = {}
    for key, s in space.items():
        value = _freeze(getattr(config, key))
        if isinstance(s, Choice):
            if encode(value) in {encode(v) for v in s.values}:
                out[key] = encode(value)
        elif s.low <= value <= s.high:
            out[key] = value
    return out


def describe(space: dict[str, Space]) -> dict[str, str]:
    """A JSON-able, readable form of a space (stored with every study)."""
    return {k: repr(v) for k, v in sorted(space.items())}


def round_sig(x: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    return float(f"{x:.{digits}g}") if x else 0.0


def encode(value: Any) -> Any:
    """Optuna's categorical choices are None, bool, int, float or str: lists travel as canonical JSON."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return "json:" + json.dumps(thaw(value), separators=(",", ":"))


def decode(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("json:"):
        return json.loads(value[5:])
    return value


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
