"""leanrec: which parameter-efficient method should I use on MY logs, and what does it cost?"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("leanrec")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from leanrec.hookspecs import hookimpl  # noqa: E402  (re-exported for plugin authors)

__all__ = ["__version__", "hookimpl"]
