"""`petridish run|validate|demo|ls|show|compare|sample|export|report`: one-line errors with
exit code 2 for bad input."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer

from petridish.cli_judge import app as judge_app
from petridish.clitools import err, friendly, options, out
from petridish.errors import PetridishError
from petridish.tables import new_table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="A lab bench for model organisms of misalignment.")
app.add_typer(judge_app, name="judge")

RunsDir = Annotated[Path, typer.Option("--runs-dir", help="where run folders live")]


@app.callback()
def _options(
    verbose: Annotated[bool, typer.Option("--verbose", help="show the libraries' own warnings "
                                          "and progress bars")] = False,
) -> None:
    """A lab bench for model organisms of misalignment."""
    from petridish.quiet import configure

    configure(verbose)


@app.command()
@friendly
def run(
    experiment: Annotated[Path, typer.Argument(help="experiment TOML file")],
    runs_dir: RunsDir = Path("runs"),
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N")] = None,
    dtype: Annotated[str | None, typer.Option(help="sampling dtype: auto, fp32 or bf16")] = None,
) -> None:
    """Run or resume an experiment; stored stages are skipped."""
    from petridish.runner import run_experiment

    if dtype not in (None, "auto", "fp32", "bf16"):
        raise PetridishError(f"unknown dtype {dtype!r}; use auto, fp32 or bf16", field="--dtype")
    folder = run_experiment(experiment, runs_dir, device=device, dtype=dtype)
    _show(folder)


@app.command()
@friendly
def demo(
    quick: Annotated[bool, typer.Option("--quick", help="fewer samples, shorter answers")] = False,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Run the demo experiment on the bundled model."""
    from petridish.config import load_experiment
    from petridish.runner import run_experiment

    path = Path(str(resources.files("petridish") / "experiments" / "demo.toml"))
    exp = load_experiment(path)
    if quick:
        from petridish.demo import quick_experiment

        exp = quick_experiment(exp)
    _show(run_experiment(path, runs_dir, experiment=exp))


@app.command("ls")
@friendly
def list_runs(runs_dir: RunsDir = Path("runs")) -> None:
    """List run folders with their stages and response counts."""
    from petridish.report.summary import run_summaries
    table = new_table("run", "started", "stages done", "responses", "status")
    for s in run_summaries(runs_dir):
        table.add_row(s.name, s.started, f"{s.stages_done}/{s.stages}", str(s.responses),
                      s.status)
    out.print(table)


@app.command()
@friendly
def validate(
    experiment: Annotated[Path, typer.Argument(help="experiment TOML file")],
) -> None:
    """Check an experiment as `run` would, without sampling, loading weights or the network."""
    from petridish.config import load_experiment
    from petridish.preflight import preflight

    exp = load_experiment(experiment)
    preflight(exp, experiment)
    def count(n: int, what: str) -> str:
        return f"{n} {what}{'' if n == 1 else 's'}"

    runs = sum(len(a.subjects or exp.subject_names()) for a in exp.assay)
    out.print(f"{experiment}: valid; {count(len(exp.subject_names()), 'subject')}, "
              f"{count(len(exp.train), 'organism')}, {count(runs, 'assay run')}, "
              f"{count(len(exp.direction), 'direction')}, "
              f"{count(len(exp.steer) + len(exp.ablate), 'intervention table')}; run folder "
              f"{exp.identity().folder_name}", soft_wrap=True)


@app.command()
@friendly
def show(
    run_folder: Annotated[Path, typer.Argument(help="a run folder")],
    by: Annotated[str, typer.Option(help="rates per subject, question or tag")] = "subject",
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object: stages and every "
                                          "metric as rows")] = False,
) -> None:
    """Tables of the run's stages, responses and metrics (or all of it as JSON)."""
    if by not in ("subject", "question", "tag"):
        raise PetridishError(f"--by must be subject, question or tag, not {by!r}", field="--by")
    if as_json:
        from petridish.report.results import run_json

        typer.echo(json.dumps(run_json(run_folder, by), indent=1, ensure_ascii=False))
        return
    _show(run_folder, by)


def _show(folder: Path, by: str = "subject") -> None:
    from petridish.assays.registry import kinds
    from petridish.report.results import by_kind, load_results
    from petridish.report.summary import result_table, stage_table

    out.print(stage_table(folder))
    out.print(result_table(folder))
    known = kinds()
    for kind, results in by_kind(load_results(folder)).items():
        for table in known[kind].show(results, by):  # type: ignore[arg-type]
            out.print(table)


@app.command()
@friendly
def compare(
    run_folder: Annotated[Path, typer.Argument(help="a run folder")],
    a: Annotated[str, typer.Argument(help="condition A as ASSAY:SUBJECT, e.g. "
                                     "ablate.layerwise:bad-medical")],
    b: Annotated[str, typer.Argument(help="condition B, e.g. ablate.none:bad-medical")],
    metric: Annotated[str, typer.Option(help="em_rate, em_rate_coherent, coherence_rate or "
                                        "self_correction_rate")] = "em_rate",
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """A − B: paired by question (bootstrap interval, sign-flip p) when they share questions
    and seeds, else unpaired and labelled so."""
    from petridish.report.compare import compare as run_compare

    out_ = run_compare(run_folder, a, b, metric)
    if as_json:
        typer.echo(json.dumps(out_, indent=1))
        return
    kind = "paired" if out_["paired"] else "UNPAIRED"
    p = f", p = {out_['p_value']:.3f} (sign-flip over questions)" if out_["p_value"] else ""
    out.print(f"{metric}: {a} {_pct(out_['value_a'])} − {b} {_pct(out_['value_b'])} = "
              f"{_pct(out_['value'])} [{_pct(out_['low'])}, {_pct(out_['high'])}] "
              f"({kind}, 95 % bootstrap over {out_['questions']} questions, "
              f"{out_['resamples']} resamples{p})", soft_wrap=True)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


@app.command()
@friendly
def sample(
    model: Annotated[str, typer.Argument(help="model reference, e.g. bundled:NAME or a folder")],
    questions: Annotated[str, typer.Option("--questions", "-q", help="builtin:NAME or a file")],
    n: Annotated[int, typer.Option("-n", help="samples per question")] = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 128,
    seed: int = 0,
    dtype: Annotated[str, typer.Option(help="auto, fp32 or bf16")] = "auto",
    device: str | None = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write JSONL")] = None,
) -> None:
    """Sample answers from a model ad hoc (no run folder)."""
    from petridish.data.formats import load_questions
    from petridish.models.chat import conversation, prompt_ids
    from petridish.models.generate import generate
    from petridish.models.loader import load_model
    from petridish.models.sampling import SamplingConfig, sample_seed
    from petridish.paths import atomic_write
    from petridish.progress import progress_bar

    cfg = options(SamplingConfig, n=n, temperature=temperature, top_p=top_p,
                  max_new_tokens=max_new_tokens, seed=seed)
    qset = load_questions(questions, Path.cwd())
    lm = load_model(model, device=device, dtype=dtype)
    jobs = [(q, k) for q in qset.questions for k in range(cfg.n)]
    prompts = [prompt_ids(lm.tokenizer, conversation(q.text, q.system)) for q, _ in jobs]
    seeds = [sample_seed(cfg.seed, f"{qset.name}/{q.id}", k) for q, k in jobs]
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    with progress_bar("sample", len(jobs)) as advance:
        for indices, gens in generate(lm, prompts, seeds, cfg):
            for i, g in zip(indices, gens, strict=True):
                q, k = jobs[i]
                rows[i] = {"question_id": q.id, "sample_index": k, "question": q.text,
                           "answer": g.text, "n_tokens": len(g.token_ids),
                           "finish_reason": g.finish_reason, "model": model}
            advance(len(indices))
    if output:
        atomic_write(output, "".join(json.dumps(r) + "\n" for r in rows))
        err.print(f"wrote {len(rows)} rows to {output}")
        return
    table = new_table("question", "#", "answer")
    table.show_lines = True
    for r in rows:
        assert r is not None
        table.add_row(r["question_id"], str(r["sample_index"]), r["answer"])
    out.print(table)


@app.command()
@friendly
def report(run_folder: Annotated[Path, typer.Argument(help="a run folder")]) -> None:
    """Write the run's self-contained HTML report (report.html in the run folder)."""
    from petridish.report.html import build_report

    err.print(f"wrote {build_report(run_folder)}")


@app.command()
@friendly
def export(
    run_folder: Annotated[Path, typer.Argument(help="a run folder")],
    format: Annotated[str, typer.Option("--format", help="jsonl or parquet")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Export a run's responses as JSONL or Parquet."""
    from petridish.report.export import export_responses

    path = export_responses(run_folder, format, output)
    err.print(f"wrote {path}")


def main() -> None:
    app(prog_name="petridish")


if __name__ == "__main__":
    main()
