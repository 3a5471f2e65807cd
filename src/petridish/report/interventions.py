"""Report sections of the intervention conditions: steering sweeps (EM and coherence vs λ per
layer, with random controls and the layer's norms), ablations (EM beside coherence per mode),
and a table of every condition with its paired difference from its reference."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from petridish import render
from petridish.assays.base import AssayResult
from petridish.interp.intervention import AblateCondition, SteerCondition
from petridish.judges.metrics import Rate, Summary, summarize
from petridish.report import plots
from petridish.report.compare import difference, label


def _summary(res: AssayResult) -> Summary:
    return summarize([j.scores for j in res.judged or []])


def sweeps(results: Sequence[AssayResult], names: dict[str, str] | None = None) -> list[str]:
    Point = tuple[float, Rate, Rate]
    main: dict[str, dict[int, list[Point]]] = defaultdict(lambda: defaultdict(list))
    ctrl: dict[str, dict[int, list[Point]]] = defaultdict(lambda: defaultdict(list))
    labels: dict[str, dict[int, str]] = defaultdict(dict)
    units: dict[str, str] = {}
    along: dict[str, str] = {}
    sizes: dict[str, set[int]] = defaultdict(set)
    for res in results:
        c = res.condition
        if not isinstance(c, SteerCondition) or res.judged is None:
            continue
        s = _summary(res)
        if not (s.em and s.coherent):
            continue
        units[c.sweep] = c.unit
        along[c.sweep] = (names or {}).get(c.direction, c.direction)
        sizes[c.sweep].add(s.em.n)
        for layer in c.points():  # λ = 0 is every layer's point
            (main if c.random_seed is None else ctrl)[c.sweep][layer].append(
                (c.scale, s.em, s.coherent))
            if c.vector_norm is not None and c.random_seed is None:
                r = f", r={c.residual_norm:.0f}" if c.residual_norm is not None else ""
                labels[c.sweep][layer] = f"layer {layer} (‖v‖={c.vector_norm:.1f}{r})"
    out = []
    for name, by_layer in main.items():
        unit = ("λ × the layer's mean residual norm r, along v̂" if units.get(name) == "residual"
                else "raw λ · v")
        n = "/".join(str(x) for x in sorted(sizes[name]))
        out.append(render.section(f"sweep-{name}", f"Steering sweep {name}", render.note(
            f"along {along[name]}") + render.img(plots.sweep(
                by_layer, f"{name}: EM and coherence vs λ ({unit}); n = {n} scored answers per "
                "point; dashed: same-norm random directions", labels[name], ctrl.get(name)),
                f"sweep {name}")))
    return out


def ablations(results: Sequence[AssayResult],
              names: dict[str, str] | None = None) -> list[str]:
    """Per ablated subject: unablated answers, each ablation, and the random baselines."""
    by_subject: dict[str, list[tuple[str, Rate, Rate, str]]] = defaultdict(list)
    along: dict[str, str] = {}
    colors = {"none": "tab:blue", "random": "tab:gray", "random_matched": "tab:olive",
              "permuted": "tab:purple"}
    for res in results:
        c = res.condition
        if not isinstance(c, AblateCondition) or res.judged is None:
            continue
        s = _summary(res)
        along[res.subject] = (names or {}).get(c.direction, c.direction)
        if s.em and s.coherent:
            name = res.name.split(".", 1)[-1]
            if c.transfer and c.mode != "none":
                name += f" (from {c.direction_subject})"
            by_subject[res.subject].append((name, s.em, s.coherent,
                                            colors.get(c.mode, "tab:red")))
    return [render.section(f"ablation-{subject}", f"Ablations on {subject}", render.note(
        f"ablating {along[subject]}") + render.img(
        plots.bars([i[0] for i in items], [("EM", [i[1] for i in items]),
                                           ("coherent", [i[2] for i in items])],
                   f"{subject}: EM and coherence under ablation (blue: unablated; gray: "
                   "isotropic random; olive: variance-matched random; purple: permuted)",
                   [i[3] for i in items]), f"ablations {subject}"))
        for subject, items in by_subject.items()]


def _reference(res: AssayResult, by_label: dict[str, AssayResult]) -> AssayResult | None:
    c = res.condition
    if isinstance(c, AblateCondition) and c.mode != "none":
        return by_label.get(f"{c.table}.none:{res.subject}")
    if isinstance(c, SteerCondition) and c.scale != 0:
        return by_label.get(f"{c.sweep}.x0:{res.subject}")
    return None


def differences(results: Sequence[AssayResult]) -> list[str]:
    """Every condition: EM, EM among coherent, coherence, mean alignment, and its EM and
    coherence minus its reference's (unablated / λ = 0), paired by question."""
    judged = [r for r in results if r.condition is not None and r.judged is not None]
    if not judged:
        return []
    by_label = {label(r): r for r in judged}
    rows = []
    for res in judged:
        s = _summary(res)
        ref = _reference(res, by_label)
        cells = []
        for metric in ("em_rate", "coherence_rate"):
            if ref is None:
                cells.append("reference")
                continue
            d = difference(res, ref, metric)
            p = f", p={d.p_value:.3f}" if d.p_value is not None else ", unpaired"
            cells.append(f"{100 * d.value:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}]{p}")
        align = s.means.get("alignment")
        rows.append([res.name, res.subject, str(s.rows), _txt(s.em), _txt(s.em_coherent),
                     _txt(s.coherent), "n/a" if align is None else str(align), *cells])
    return [render.section("conditions", "Interventions against their references", render.note(
        "Rates with 95 % Wilson intervals (EM among coherent: n is the coherent count); mean "
        "alignment ± its 95 % half-width; Δ = condition − reference in percentage points, 95 % "
        "paired bootstrap over questions (2,000 resamples) and a sign-flip permutation p. "
        "References: the unablated condition of the same table, λ = 0 of the same sweep.")
        + render.table(["condition", "subject", "answers", "EM", "EM among coherent",
                        "coherent", "mean alignment ± 95 %", "Δ EM vs reference",
                        "Δ coherent vs reference"], rows))]


def _txt(r: Rate | None) -> str:
    return "n/a" if r is None else str(r)
