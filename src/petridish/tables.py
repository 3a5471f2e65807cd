"""Terminal tables whose cells fold instead of truncating: two names never print the same."""

from __future__ import annotations

from rich.table import Column, Table


def new_table(*headers: str, title: str | None = None) -> Table:
    return Table(*(Column(h, overflow="fold") for h in headers), title=title)
