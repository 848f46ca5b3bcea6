"""Where the running leanrec comes from, for the environment stored in every run record."""
from __future__ import annotations

import subprocess
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


def source_checkout(package_dir: Path | None = None) -> Path | None:
    """The root of leanrec's own source checkout when the package is imported from one (an editable install or
    PYTHONPATH), else None (a wheel install, even inside somebody else's git repository).

    The package lives at ``<root>/harness/leanrec``; `<root>` counts as leanrec's checkout when its
    pyproject.toml names the project ``leanrec`` and it is the top of a git work tree.
    """
    pkg = (package_dir or Path(__file__).resolve().parent).resolve()
    root = pkg.parent.parent
    if pkg.parent.name != "harness" or not (root / ".git").exists():
        return None
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return root if project.get("name") == "leanrec" else None


def leanrec_commit(package_dir: Path | None = None) -> str | None:
    """The git commit of leanrec's own checkout (see :func:`source_checkout`), or None when leanrec is not run
    from its checkout or git is unavailable. Never the commit of a repository that merely contains a venv."""
    root = source_checkout(package_dir)
    if root is None:
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=root)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
