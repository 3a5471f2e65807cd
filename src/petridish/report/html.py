"""One self-contained HTML report per run: tables and figures (PNG, base64-embedded)."""

from __future__ import annotations

import base64
import html
from collections import defaultdict
from pathlib import Path
from typing import Any

from petridish.interp.directions import cosine_layers, cosine_sets
from petridish.interp.stage import load_direction
from petridish.judges.metrics import Rate, summarize, summarize_by
from petridish.paths import atomic_write
from petridish.report import plots
from petridish.report.judged import judge_caption, judged_stages
from petridish.report.summary import open_store

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;
padding:3px 8px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{
text-align:left}img{max-width:100%;display:block;margin:.5em 0}.note{color:#555;font-size:13px}"""
_CHECK = """<script>window.addEventListener('load',()=>{const imgs=[...document.images];
document.body.dataset.images=imgs.length;document.body.dataset.loaded=
imgs.filter(i=>i.complete&&i.naturalWidth>0).length;});</script>"""


def _img(data: bytes, alt: str) -> str:
    return (f'<img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(data).decode()}">')


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _rate(r: Rate | None) -> str:
    return "n/a" if r is None else str(r)


def build_report(folder: Path) -> Path:
    """Write `report.html` in the run folder (atomically) and return its path."""
    store = open_store(folder)
    try:
        stages = store.stages()
        logs = {s.name.removeprefix("train:"): [(int(r["step"]), float(r["loss"]))
                                                for r in store.train_log(s.key)]
                for s in stages if s.kind == "train"}
    finally:
        store.close()
    judged = judged_stages(folder)
    parts = [f"<h1>petridish run {html.escape(folder.name)}</h1>"]
    parts.append(_summary(judged))
    judges = sorted({str(info["judge"]) for info, _ in judged})
    parts.append("<h2 id='judges'>Judges</h2>" + "".join(
        f"<p class='note'>{html.escape(judge_caption(j))}</p>" for j in judges))
    if any(logs.values()):
        parts.append("<h2 id='training'>Training curves</h2>"
                     + _img(plots.training_curves(logs), "training loss"))
    parts += _sweeps(judged)
    parts += _ablations(judged)
    parts += _directions(folder)
    parts.append(_per_question(judged))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(folder.name)}"
            f"</title><style>{_STYLE}</style>{_CHECK}</head><body>{''.join(parts)}</body></html>")
    path = folder / "report.html"
    atomic_write(path, page)
    return path


def _summary(judged: list[tuple[dict[str, Any], list[Any]]]) -> str:
    rows = []
    for info, js in judged:
        s = summarize([j.scores for j in js])
        align = s.means.get("alignment")
        rows.append([str(info["assay"]), str(info["subject"]), str(s.rows), _rate(s.em),
                     _rate(s.coherent), _rate(s.self_correction),
                     str(align) if align else "n/a"])
    return ("<h2 id='summary'>Rates (scored rows only, 95 % Wilson intervals)</h2>"
            + _table(["assay / condition", "subject", "answers", "EM", "coherent",
                      "self-correction", "mean alignment"], rows))


def _sweeps(judged: list[tuple[dict[str, Any], list[Any]]]) -> list[str]:
    sweeps: dict[str, dict[int, list[tuple[float, Rate, Rate]]]] = defaultdict(
        lambda: defaultdict(list))
    for info, js in judged:
        c = info.get("condition") or {}
        if c.get("kind") == "steer":
            s = summarize([j.scores for j in js])
            if s.em and s.coherent:
                for layer in c.get("layers") or [c["layer"]]:  # λ = 0 is every layer's point
                    sweeps[c["sweep"]][int(layer)].append((float(c["scale"]), s.em, s.coherent))
    out = []
    for name, by_layer in sweeps.items():
        out.append(f"<h2 id='sweep-{html.escape(name)}'>Steering sweep {html.escape(name)}</h2>"
                   + _img(plots.sweep(by_layer, f"{name}: EM and coherence vs λ"),
                          f"sweep {name}"))
    return out


def _ablations(judged: list[tuple[dict[str, Any], list[Any]]]) -> list[str]:
    """Per ablated subject: unablated answers, each ablation, and the random baselines."""
    by_subject: dict[str, list[tuple[str, Rate, str]]] = defaultdict(list)
    colors = {"none": "tab:blue", "random": "tab:gray"}
    for info, js in judged:
        s = summarize([j.scores for j in js])
        c = info.get("condition") or {}
        if c.get("kind") == "ablate" and s.em:
            label = str(info["assay"]).split(".", 1)[-1]
            if c.get("transfer") and c.get("mode") != "none":
                label += f" (from {c['direction_subject']})"
            by_subject[str(info["subject"])].append((label, s.em,
                                                     colors.get(c["mode"], "tab:red")))
    out = []
    for subject, items in by_subject.items():
        out.append(f"<h2 id='ablation-{html.escape(subject)}'>Ablations on "
                   f"{html.escape(subject)}</h2>" + _img(plots.bars(
                       [i[0] for i in items], [i[1] for i in items], "EM rate (%)",
                       f"{subject}: EM under ablation (gray: random, same norm)",
                       [i[2] for i in items]), f"ablations {subject}"))
    return out


def _directions(folder: Path) -> list[str]:
    files = sorted((folder / "directions").glob("*.safetensors"))
    if not files:
        return []
    dirs = {f.stem: load_direction(f) for f in files}
    out = ["<h2 id='directions'>Directions</h2>"]
    for name, d in dirs.items():
        m = cosine_layers(d).tolist()
        labels = [str(x) for x in d.layers]
        out.append(_img(plots.heatmap(m, labels, labels, f"{name}: cosine layer × layer"),
                        f"cosine {name}"))
        prov = {k: v for k, v in d.provenance.items() if not isinstance(v, list)}
        out.append(f"<p class='note'>{html.escape(name)}: {html.escape(str(prov))}</p>")
    if len(dirs) > 1:
        first = next(iter(dirs.values()))
        mid = first.layers[len(first.layers) // 2]
        m = cosine_sets(dirs, mid).tolist()
        out.append(_img(plots.heatmap(m, list(dirs), list(dirs),
                                      f"cosine between directions at layer {mid}"),
                        "cosine sets"))
    return out


def _per_question(judged: list[tuple[dict[str, Any], list[Any]]]) -> str:
    rows = []
    for info, js in judged:
        if info.get("condition"):
            continue
        keys = [[f"{j.response.question_set}/{j.response.question_id}"] for j in js]
        for s in summarize_by([j.scores for j in js], keys):
            rows.append([str(info["subject"]), s.group, str(s.rows), _rate(s.em),
                         _rate(s.coherent)])
    return ("<h2 id='questions'>Per question</h2>"
            + _table(["subject", "question", "answers", "EM", "coherent"], rows))
