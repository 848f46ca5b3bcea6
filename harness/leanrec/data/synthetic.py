"""Synthetic CTR logs with planted ground truth, generated in memory or streamed to disk.

The generating process (a *plan*) depends only on the options and `seed`, never on the number of rows, so
`generate(n)` and `write(path, n)` draw rows from the same process in fixed-size chunks.

Fields are named C1..Cn (names do not reveal roles). Values are integer ids drawn from a Zipf-like law
(a power law x^-zipf on [1, K+1) floored to ids 0..K-1) with Criteo-like cardinalities spread geometrically from 3 to `max_cardinality`. Roles:

- informative: additive per-value logit effects (Gaussian, standardised to std `effect` under the field's
  value distribution);
- interaction: a pair informative only jointly: logit += interaction_effect * s_a[v_a] * s_b[v_b] with signs
  s in {-1, +1} balanced under the Zipf mass, so each field alone carries ~0 information about the label;
- redundant: a near-copy of an informative field (its value relabelled; replaced by a fresh draw with
  probability `redundancy_noise`);
- noise: independent of everything.

With ``teacher_width > 0`` the informative fields also feed a *teacher*: a fixed random network (an embedding of
`teacher_dim` per value, two tanh layers of `teacher_width`) whose output, standardised to std `teacher_effect`,
is added to the logit. Its signal is a dense high-order interaction of those fields, which a model needs
capacity (and rows) to learn: the log for scaling studies, where the additive effects alone leave larger models
nothing to gain (their ceiling, the `oracle` row, is reached by small ones).

Label 1 ("click") ~ Bernoulli(sigmoid(bias + effects)) with bias calibrated to `ctr`. With n_labels = 2 a
second label ("conversion") is 1 only for clicks, with probability sigmoid(bias2 + other informative effects).
"""
from __future__ import annotations

from functools import lru_cache
from dataclasses import asdict, dataclass, field, fields as dc_fields, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from leanrec.errors import ConfigError, check_keys

LABEL_NAMES = ("click", "conversion")


@dataclass(frozen=True)
class SyntheticConfig:
    """Options of the synthetic generator (card [synthetic] section, or overrides={"synthetic": {...}})."""

    n_rows: int = 100_000
    n_fields: int = 20
    n_informative: int = 5
    n_redundant: int = 3
    n_interaction: int = 2
    n_labels: int = 1
    max_cardinality: int = 10_000
    zipf: float = 1.1
    effect: float = 0.8
    interaction_effect: float = 1.5
    redundancy_noise: float = 0.2
    ctr: float = 0.25
    conversion_rate: float = 0.3
    seed: int = 0
    teacher_width: int = 0      # 0: no teacher network (the logit is additive effects and the interaction pair)
    teacher_dim: int = 8
    teacher_effect: float = 2.0

    @classmethod
    def from_options(cls, options: dict[str, Any], *, where: str = "synthetic options",
                     base: "SyntheticConfig | None" = None) -> "SyntheticConfig":
        check_keys(options.keys(), [f.name for f in dc_fields(cls)], where)
        cfg = replace(base or cls(), **options)
        roles = cfg.n_informative + cfg.n_redundant + cfg.n_interaction
        problems = []
        if cfg.n_rows < 1:
            problems.append("n_rows must be >= 1")
        if cfg.n_interaction not in (0, 2):
            problems.append("n_interaction must be 0 or 2")
        if cfg.n_informative < 1 or cfg.n_redundant > cfg.n_informative:
            problems.append("need n_informative >= 1 and n_redundant <= n_informative")
        if roles > cfg.n_fields:
            problems.append(f"n_fields ({cfg.n_fields}) < informative + redundant + interaction ({roles})")
        if cfg.n_labels not in (1, 2):
            problems.append("n_labels must be 1 or 2")
        if cfg.max_cardinality < 3:
            problems.append("max_cardinality must be >= 3")
        if not 0 < cfg.ctr < 1 or not 0 < cfg.conversion_rate < 1 or not 0 <= cfg.redundancy_noise <= 1:
            problems.append("ctr and conversion_rate must be in (0, 1), redundancy_noise in [0, 1]")
        if cfg.teacher_width < 0 or cfg.teacher_dim < 1 or cfg.teacher_effect < 0:
            problems.append("need teacher_width >= 0 (0 = none), teacher_dim >= 1 and teacher_effect >= 0")
        if problems:
            raise ConfigError(f"{where}: " + "; ".join(problems))
        return cfg


@dataclass
class _Plan:
    names: list[str]
    cards: np.ndarray                 # cardinality per field
    cdfs: list[np.ndarray]            # Zipf CDF per field
    roles: dict[str, list[int]]       # role -> field indices
    copy_of: dict[int, int]           # redundant field -> informative source
    relabel: dict[int, np.ndarray]    # redundant field -> value permutation of its source
    effects: dict[int, np.ndarray]    # informative field -> per-value logit effect (click)
    effects2: dict[int, np.ndarray]   # informative field -> per-value logit effect (conversion)
    signs: dict[int, np.ndarray]      # interaction field -> per-value sign
    zipf: float = 1.1
    bias: float = 0.0
    bias2: float = 0.0
    teacher: "_Teacher | None" = None
    values: "LogitTables | None" = None   # the click logit's lookups by value id (set by _make_plan)

    def ground_truth(self) -> dict[str, Any]:
        gt: dict[str, Any] = {role: [self.names[i] for i in idx] for role, idx in self.roles.items()}
        gt["redundant_of"] = {self.names[r]: self.names[s] for r, s in self.copy_of.items()}
        gt["cardinality"] = {n: int(c) for n, c in zip(self.names, self.cards)}
        return gt


@dataclass
class _Teacher:
    """A fixed random network over the informative fields: per-value embeddings, two tanh layers, a linear read
    out, shifted and scaled so its output has mean 0 and std `effect` on the generator's own rows."""

    fields: list[int]                 # informative field indices, in input order
    embeddings: list[np.ndarray]      # per field: (cardinality, dim)
    layers: list[tuple[np.ndarray, np.ndarray]]   # (W, b) of the two tanh layers
    readout: np.ndarray
    shift: float = 0.0
    scale: float = 1.0

    def raw(self, embedded: list[np.ndarray]) -> np.ndarray:
        """The network's output from each field's embedding rows (n, dim), before standardising."""
        h = np.concatenate(embedded, axis=1)
        for W, b in self.layers:
            h = np.tanh(h @ W + b)
        return h @ self.readout

    def __call__(self, embedded: list[np.ndarray]) -> np.ndarray:
        """The standardised output (its share of the logit)."""
        return (self.raw(embedded) - self.shift) * self.scale


def _make_teacher(cfg: SyntheticConfig, cards: np.ndarray, fields: list[int]) -> _Teacher:
    """The teacher of `cfg` (its own random stream: the rest of the plan is the same with or without one)."""
    rng = np.random.default_rng([cfg.seed, 0x7EAC])
    d, w, gain = cfg.teacher_dim, cfg.teacher_width, 2.0   # gain 2: tanh units work in their nonlinear range
    emb = [rng.normal(size=(int(cards[i]), d)) for i in fields]
    fan_in = d * len(fields)
    layers = [(rng.normal(size=(fan_in, w)) * gain / np.sqrt(fan_in), rng.normal(size=w) * 0.5),
              (rng.normal(size=(w, w)) * gain / np.sqrt(w), rng.normal(size=w) * 0.5)]
    return _Teacher(fields, emb, layers, rng.normal(size=w) / np.sqrt(w))


def _zipf_cdf(k: int, a: float) -> np.ndarray:
    """CDF of the value distribution: a power law p(x) ~ x^-a on [1, k + 1), floored to ids 0..k-1.

    Closed form, so sampling (`_zipf_draw`) is O(1) per row instead of a search over k values.
    """
    return _power_cdf(np.arange(2, k + 2, dtype=np.float64), k, a)


def _power_cdf(x: np.ndarray, k: int, a: float) -> np.ndarray:
    if abs(a - 1.0) < 1e-9:
        c = np.log(x) / np.log(k + 1.0)
    else:
        c = (x ** (1 - a) - 1) / ((k + 1.0) ** (1 - a) - 1)
    c = np.minimum(c, 1.0)
    c[-1:] = 1.0
    return c


def _zipf_draw(k: int, a: float, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sample of `_zipf_cdf(k, a)` from uniforms `u` (int32 ids in [0, k))."""
    if abs(a - 1.0) < 1e-9:
        x = (k + 1.0) ** u
    else:
        x = (1 + u * ((k + 1.0) ** (1 - a) - 1)) ** (1 / (1 - a))
    return np.clip(x.astype(np.int64) - 1, 0, k - 1).astype(np.int32)


def _standardised(effect: np.ndarray, cdf: np.ndarray, scale: float) -> np.ndarray:
    """Per-value effects with mean 0 and standard deviation `scale` under the field's value distribution, so
    every informative field carries a comparable signal whatever its cardinality."""
    p = np.diff(cdf, prepend=0.0)
    centred = effect - p @ effect
    return scale * centred / np.sqrt(p @ centred**2)


def _balanced_signs(cdf: np.ndarray) -> np.ndarray:
    """+-1 per value such that the probability mass of +1 and -1 is as equal as possible (greedy)."""
    p = np.diff(cdf, prepend=0.0)
    signs = np.empty(len(p))
    mass = [0.0, 0.0]
    for i in np.argsort(-p, kind="stable"):  # plan construction only: O(cardinality), not O(rows)
        side = 0 if mass[0] <= mass[1] else 1
        mass[side] += p[i]
        signs[i] = 1.0 if side == 0 else -1.0
    return signs


def make_plan(cfg: SyntheticConfig) -> _Plan:
    """The generating process for `cfg` (independent of n_rows)."""
    return _make_plan(replace(cfg, n_rows=1))


@lru_cache(maxsize=8)
def _make_plan(cfg: SyntheticConfig) -> _Plan:
    rng = np.random.default_rng([cfg.seed, 0x5EED])
    F = cfg.n_fields
    cards = np.unique(np.round(np.geomspace(3, cfg.max_cardinality, F)).astype(np.int64))
    cards = np.resize(cards, F) if len(cards) < F else cards
    cards = rng.permutation(cards)
    order = rng.permutation(F)
    n_inf, n_red, n_int = cfg.n_informative, cfg.n_redundant, cfg.n_interaction
    roles = {"informative": sorted(order[:n_inf].tolist()),
             "interaction": sorted(order[n_inf:n_inf + n_int].tolist()),
             "redundant": sorted(order[n_inf + n_int:n_inf + n_int + n_red].tolist()),
             "noise": sorted(order[n_inf + n_int + n_red:].tolist())}
    for i, k in zip(roles["interaction"], (6, 20)):  # learnable sizes for the pair
        cards[i] = min(k, cfg.max_cardinality)
    copy_of = {r: s for r, s in zip(roles["redundant"], rng.permutation(roles["informative"])[:n_red].tolist())}
    for r, s in copy_of.items():
        cards[r] = cards[s]
    cdfs = [_zipf_cdf(int(k), cfg.zipf) for k in cards]
    effects = {i: _standardised(rng.normal(size=int(cards[i])), cdfs[i], cfg.effect) for i in roles["informative"]}
    effects2 = {i: _standardised(rng.normal(size=int(cards[i])), cdfs[i], cfg.effect) for i in roles["informative"]}
    plan = _Plan(names=[f"C{i + 1}" for i in range(F)], cards=cards, cdfs=cdfs, roles=roles, copy_of=copy_of,
                 relabel={r: rng.permutation(int(cards[s])) for r, s in copy_of.items()},
                 effects=effects, effects2=effects2,
                 signs={i: _balanced_signs(cdfs[i]) for i in roles["interaction"]}, zipf=cfg.zipf)
    # calibrate biases on a fixed sample so the click rate and conversion rate match the options
    X = _draw_fields(plan, 50_000, np.random.default_rng([cfg.seed, 0xCA1]), cfg.redundancy_noise)
    if cfg.teacher_width > 0:
        plan.teacher = teacher = _make_teacher(cfg, cards, roles["informative"])
        out = teacher.raw([e[X[:, i]] for i, e in zip(teacher.fields, teacher.embeddings)])
        teacher.shift, teacher.scale = float(out.mean()), cfg.teacher_effect / float(out.std())
    names = plan.names
    plan.values = LogitTables(
        0.0, {names[i]: e for i, e in plan.effects.items()},
        {names[i]: plan.signs[i] for i in roles["interaction"]}, cfg.interaction_effect, teacher=plan.teacher,
        teacher_embeddings={names[i]: e for i, e in zip(teacher.fields, teacher.embeddings)} if plan.teacher else {})
    plan.bias = _calibrate(_logit(plan, X), cfg.ctr)
    plan.bias2 = _calibrate(_logit2(plan, X), cfg.conversion_rate)
    return plan


def _calibrate(logit: np.ndarray, rate: float) -> float:
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(logit + mid)))) < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _draw_fields(plan: _Plan, n: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    X = np.empty((n, len(plan.names)), dtype=np.int32)
    for j, k in enumerate(plan.cards):
        if j not in plan.copy_of:
            X[:, j] = _zipf_draw(int(k), plan.zipf, rng.random(n))
    for r, s in plan.copy_of.items():
        fresh = _zipf_draw(int(plan.cards[r]), plan.zipf, rng.random(n))
        X[:, r] = np.where(rng.random(n) < noise, fresh, plan.relabel[r][X[:, s]])
    return X


def _logit(plan: _Plan, X: np.ndarray) -> np.ndarray:
    """The click logit of raw rows, without the bias."""
    return plan.values(X, {name: j for j, name in enumerate(plan.names)})


def _logit2(plan: _Plan, X: np.ndarray) -> np.ndarray:
    z = np.zeros(len(X))
    for i, eff in plan.effects2.items():
        z += eff[X[:, i]]
    return z


def _chunk(plan: _Plan, cfg: SyntheticConfig, n: int, rng: np.random.Generator) -> pa.Table:
    X = _draw_fields(plan, n, rng, cfg.redundancy_noise)
    click = rng.random(n) < 1 / (1 + np.exp(-(_logit(plan, X) + plan.bias)))
    cols: dict[str, Any] = {"click": click.astype(np.int8)}
    if cfg.n_labels == 2:
        conv = click & (rng.random(n) < 1 / (1 + np.exp(-(_logit2(plan, X) + plan.bias2))))
        cols["conversion"] = conv.astype(np.int8)
    for j, name in enumerate(plan.names):
        cols[name] = X[:, j]
    return pa.table(cols)


def iter_chunks(cfg: SyntheticConfig, n_rows: int | None = None, chunk_rows: int = 1_000_000
                ) -> Iterator[pa.Table]:
    """Tables of at most `chunk_rows` rows, `n_rows` in total (default cfg.n_rows); deterministic per seed."""
    plan = make_plan(cfg)
    total = cfg.n_rows if n_rows is None else n_rows
    for k, start in enumerate(range(0, total, chunk_rows)):
        yield _chunk(plan, cfg, min(chunk_rows, total - start), np.random.default_rng([cfg.seed, 0xDA7A, k]))


def generate(cfg: SyntheticConfig | None = None, **options: Any) -> tuple[pa.Table, dict[str, Any]]:
    """All rows in memory: (table with label columns then C1..Cn as int32, ground truth)."""
    cfg = SyntheticConfig.from_options(options, base=cfg)
    table = pa.concat_tables(iter_chunks(cfg))
    return table, ground_truth(cfg)


def ground_truth(cfg: SyntheticConfig) -> dict[str, Any]:
    """{"informative", "interaction", "redundant", "noise": [field names], "redundant_of", "cardinality"}."""
    return make_plan(cfg).ground_truth()


def true_logit(cfg: SyntheticConfig, X: np.ndarray) -> np.ndarray:
    """The generator's click logit (bias included) of raw rows `X` (n, n_fields) of value ids: sigmoid of it is
    the true click probability, the Bayes-optimal prediction."""
    plan = make_plan(cfg)
    return _logit(plan, np.asarray(X)) + plan.bias


@dataclass
class LogitTables:
    """The generator's click logit as lookups per field: ``bias + sum_f effects[f][x_f] + interaction_effect *
    signs[a][x_a] * signs[b][x_b] + teacher(teacher_embeddings[f][x_f], ...)``, where x_f is a row's value id
    (the plan's own tables, :func:`true_logit`) or its code in an encoded dataset (:func:`encoded_logit`)."""

    bias: float
    effects: dict[str, np.ndarray]        # informative field -> logit effect per value / code
    signs: dict[str, np.ndarray]          # interaction field -> (expected) sign per value / code (empty: no pair)
    interaction_effect: float
    merged_share: dict[str, float] = field(default_factory=dict)   # field -> mass of its values in the OOV code
    teacher: "_Teacher | None" = None
    teacher_embeddings: dict[str, np.ndarray] = field(default_factory=dict)   # field -> embedding per value / code

    def fields(self) -> list[str]:
        """The fields the logit reads."""
        return list(dict.fromkeys([*self.effects, *self.signs, *self.teacher_embeddings]))

    def __call__(self, X: np.ndarray, columns: dict[str, int]) -> np.ndarray:
        """Logits of rows `X` whose field f is column `columns[f]`."""
        z = np.full(len(X), self.bias)
        for f, eff in self.effects.items():
            z += eff[X[:, columns[f]]]
        if self.signs:
            (a, sa), (b, sb) = self.signs.items()
            z += self.interaction_effect * sa[X[:, columns[a]]] * sb[X[:, columns[b]]]
        if self.teacher is not None:
            z += self.teacher([e[X[:, columns[f]]] for f, e in self.teacher_embeddings.items()])
        return z


def logit_fields(cfg: SyntheticConfig) -> list[str]:
    """The fields the generator's click logit reads (informative and interaction fields): the vocabularies
    :func:`encoded_logit` needs."""
    return make_plan(cfg).values.fields()


def encoded_logit(cfg: SyntheticConfig, vocab_values: dict[str, np.ndarray]) -> LogitTables:
    """The generator's logit seen through an encoding: `vocab_values[f]` is the raw value id of each code
    2, 3, ... of field f (codes 0 = missing and 1 = out of vocabulary are implicit, as in leanrec's caches).

    A code that holds one value gets that value's effect; the OOV code (values unseen in training) gets the
    mean effect of the values it holds, weighted by their probability, and so does the missing code (never
    used: the generator has no nulls). Interaction signs and the teacher's embeddings likewise (for the teacher
    that is an approximation: the network of the mean embedding, not the mean of the network). Where every
    value has its own code this is exactly :func:`true_logit`; for a merged code it is the expected effect of
    the values behind it, all a model reading the codes can know of them.
    """
    plan = make_plan(cfg)
    values = plan.values
    merged_share: dict[str, float] = {}

    def per_code(name: str, per_value: np.ndarray) -> np.ndarray:
        if name not in vocab_values:
            raise ConfigError(f"encoded_logit: no vocabulary for field {name!r} of the generator")
        ids = np.asarray(vocab_values[name], dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(per_value) or len(np.unique(ids)) != ids.size):
            raise ConfigError(f"encoded_logit: field {name!r}'s vocabulary is not a set of its value ids "
                              f"0..{len(per_value) - 1}")
        pmf = np.diff(plan.cdfs[plan.names.index(name)], prepend=0.0)
        merged = np.ones(len(per_value), dtype=bool)
        merged[ids] = False
        mass = merged_share[name] = float(pmf[merged].sum())
        oov = pmf[merged] @ per_value[merged] / mass if mass > 0 else np.zeros(per_value.shape[1:])
        overall = pmf @ per_value
        return np.concatenate([[overall, oov], per_value[ids]])

    def coded(tables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: per_code(name, per_value) for name, per_value in tables.items()}

    return LogitTables(plan.bias, coded(values.effects), coded(values.signs), values.interaction_effect,
                       merged_share, values.teacher, coded(values.teacher_embeddings))


def label_names(cfg: SyntheticConfig) -> list[str]:
    return list(LABEL_NAMES[:cfg.n_labels])


def write(path: str | Path, n_rows: int, format: str = "parquet", *, chunk_rows: int = 1_000_000,
          **options: Any) -> dict[str, Any]:
    """Stream `n_rows` synthetic rows to `path` (parquet, or TSV with a header) in bounded memory.

    Returns the ground truth. The file appears atomically (written as `path.tmp`, then renamed).
    """
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if format not in ("parquet", "tsv"):
        raise ConfigError(f"format must be 'parquet' or 'tsv', got {format!r}")
    cfg = SyntheticConfig.from_options({**options, "n_rows": n_rows})
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    writer = None
    try:
        for table in iter_chunks(cfg, n_rows, chunk_rows):
            if writer is None:
                writer = (pq.ParquetWriter(tmp, table.schema) if format == "parquet" else
                          pcsv.CSVWriter(tmp, table.schema, write_options=pcsv.WriteOptions(delimiter="\t")))
            writer.write_table(table)
        writer.close()
        tmp.replace(path)
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass
        tmp.unlink(missing_ok=True)
        raise
    gt = ground_truth(cfg)
    gt["config"] = asdict(cfg)
    return gt
