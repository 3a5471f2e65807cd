"""One self-contained HTML report per run: tables and figures (PNG, base64-embedded); the
assay kinds contribute their own sections."""

from __future__ import annotations

from pathlib import Path

from petridish import render
from petridish.assays.registry import kinds
from petridish.interp.directions import cosine_layers, cosine_sets, describe
from petridish.interp.stage import load_direction
from petridish.judges.captions import judge_caption
from petridish.paths import atomic_write
from petridish.report import interventions, plots
from petridish.report.results import by_kind, load_results
from petridish.report.summary import open_store

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;
padding:3px 8px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{
text-align:left}img{max-width:100%;display:block;margin:.5em 0}.note{color:#555;font-size:13px}
table.answers td{text-align:left;vertical-align:top;max-width:520px}table.answers th{
cursor:pointer}input.filter{width:60%;padding:4px;margin:.5em 0}"""
_CHECK = """<script>window.addEventListener('load',()=>{const imgs=[...document.images];
document.body.dataset.images=imgs.length;document.body.dataset.loaded=
imgs.filter(i=>i.complete&&i.naturalWidth>0).length;
document.body.dataset.answers=document.querySelectorAll('table.answers tbody tr').length;});
function filterRows(box){const q=box.value.toLowerCase();
const rows=box.nextElementSibling.tBodies[0].rows;
for(const r of rows){r.style.display=r.textContent.toLowerCase().includes(q)?'':'none';}}
function sortBy(th){const table=th.closest('table');const k=[...th.parentNode.children]
.indexOf(th);const body=table.tBodies[0];const up=th.dataset.dir!=='up';th.dataset.dir=
up?'up':'down';const val=r=>{const t=r.cells[k].textContent;const x=parseFloat(t);
return isNaN(x)?t:x;};[...body.rows].sort((a,b)=>{const x=val(a),y=val(b);
return (x>y?1:x<y?-1:0)*(up?1:-1);}).forEach(r=>body.appendChild(r));}</script>"""


def build_report(folder: Path) -> Path:
    """Write `report.html` in the run folder (atomically) and return its path: each assay
    kind's section, the judges' validation, training curves, interventions, directions."""
    store = open_store(folder)
    try:
        full = {s.name.removeprefix("train:"): store.train_log(s.key) for s in store.stages()}
        logs = {name: [(int(r["step"]), float(r["loss"])) for r in rows]
                for name, rows in full.items()}
    finally:
        store.close()
    logs = {name: points for name, points in logs.items() if points}  # stages that trained
    results = load_results(folder)
    parts = [f"<h1>petridish run {render.esc(folder.name)}</h1>"]
    known = kinds()
    parts += [known[kind].report(rs) for kind, rs in by_kind(results).items()]
    judges = sorted({r.judge for r in results if r.judge})
    if judges:
        parts.append(render.section("judges", "Judges", "".join(
            render.note(judge_caption(j)) for j in judges)))
    if any(logs.values()):
        parts.append(render.section("training", "Training curves", render.img(
            plots.training_curves(logs), "training loss") + _rotation(full)))
    names = {f.stem: describe(f.stem, load_direction(f).provenance)
             for f in sorted((folder / "directions").glob("*.safetensors"))}
    parts += interventions.sweeps(results, names)
    parts += interventions.ablations(results, names)
    parts += interventions.differences(results)
    parts += _directions(folder)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{render.esc(folder.name)}"
            f"</title><style>{_STYLE}</style>{_CHECK}</head><body>{''.join(parts)}</body></html>")
    path = folder / "report.html"
    atomic_write(path, page)
    return path


def _rotation(logs: dict[str, list[dict[str, object]]]) -> str:
    """Per organism with rank-1 adapters: B's cosine to the previous checkpoint and to the
    final B, at the checkpoints (RESEARCH.md §1: B rotates abruptly at the transition)."""
    out = []
    for organism, rows in logs.items():
        for key, what in (("b_cos_prev", "previous checkpoint"), ("b_cos_final", "final B")):
            series: dict[str, list[tuple[int, float]]] = {}
            for r in rows:
                for module, stats in dict(r["adapters"]).items():  # type: ignore[call-overload]
                    if key in stats:
                        short = module.replace("base_model.model.model.layers.", "L")
                        series.setdefault(short, []).append((int(r["step"]), stats[key]))  # type: ignore[call-overload]
            if series:
                out.append(render.img(plots.cosines(series, f"{organism}: cosine of each "
                                                    f"adapter's B to the {what}"),
                                      f"{organism} B cosine to {what}"))
    return "".join(out)


def _directions(folder: Path) -> list[str]:
    files = sorted((folder / "directions").glob("*.safetensors"))
    if not files:
        return []
    dirs = {f.stem: load_direction(f) for f in files}
    out = ["<h2 id='directions'>Directions</h2>"]
    for name, d in dirs.items():
        m = cosine_layers(d).tolist()
        labels = [str(x) for x in d.layers]
        out.append(f"<h3>{render.esc(describe(name, d.provenance))}</h3>")
        out.append(render.img(plots.heatmap(m, labels, labels, f"{name}: cosine layer × layer"),
                        f"cosine {name}"))
        prov = {k: v for k, v in d.provenance.items() if not isinstance(v, list)}
        out.append(f"<p class='note'>{render.esc(name)}: {render.esc(str(prov))}</p>")
    if len(dirs) > 1:
        first = next(iter(dirs.values()))
        mid = first.layers[len(first.layers) // 2]
        m = cosine_sets(dirs, mid).tolist()
        out.append(render.img(plots.heatmap(m, list(dirs), list(dirs),
                                      f"cosine between directions at layer {mid}"),
                        "cosine sets"))
    return out
