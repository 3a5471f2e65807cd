"""The report's figures (matplotlib, Agg), each returned as PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from petridish.judges.metrics import Rate  # noqa: E402


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _err(rates: Sequence[Rate]) -> tuple[list[float], list[list[float]]]:
    vals = [100 * r.value if r.n else 0.0 for r in rates]
    # clamped: at 0 % or 100 % a Wilson bound can sit a rounding error inside the value
    lo = [max(0.0, v - 100 * r.low) if r.n else 0.0 for v, r in zip(vals, rates, strict=True)]
    hi = [max(0.0, 100 * r.high - v) if r.n else 0.0 for v, r in zip(vals, rates, strict=True)]
    return vals, [lo, hi]


def training_curves(logs: dict[str, list[tuple[int, float]]]) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, points in logs.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def sweep(by_layer: dict[int, list[tuple[float, Rate, Rate]]], title: str) -> bytes:
    """EM and coherence rate vs scale, one line per layer, with Wilson intervals."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharex=True)
    for layer, rows in sorted(by_layer.items()):
        rows = sorted(rows, key=lambda r: r[0])
        xs = [r[0] for r in rows]
        for ax, k in zip(axes, (1, 2), strict=True):
            vals, err = _err([r[k] for r in rows])  # type: ignore[misc]
            ax.errorbar(xs, vals, yerr=err, marker="o", capsize=3, label=f"layer {layer}")
    axes[0].set_ylabel("EM rate (%)")
    axes[1].set_ylabel("coherent (%)")
    for ax in axes:
        ax.set_xlabel("steering scale λ")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return png(fig)


def bars(labels: list[str], rates: list[Rate], ylabel: str, title: str,
         colors: list[str] | None = None) -> bytes:
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(labels) + 1.5), 3.2))
    vals, err = _err(rates)
    ax.bar(range(len(labels)), vals, yerr=err, capsize=4, color=colors or "tab:blue")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def heatmap(matrix: list[list[float]], xlabels: list[str], ylabels: list[str],
            title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(5, 4.2))
    im = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
    step = max(1, len(xlabels) // 10)
    ax.set_xticks(range(0, len(xlabels), step), xlabels[::step], fontsize=7)
    ax.set_yticks(range(0, len(ylabels), step), ylabels[::step], fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="cosine")
    return png(fig)
