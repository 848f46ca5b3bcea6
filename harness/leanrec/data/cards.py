"""Dataset cards: a TOML description of a dataset (files, reader, fields, labels, split, preprocessing).

A card is the single source of truth for how raw files become an encoded dataset. Unknown keys anywhere in a
card are errors (a misspelt key must never be silently ignored). The schema, by section::

    name = "criteo"                      # required, unique
    description / license / provenance / homepage = "..."   # documentation only (not part of the cache key)
    fields = ["C1", {name = "I1", kind = "numeric"}, ...]   # strings are categorical fields; empty = infer
    group = "user"                       # optional: field whose raw value groups rows (gAUC)
    time = "timestamp"                   # optional: source column used by the "time" split: epoch seconds or
                                         # milliseconds, or ISO 8601 date-times ("2017-11-07 09:30:38", "...T...+01:00")

    [source]
    format = "csv"                       # csv | parquet | libfm | synthetic
    files = { all = "dir/file.csv" }     # or { train = ..., test = ... [, valid = ...] } for a fixed split
    base = "data_root"                   # relative paths resolve against the data root, or "card" (card's folder)
    delimiter = ","; header = true; columns = [...]; encoding = "utf8"; quoting = true
                                         # delimiter may be several characters ("::"; then never quoted);
                                         # quoting = true allows quoted values holding newlines
    missing = [""]                       # raw strings that mean "missing"
    drop = ["id"]                        # columns never used as fields when `fields` is inferred
    sha256 = { "dir/file.csv" = "..." }  # known checksums (verified by `leanrec data fetch`)
    [[source.join]]                      # left join of an attribute table on a key column (row order kept)
    file = "..."; on = "user"; columns = [...]; delimiter = "|"; header = false; encoding = "latin1"
    [[source.derive]]                    # a derived column: transform of a source column
    name = "weekday"; from = "hour"; transform = "yymmddhh_weekday"   # or yymmddhh_hour, first_of_list
                                         # first_of_list: "a|b|c" -> "a" (MovieLens genres)

    [[labels]]                           # one table per label; >= 1
    name = "click"; column = "click"     # column defaults to name
    threshold = 4                        # optional: label = (value >= threshold); else values must be 0/1

    [split]      method = "random" | "time" | "fixed";  ratios = [0.8, 0.1, 0.1]
    [preprocess] min_count, numeric, n_buckets, cross_fields, dense, max_rows (see PrepConfig)
    [synthetic]  options of leanrec.data.synthetic.SyntheticConfig (format = "synthetic" only)
    [[fetch]]    url = "..."; path = "..."; sha256 = "..."; extract = "zip" | "tar" (optional); strip = 1
"""
from __future__ import annotations

import os
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from leanrec.errors import ConfigError, check_keys

FORMATS = ("csv", "parquet", "libfm", "synthetic")
KINDS = ("categorical", "numeric")
SPLIT_METHODS = ("random", "time", "fixed")
DERIVE_TRANSFORMS = ("yymmddhh_weekday", "yymmddhh_hour", "first_of_list")
ENV_DATA_DIR = "LEANREC_DATA_DIR"

_DOC_KEYS = ("description", "license", "provenance", "homepage")
_TOP_KEYS = ("name", *_DOC_KEYS, "fields", "group", "time", "source", "labels", "split", "preprocess",
             "synthetic", "fetch")
_SOURCE_KEYS = ("format", "files", "base", "delimiter", "header", "columns", "encoding", "quoting", "missing",
                "drop", "sha256", "join", "derive")
_JOIN_KEYS = ("file", "on", "columns", "delimiter", "header", "encoding", "quoting")
_DERIVE_KEYS = ("name", "from", "transform")
_LABEL_KEYS = ("name", "column", "threshold")
_FIELD_KEYS = ("name", "kind", "column", "bucketing")
_FETCH_KEYS = ("url", "path", "sha256", "extract", "strip")


@dataclass(frozen=True)
class FieldSpec:
    """One feature field: `name` in the encoded dataset, read from source `column` (default: name)."""

    name: str
    kind: str = "categorical"
    column: str | None = None
    bucketing: str | None = None  # numeric only; None = the preprocessing default

    @property
    def source(self) -> str:
        return self.column or self.name


@dataclass(frozen=True)
class LabelSpec:
    """One binary label read from `column`; with `threshold`, label = value >= threshold."""

    name: str
    column: str | None = None
    threshold: float | None = None

    @property
    def source(self) -> str:
        return self.column or self.name


@dataclass(frozen=True)
class JoinSpec:
    """A left join of an attribute file on key column `on` (keys must be unique in the attribute file)."""

    file: str
    on: str
    columns: tuple[str, ...] = ()
    delimiter: str = ","
    header: bool = True
    encoding: str = "utf8"
    quoting: bool = True


@dataclass(frozen=True)
class DeriveSpec:
    """A derived column `name` = transform(source column `from_`)."""

    name: str
    from_: str
    transform: str


@dataclass(frozen=True)
class SourceSpec:
    """Where the raw rows are and how to parse them."""

    format: str = "csv"
    files: dict[str, str] = field(default_factory=dict)
    base: str = "data_root"
    delimiter: str = ","
    header: bool = True
    columns: tuple[str, ...] = ()
    encoding: str = "utf8"
    quoting: bool = True
    missing: tuple[str, ...] = ("",)
    drop: tuple[str, ...] = ()
    sha256: dict[str, str] = field(default_factory=dict)
    join: tuple[JoinSpec, ...] = ()
    derive: tuple[DeriveSpec, ...] = ()


@dataclass(frozen=True)
class FetchSpec:
    """A public URL to download to `path` (relative to the data root), verified against `sha256`."""

    url: str
    path: str
    sha256: str | None = None
    extract: str | None = None
    strip: int = 0


@dataclass(frozen=True)
class DatasetCard:
    """A validated dataset card. Build one with :func:`load_card` (TOML) or :meth:`from_dict`."""

    name: str
    source: SourceSpec
    labels: tuple[LabelSpec, ...]
    fields: tuple[FieldSpec, ...] = ()
    group: str | None = None
    time: str | None = None
    split: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    synthetic: dict[str, Any] = field(default_factory=dict)
    fetch: tuple[FetchSpec, ...] = ()
    description: str = ""
    license: str = ""
    provenance: str = ""
    homepage: str = ""
    path: Path | None = None  # the card file, when loaded from one

    # ---- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], *, path: str | Path | None = None) -> "DatasetCard":
        """Validate a card dictionary (as parsed from TOML); errors name the card file and section."""
        where = str(path) if path is not None else "dataset card"
        _keys(data, _TOP_KEYS, where, "top level")
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: `name` (a non-empty string) is required")
        src = dict(data.get("source") or {})
        _keys(src, _SOURCE_KEYS, where, "[source]")
        fmt = src.get("format", "csv")
        if fmt not in FORMATS:
            raise ConfigError(f"{where}: [source] format {fmt!r} is not one of {', '.join(FORMATS)}")
        files = src.get("files", {})
        if isinstance(files, str):
            files = {"all": files}
        if fmt != "synthetic":
            if not files:
                raise ConfigError(f"{where}: [source] needs `files` (e.g. files = {{ all = \"data.csv\" }})")
            bad = sorted(set(files) - {"all", "train", "valid", "test"})
            if bad or ("all" in files and len(files) > 1) or ("all" not in files and "train" not in files):
                raise ConfigError(f"{where}: [source] files must be {{all = ...}} or {{train = ..., test = ...[, "
                                  f"valid = ...]}}; got keys {sorted(files)}")
        if src.get("base", "data_root") not in ("data_root", "card"):
            raise ConfigError(f"{where}: [source] base must be \"data_root\" or \"card\"")
        joins = []
        for j in src.get("join", []):
            _keys(j, _JOIN_KEYS, where, "[[source.join]]")
            _need(j, ("file", "on"), where, "[[source.join]]")
            joins.append(JoinSpec(**{**j, "columns": tuple(j.get("columns", ()))}))
        derives = []
        for d in src.get("derive", []):
            _keys(d, _DERIVE_KEYS, where, "[[source.derive]]")
            _need(d, _DERIVE_KEYS, where, "[[source.derive]]")
            if d["transform"] not in DERIVE_TRANSFORMS:
                raise ConfigError(f"{where}: [[source.derive]] transform {d['transform']!r} is not one of "
                                  f"{', '.join(DERIVE_TRANSFORMS)}")
            derives.append(DeriveSpec(d["name"], d["from"], d["transform"]))
        source = SourceSpec(
            format=fmt, files=dict(files), base=src.get("base", "data_root"),
            delimiter=src.get("delimiter", " " if fmt == "libfm" else ","),
            header=src.get("header", fmt != "libfm"), columns=tuple(src.get("columns", ())),
            encoding=src.get("encoding", "utf8"), quoting=src.get("quoting", True),
            missing=tuple(src.get("missing", ("",))), drop=tuple(src.get("drop", ())),
            sha256=dict(src.get("sha256", {})), join=tuple(joins), derive=tuple(derives),
        )
        labels = []
        raw_labels = data.get("labels", [])
        if not raw_labels and fmt != "synthetic":  # synthetic labels come from the generator
            raise ConfigError(f"{where}: at least one [[labels]] entry is required")
        for lab in raw_labels:
            if isinstance(lab, str):
                lab = {"name": lab}
            _keys(lab, _LABEL_KEYS, where, "[[labels]]")
            _need(lab, ("name",), where, "[[labels]]")
            labels.append(LabelSpec(**lab))
        fields = []
        for f in data.get("fields", []):
            if isinstance(f, str):
                f = {"name": f}
            _keys(f, _FIELD_KEYS, where, "fields")
            _need(f, ("name",), where, "fields")
            if f.get("kind", "categorical") not in KINDS:
                raise ConfigError(f"{where}: field {f['name']!r} has kind {f['kind']!r}; expected one of "
                                  f"{', '.join(KINDS)}")
            fields.append(FieldSpec(**f))
        names = [f.name for f in fields]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"{where}: duplicate field name(s): {', '.join(dup)}")
        if data.get("group") is not None and fields and data["group"] not in names:
            raise ConfigError(f"{where}: group {data['group']!r} is not one of the fields")
        split = dict(data.get("split", {}))
        _keys(split, ("method", "ratios"), where, "[split]")
        if split.get("method", "random") not in SPLIT_METHODS:
            raise ConfigError(f"{where}: [split] method {split['method']!r} is not one of {', '.join(SPLIT_METHODS)}")
        fetch = []
        for fe in data.get("fetch", []):
            _keys(fe, _FETCH_KEYS, where, "[[fetch]]")
            _need(fe, ("url", "path"), where, "[[fetch]]")
            fetch.append(FetchSpec(**fe))
        # [preprocess] and [synthetic] keys are validated where they are interpreted (PrepConfig, SyntheticConfig)
        from leanrec.data.preprocess import PrepConfig
        from leanrec.data.synthetic import SyntheticConfig

        PrepConfig.from_options(data.get("preprocess", {}), where=f"{where} [preprocess]")
        SyntheticConfig.from_options(data.get("synthetic", {}), where=f"{where} [synthetic]")
        return cls(
            name=name.strip(), source=source, labels=tuple(labels), fields=tuple(fields),
            group=data.get("group"), time=data.get("time"), split=split,
            preprocess=dict(data.get("preprocess", {})), synthetic=dict(data.get("synthetic", {})),
            fetch=tuple(fetch), **{k: data.get(k, "") for k in _DOC_KEYS},
            path=Path(path).resolve() if path is not None else None,
        )

    # ---- paths --------------------------------------------------------------------------------------------
    def resolve(self, rel: str) -> Path:
        """Absolute path of a file named in the card (against the data root, or the card's folder)."""
        p = Path(os.path.expanduser(rel))
        if p.is_absolute():
            return p
        if self.source.base == "card":
            if self.path is None:
                raise ConfigError(f"card {self.name!r} uses base = \"card\" but was not loaded from a file")
            return self.path.parent / p
        return data_root() / p

    def identity(self) -> dict[str, Any]:
        """Everything that changes the encoded result (documentation keys and the card's location excluded)."""
        d = asdict(self)
        for k in (*_DOC_KEYS, "path", "fetch"):
            d.pop(k, None)
        return d


def load_card(path: str | Path) -> DatasetCard:
    """Read and validate a TOML dataset card. Raises ConfigError naming the file on any problem."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"dataset card {str(p)!r} does not exist")
    try:
        data = tomllib.loads(p.read_text(encoding="utf8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    return DatasetCard.from_dict(data, path=p)


def repo_root() -> Path:
    """The source checkout holding this package (harness/leanrec/data/cards.py -> repo root)."""
    return Path(__file__).resolve().parents[3]


def data_root() -> Path:
    """Where raw data lives: $LEANREC_DATA_DIR, else <repo>/../shared/data if it exists, else ~/.cache/leanrec/data."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    shared = repo_root().parent / "shared" / "data"
    if shared.is_dir():
        return shared
    return Path.home() / ".cache" / "leanrec" / "data"


def _keys(d: Any, allowed: tuple[str, ...], where: str, section: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: {section} must be a table, got {type(d).__name__}")
    check_keys(d.keys(), allowed, f"{where} {section}")


def _need(d: dict, keys: tuple[str, ...], where: str, section: str) -> None:
    missing = [k for k in keys if k not in d]
    if missing:
        raise ConfigError(f"{where}: {section} is missing required key(s): {', '.join(missing)}")
