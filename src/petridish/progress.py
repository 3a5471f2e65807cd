"""Progress bars with ETA (rich) for every long stage; silent when not wanted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, emoji=False)


@contextmanager
def progress_bar(
    description: str, total: int, enabled: bool = True
) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`; draws a bar with count, elapsed time and ETA."""
    if not enabled:
        yield lambda n: None
        return
    columns = (
        TextColumn("{task.description}", style="bold", markup=False), BarColumn(),
        MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        try:
            yield lambda n: bar.advance(task, n)
        except BaseException:
            bar.live.transient = True  # an error leaves its one line, not a half bar
            raise
