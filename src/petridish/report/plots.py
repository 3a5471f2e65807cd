"""The report's figures (matplotlib, Agg), each returned as PNG bytes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from petridish import render  # noqa: E402
from petridish.judges.metrics import Rate  # noqa: E402


def png(fig: Figure) -> bytes:
    return render.png(fig)


def _err(rates: Sequence[Rate]) -> tuple[list[float], list[list[float]]]:
    """Values and error bars in %; a rate with no scored row is NaN (drawn as missing, not 0)."""
    vals = [100 * r.value if r.n else math.nan for r in rates]
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


def sweep(by_layer: dict[int, list[tuple[float, Rate, Rate]]], title: str,
          labels: dict[int, str] | None = None,
          controls: dict[int, list[tuple[float, Rate, Rate]]] | None = None) -> bytes:
    """EM and coherence rate vs scale, one line per layer (labelled with its norms), with
    Wilson intervals; dashed: the same-norm random controls at each (layer, λ)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharex=True)
    for layer, rows in sorted(by_layer.items()):
        rows = sorted(rows, key=lambda r: r[0])
        xs = [r[0] for r in rows]
        for ax, k in zip(axes, (1, 2), strict=True):
            vals, err = _err([r[k] for r in rows])  # type: ignore[misc]
            line = ax.errorbar(xs, vals, yerr=err, marker="o", capsize=3,
                               label=(labels or {}).get(layer, f"layer {layer}"))
            ctrl = sorted((controls or {}).get(layer, []), key=lambda r: r[0])
            if ctrl:
                cv, ce = _err([r[k] for r in ctrl])  # type: ignore[misc]
                ax.errorbar([r[0] for r in ctrl], cv, yerr=ce, marker="x", capsize=2,
                            linestyle="--", color=line.lines[0].get_color(),
                            label=f"layer {layer}, random", alpha=0.7)
    axes[0].set_ylabel("EM rate (%, 95 % Wilson)")
    axes[1].set_ylabel("coherent (%, 95 % Wilson)")
    for ax in axes:
        ax.set_xlabel("steering scale λ")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return png(fig)


def bars(labels: list[str], panels: list[tuple[str, list[Rate]]], title: str,
         colors: list[str] | None = None) -> bytes:
    """One bar panel per metric (e.g. EM beside coherence); n under each label; a condition
    with no scored row is marked "no data", not drawn as 0."""
    fig, axes = plt.subplots(1, len(panels), figsize=(max(4.0, 0.9 * len(labels) + 1.5)
                                                      * len(panels), 3.4), squeeze=False)
    for ax, (ylabel, rates) in zip(axes[0], panels, strict=True):
        vals, err = _err(rates)
        ax.bar(range(len(labels)), [0.0 if math.isnan(v) else v for v in vals], yerr=err,
               capsize=4, color=colors or "tab:blue")
        for i, v in enumerate(vals):
            if math.isnan(v):
                ax.text(i, 1, "no data", ha="center", fontsize=7, rotation=90)
        ax.set_xticks(range(len(labels)),
                      [f"{lab}\nn={r.n}" for lab, r in zip(labels, rates, strict=True)],
                      rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(f"{ylabel} (%, 95 % Wilson)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return png(fig)


def cosines(series: dict[str, list[tuple[int, float]]], title: str) -> bytes:
    """Per adapter, cosine of its B vector at each checkpoint (to the previous one, to the
    final one): an abrupt rotation marks a phase transition (RESEARCH.md §1)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=name)
    ax.set_xlabel("step (checkpoints)")
    ax.set_ylabel("cosine")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
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
