"""Report sections of the intervention conditions: steering sweeps (EM and coherence vs λ per
layer) and ablations (EM per mode beside the unablated and random baselines)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from petridish import render
from petridish.assays.base import AssayResult
from petridish.interp.intervention import AblateCondition, SteerCondition
from petridish.judges.metrics import Rate, summarize
from petridish.report import plots


def sweeps(results: Sequence[AssayResult]) -> list[str]:
    by_sweep: dict[str, dict[int, list[tuple[float, Rate, Rate]]]] = defaultdict(
        lambda: defaultdict(list))
    for res in results:
        c = res.condition
        if isinstance(c, SteerCondition) and res.judged is not None:
            s = summarize([j.scores for j in res.judged])
            if s.em and s.coherent:
                for layer in c.points():  # λ = 0 is every layer's point
                    by_sweep[c.sweep][layer].append((c.scale, s.em, s.coherent))
    return [render.section(f"sweep-{name}", f"Steering sweep {name}", render.img(
        plots.sweep(by_layer, f"{name}: EM and coherence vs λ"), f"sweep {name}"))
        for name, by_layer in by_sweep.items()]


def ablations(results: Sequence[AssayResult]) -> list[str]:
    """Per ablated subject: unablated answers, each ablation, and the random baselines."""
    by_subject: dict[str, list[tuple[str, Rate, str]]] = defaultdict(list)
    colors = {"none": "tab:blue", "random": "tab:gray"}
    for res in results:
        c = res.condition
        if not isinstance(c, AblateCondition) or res.judged is None:
            continue
        s = summarize([j.scores for j in res.judged])
        if s.em:
            label = res.name.split(".", 1)[-1]
            if c.transfer and c.mode != "none":
                label += f" (from {c.direction_subject})"
            by_subject[res.subject].append((label, s.em, colors.get(c.mode, "tab:red")))
    return [render.section(f"ablation-{subject}", f"Ablations on {subject}", render.img(
        plots.bars([i[0] for i in items], [i[1] for i in items], "EM rate (%)",
                   f"{subject}: EM under ablation (gray: random, same norm)",
                   [i[2] for i in items]), f"ablations {subject}"))
        for subject, items in by_subject.items()]
