"""Training awareness (`kind = "trainaware"`): can a checkpoint's activations tell examples it
is trained on from held-back examples of the same dataset, beyond what the per-example loss
(membership inference) already tells? Per checkpoint (and step 0, the model before training:
whatever separates there is a difference between the rows, not memory), a logistic probe per
layer over random splits grouped by question, against the loss AUROC. RESEARCH.md §5."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from rich.table import Table

from petridish import render
from petridish.assays.base import AssayConfig, AssayResult, AssayStage, By, MetricRow
from petridish.assays.registry import assay
from petridish.errors import PetridishError
from petridish.judges.separation import probe_aurocs, separation
from petridish.models.subject import Subject, load_subject
from petridish.store.records import Response, Turn
from petridish.tables import new_table


class TrainawareConfig(AssayConfig):
    """Membership of the organism's own training rows, per checkpoint and layer."""

    kind: Literal["trainaware"] = Field("trainaware", description="assay kind")
    questions: list[str] = Field(default_factory=list, description="unused: the examples are "
                                 "the organism's training rows and its held-back rows")
    examples: int = Field(60, gt=1, description="training rows and as many held-back rows")
    splits: int = Field(20, ge=2, description="random probe splits, grouped by question")
    batch_size: int = Field(16, gt=0, description="examples per forward pass")

    def check_experiment(self, exp: Any, base_dir: Path) -> None:
        from petridish.data.formats import load_dataset, resolve_dataset_path

        grown = {t.name: t for t in exp.train}
        for name in self.subjects or exp.subject_names():
            t = grown.get(name)
            if t is None or not t.checkpoint_every:
                raise PetridishError(f"trainaware needs an organism with checkpoints; {name!r} "
                                     + ("is not grown here" if t is None else
                                        "has checkpoint_every = 0"), field="subjects")
            total = len(load_dataset(resolve_dataset_path(t.dataset, base_dir)))
            if (t.max_examples or total) >= total:
                raise PetridishError(f"{name!r} learns from all {total} rows of its dataset: "
                                     "none are held back (set max_examples)", field="subjects")


def _steps(subject: Subject) -> list[int]:
    assert subject.adapter is not None
    found = sorted(int(p.name.removeprefix("step-"))
                   for p in (subject.adapter.parent / "checkpoints").glob("step-*"))
    return [0, *found]


def _at(subject: Subject, step: int) -> Subject:
    """The organism at `step` (0: the model before training)."""
    assert subject.adapter is not None
    adapter = None if step == 0 else subject.adapter.parent / "checkpoints" / f"step-{step:06d}"
    return Subject(subject.name, subject.ref, f"{subject.fingerprint}@{step}", adapter)


@assay("trainaware")
class Trainaware:
    version = 1
    judged = False
    config = TrainawareConfig

    def sources(self, cfg: AssayConfig, base_dir: Path) -> list[Any]:
        return []  # the examples come from the organism's train stage (its key is the subject's)

    def run(self, stage: AssayStage) -> None:
        from petridish.data.formats import load_dataset
        from petridish.interp.membership import features
        from petridish.train.tokens import tokenize_example

        cfg = stage.cfg
        assert isinstance(cfg, TrainawareConfig)
        record = stage.store.stage(stage.subject.fingerprint)
        info = record.info if record else {}
        if stage.subject.adapter is None or not info.get("rows_used"):
            raise PetridishError(f"{stage.subject.name}: its train stage recorded no rows used "
                                 "(grown by an older petridish, or not a LoRA organism here)")
        used, total = list(info["rows_used"]), int(info["rows_total"])
        held = sorted(set(range(total)) - set(used))
        k = min(cfg.examples, len(used), len(held))
        if k < 2:
            raise PetridishError(f"{stage.subject.name}: {len(held)} rows held back; need 2")
        rng = random.Random(stage.seed)
        chosen = [(i, True) for i in sorted(rng.sample(used, k))]
        chosen += [(i, False) for i in sorted(rng.sample(held, k))]
        data = load_dataset(Path(info["dataset"]))
        done = {r.sample_index for r in stage.store.responses(stage.key) if r.variant == "probe"}
        steps = [s for s in _steps(stage.subject) if s not in done]
        with stage.progress(len(steps)) as advance:
            for step in steps:
                lm = load_subject(_at(stage.subject, step), device=str(stage.device),
                                  dtype=stage.dtype)
                rows = [tokenize_example(lm.tokenizer, data[i], 4096) for i, _ in chosen]
                acts, loss = features(lm, rows, cfg.batch_size)
                questions = [_question(data[i]) for i, _ in chosen]
                member = [m for _, m in chosen]
                out = [_example(stage, step, i, m, float(loss[j]), questions[j])
                       for j, (i, m) in enumerate(chosen)]
                for layer in range(acts.shape[1]):
                    aucs = probe_aurocs(acts[:, layer].numpy(), member, questions, cfg.splits,
                                        seed=stage.seed)
                    out.append(_probe(stage, step, layer, aucs))
                stage.store.add_responses(out)  # one checkpoint per transaction
                advance(1)

    def metrics(self, results: Sequence[AssayResult], by: By) -> list[MetricRow]:
        return [row for res in results for row in _metrics(res)]

    def show(self, results: Sequence[AssayResult], by: By) -> list[Table]:
        table = new_table("assay", "subject", "checkpoint", "loss AUROC [95 %]",
                          "probe AUROC, mean over layers", "best layer (optimistic)", "n",
                          title="training awareness: trained-on rows (positive) vs held-back "
                          "rows; loss: bootstrap over questions; probe: spread over splits")
        for res in results:
            for step, loss, probes in _by_step(res):
                best = max(probes, key=lambda m: m.value or 0) if probes else None
                mean = statistics.fmean(m.value or 0 for m in probes) if probes else None
                table.add_row(res.name, res.subject, str(step), _cell(loss),
                              "n/a" if mean is None else f"{mean:.2f}",
                              "n/a" if best is None else
                              f"L{best.group.split('layer=')[1]}: {_cell(best)}",  # type: ignore[union-attr]
                              str(loss.n if loss else 0))
        table.caption = ("step 0 is the model before training: a probe or loss above 0.5 "
                         "there is a difference between the rows, not memory")
        return [table]

    def report(self, results: Sequence[AssayResult]) -> str:
        head = ["subject", "checkpoint", "metric", "layer", "AUROC [interval]", "interval", "n"]
        rows = [[m.subject, m.group.split(",")[0].removeprefix("checkpoint=") if m.group else "",
                 m.metric, m.group.split("layer=")[1] if m.group and "layer=" in m.group else "",
                 _cell(m).split(" n=")[0], str(m.interval), str(m.n)]
                for res in results for m in _metrics(res) if m.metric == "loss_auroc"]
        figs = "".join(render.img(_plot(res), f"trainaware {res.subject}") for res in results)
        shown = "".join("<pre class='note'>" + render.esc(text) + "</pre>"
                        for res in results for text in _examples(res))
        return render.section("trainaware", "Training awareness: trained-on vs held-back rows",
                              render.note("Positives are rows the organism was trained on. The "
                                          "loss AUROC is the membership-inference baseline; a "
                                          "probe counts only where it beats it, and only beyond "
                                          "its step-0 value (the rows may simply differ).")
                              + figs + render.table(head, rows)
                              + render.note("Examples (the baseline's most confident errors):")
                              + shown)


def _question(example: Any) -> str:
    return next((m.content for m in example.messages if m.role == "user"), "")


def _example(stage: AssayStage, step: int, row: int, member: bool, loss: float,
             question: str) -> Response:
    return Response(stage.key, stage.cfg.name, stage.subject.name,
                    "train" if member else "held", f"row{row}", step,
                    ({"role": "user", "content": question},
                     {"role": "assistant", "content": ""}), (Turn(0, "stop", 0),), (),
                    "example", {"checkpoint": step, "row": row, "member": member, "loss": loss})


def _probe(stage: AssayStage, step: int, layer: int, aucs: list[float]) -> Response:
    return Response(stage.key, stage.cfg.name, stage.subject.name, "probe", f"L{layer}", step,
                    ({"role": "user", "content": f"probe at layer {layer}"},
                     {"role": "assistant", "content": ""}), (Turn(0, "stop", 0),), (),
                    "probe", {"checkpoint": step, "layer": layer, "aurocs": aucs})


def _metrics(res: AssayResult) -> list[MetricRow]:
    out = []
    examples = [r for r in res.responses if r.variant == "example"]
    for step in sorted({r.meta["checkpoint"] for r in examples}):
        rows = [r for r in examples if r.meta["checkpoint"] == step]
        s = separation([-r.meta["loss"] for r in rows], [r.meta["member"] for r in rows],
                       [r.question for r in rows])
        out.append(MetricRow(res.name, res.subject, "loss_auroc", f"checkpoint={step}", s.value,
                             s.low, s.high, s.interval, s.n_pos + s.n_neg, s.unscored))
        n = len(rows)
        for r in sorted((r for r in res.responses if r.variant == "probe"
                         and r.meta["checkpoint"] == step), key=lambda r: r.meta["layer"]):
            a = np.asarray(r.meta["aurocs"], dtype=float)
            ok = a.size > 0
            out.append(MetricRow(
                res.name, res.subject, "probe_auroc",
                f"checkpoint={step},layer={r.meta['layer']}", float(a.mean()) if ok else None,
                float(np.quantile(a, 0.025)) if ok else None,
                float(np.quantile(a, 0.975)) if ok else None, f"splits-{a.size}", n, 0))
    return out


def _by_step(res: AssayResult) -> list[tuple[int, MetricRow | None, list[MetricRow]]]:
    ms = _metrics(res)
    steps = sorted({int(m.group.split(",")[0].split("=")[1]) for m in ms if m.group})
    return [(s, next((m for m in ms if m.group == f"checkpoint={s}"), None),
             [m for m in ms if m.group and m.group.startswith(f"checkpoint={s},")])
            for s in steps]


def _cell(m: MetricRow | None) -> str:
    if m is None or m.value is None:
        return "n/a"
    return f"{m.value:.2f} [{m.low:.2f}, {m.high:.2f}] n={m.n}"


def _values(rows: Sequence[MetricRow], field: str) -> list[float]:
    return [float("nan") if getattr(m, field) is None else float(getattr(m, field)) for m in rows]


def _plot(res: AssayResult) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4))
    for step, loss, probes in _by_step(res):
        layers = [int(m.group.split("layer=")[1]) for m in probes]  # type: ignore[union-attr]
        line = ax.plot(layers, _values(probes, "value"), label=f"probe, step {step}")[0]
        ax.fill_between(layers, _values(probes, "low"), _values(probes, "high"),
                        color=line.get_color(), alpha=0.12)
        if loss is not None and loss.value is not None:
            ax.axhline(loss.value, color=line.get_color(), linestyle="--", linewidth=1,
                       label=f"loss, step {step}")
    ax.axhline(0.5, color="grey", linewidth=0.6)
    ax.set_xlabel("layer")
    ax.set_ylabel("AUROC, trained-on vs held back")
    ax.set_title(f"{res.subject}: probe (band: 95 % of splits) vs loss baseline (dashed)",
                 fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return render.png(fig)


def _examples(res: AssayResult, k: int = 2) -> list[str]:
    """Per the last checkpoint: held-back rows with the lowest loss and trained-on rows with
    the highest (the baseline's most confident errors)."""
    rows = [r for r in res.responses if r.variant == "example"]
    if not rows:
        return []
    last = max(r.meta["checkpoint"] for r in rows)
    at = [r for r in rows if r.meta["checkpoint"] == last]
    held = sorted((r for r in at if not r.meta["member"]), key=lambda r: r.meta["loss"])[:k]
    seen = sorted((r for r in at if r.meta["member"]), key=lambda r: -r.meta["loss"])[:k]
    return [f"[step {last}, {'trained on' if r.meta['member'] else 'held back'}, loss "
            f"{r.meta['loss']:.2f}] {r.question}" for r in held + seen]
