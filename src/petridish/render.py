"""HTML pieces every report section is made of (escaped text, tables, embedded PNGs)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any


def esc(text: object) -> str:
    return html.escape(str(text))


def table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def answers_table(head: list[str], rows: list[list[str]]) -> str:
    """A table the page's script makes filterable (a text box) and sortable (click a header):
    researchers read transcripts, not only rates."""
    th = "".join(f"<th onclick='sortBy(this)'>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return ("<input class='filter' placeholder='filter answers (any text, e.g. a condition or "
            "a word)' oninput='filterRows(this)'>"
            f"<table class='answers'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>")


def png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def img(data: bytes, alt: str) -> str:
    return (f'<img class="plot" alt="{esc(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(data).decode()}">')


def note(text: str) -> str:
    return f"<p class='note'>{esc(text)}</p>"


def section(anchor: str, title: str, body: str) -> str:
    return f"<h2 id='{esc(anchor)}'>{esc(title)}</h2>{body}"
