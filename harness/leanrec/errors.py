"""Exception hierarchy: every error a user can cause derives from LeanrecError and says how to fix it."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class LeanrecError(Exception):
    """Base class for errors caused by input, configuration or plugins (not by bugs)."""


class UnknownNameError(LeanrecError, KeyError):
    """A method, dataset or other registered name that does not exist."""

    def __init__(self, kind: str, name: str, known: Iterable[str], note: str = ""):
        """`note`: an extra sentence appended to the message (e.g. that a disabled plugin owned the name)."""
        self.kind, self.name, self.known = kind, name, sorted(known)
        close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(self.known) if self.known else "(none registered)"
        super().__init__(f"Unknown {kind} {name!r}.{hint}{' ' + note if note else ''} Known {kind}s: {listing}")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.args[0]


class ConfigError(LeanrecError, ValueError):
    """A bad configuration key or value."""


class DataError(LeanrecError, ValueError):
    """Malformed input data; the message names file, line (text files) or row (1-based, tables such as
    Parquet) and column where known."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 column: str | int | None = None, row: int | None = None):
        self.path, self.line, self.column, self.row = path, line, column, row
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column}")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")


class PluginError(LeanrecError):
    """A plugin failed to load or register, or a method broke the plugin contract (e.g. what ``fit`` returned)."""


def check_keys(given: Iterable[str], allowed: Iterable[str], what: str) -> None:
    """Raise ConfigError naming every unknown key in `given` (with suggestions)."""
    allowed = sorted(allowed)
    bad = [k for k in given if k not in allowed]
    if bad:
        hints = []
        for k in bad:
            close = difflib.get_close_matches(k, allowed, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"Unknown {what} key(s): {', '.join(hints)}. Allowed: {', '.join(allowed)}")
