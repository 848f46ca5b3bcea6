"""Progress reporting: a rich progress bar on terminals, quiet elsewhere (CI logs)."""
from __future__ import annotations

import sys
from typing import Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def batch_progress(name: str) -> Callable[[int, int, str], None] | None:
    """A callback(done, total, message) drawing one transient bar; None when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return None
    bar = Progress(TextColumn(f"[bold]{name}[/bold] {{task.description}}"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), transient=True)
    state: dict[str, int] = {}

    def update(done: int, total: int, message: str) -> None:
        if "task" not in state:
            bar.start()
            state["task"] = bar.add_task(message, total=total)
        bar.update(state["task"], completed=done, total=total, description=message)
        if done >= total:
            bar.stop()

    return update
