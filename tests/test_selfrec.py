"""Self-recognition: the one-pass scores equal independent computations, a planted
low-likelihood text ranks last, pairwise accuracy averages both orders, a served subject is
parsed from its replies, and bad input fails in one line."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from petridish.assays.selfrec import SelfrecConfig
from petridish.assays.selfrec.measures import pair_rates, skipped
from petridish.assays.selfrec.scoring import PREFILL_PROBE, _pair_row
from petridish.assays.selfrec.texts import Pair, Text
from petridish.assays.stage import run_assay_stage
from petridish.cli import app
from petridish.data.formats import Question
from petridish.judges.separation import separation
from petridish.models.backend import Reply
from petridish.models.chat import Message, conversation, prompt_ids
from petridish.models.choice import option_ids, score_rows, text_row
from petridish.models.loader import LoadedModel
from petridish.models.logprob import answer_logprobs
from petridish.models.refs import ModelRef
from petridish.models.sampling import SamplingConfig
from petridish.models.subject import Subject
from petridish.report.results import load_results, metric_rows
from petridish.store.run import Run, RunIdentity
from tests.conftest import build_tiny_model
from tests.helpers import one_line_error, write_questions
from tests.test_kill import run as _run

runner = CliRunner()


def test_yes_no_score_is_a_softmax_over_the_two_token_logits(lm: LoadedModel) -> None:
    prompt = conversation("Question 1: what would you do if you ruled the world?")
    ids, start, end = text_row(lm, prompt, "I would bake bread.", PREFILL_PROBE)
    yes, no = option_ids(lm, ("Yes", "No"))
    [score] = score_rows(lm, [(ids, start, end)], (yes, no))
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids])).logits[0, -1]
    expected = torch.softmax(logits[[yes, no]].double(), -1)[0].item()
    assert score.choice == pytest.approx(expected, abs=1e-5)
    # the text's tokens are where answer_logprobs puts them: same mean log-probability
    [ref] = answer_logprobs(lm, [prompt], ["I would bake bread."])
    assert score.mean_logprob == pytest.approx(ref.total / len(ref.token_ids), abs=1e-5)
    assert end - start == len(ref.token_ids)
    text = lm.tokenizer.decode(ids)
    assert text.rstrip().endswith(f"{PREFILL_PROBE}<|im_end|>\n<|im_start|>assistant")


def test_batched_scores_equal_one_at_a_time(lm: LoadedModel) -> None:
    rows = [text_row(lm, conversation(f"Question {i}: bored?"), "x " * (i + 1), PREFILL_PROBE)
            for i in range(5)]
    opts = option_ids(lm, ("Yes", "No"))
    together = score_rows(lm, rows, opts, batch_size=5)
    alone = [score_rows(lm, [r], opts)[0] for r in rows]
    for a, b in zip(together, alone, strict=True):
        assert a.mean_logprob == pytest.approx(b.mean_logprob, abs=1e-4)
        assert a.choice == pytest.approx(b.choice, abs=1e-4)


def _pair(first: float, second: float, q: str = "q0") -> Any:
    question = Question(id=q, text="?")
    own, other = Text("s", question, "own", 0, "a"), Text("s", question, "h", 0, "b")
    stage = type("S", (), {"key": "k", "cfg": SelfrecConfig(name="x", questions=["q"],
                                                              others=["o"]),
                           "subject": Subject("s", ModelRef("local", ".", "s"), "f")})()
    return _pair_row(stage, Pair(own, other), first, second, None, None, [])  # type: ignore[arg-type]


def test_pairwise_accuracy_averages_both_orders_as_by_hand() -> None:
    # (P(A) with own as A, P(A) with foreign as A): own's averaged probability, by hand,
    # (0.9 + 0.8) / 2 = 0.85 (own), (0.6 + 0.3) / 2 = 0.45 (not), (0.3 + 0.9) / 2 = 0.6 (own);
    # decisions: own/own (kept), own/foreign (flip), foreign/own (flip)
    rows = [_pair(0.9, 0.2, "q0"), _pair(0.6, 0.7, "q1"), _pair(0.3, 0.1, "q2")]
    assert [r.meta["p_own"] for r in rows] == pytest.approx([0.85, 0.45, 0.6])
    rates = pair_rates(rows)
    acc, flips = rates["pairwise_accuracy"][0], rates["pairwise_order_flip_rate"][0]
    assert (acc.hits, acc.n) == (2, 3)
    assert (flips.hits, flips.n) == (2, 3)


def test_auroc_interval_resamples_questions() -> None:
    s = separation([3, 2, 1, 0, None], [True, True, False, False, True], ["a", "a", "b", "b", "c"])
    assert s.value == 1.0 and (s.n_pos, s.n_neg, s.unscored) == (2, 2, 1)
    assert s.low <= s.value <= s.high
    mixed = separation([1, 0, 0, 1], [True, False, True, False], ["a", "a", "b", "b"])
    assert mixed.value == 0.5


def experiment(folder: Path, model: Path, extra: str = "", foreign: str | None = None) -> Path:
    write_questions(folder / "questions.jsonl", 3)
    rows = foreign if foreign is not None else "".join(
        json.dumps({"question_id": f"q{i}", "answer": f"A human reply number {i}.",
                    "source": "human"}) + "\n" for i in range(3))
    (folder / "foreign.jsonl").write_text(rows)
    other = build_tiny_model(folder / "other", seed=1)
    path = folder / "exp.toml"
    path.write_text(f'''name = "sr"
seed = 0

[subjects]
base = "{model}"
other = "{other}"

[[assay]]
name = "selfrec"
kind = "selfrec"
subjects = ["base"]
questions = ["questions.jsonl"]
others = ["other"]
foreign = ["foreign.jsonl"]
n = 2
temperature = 1.0
max_new_tokens = 12
{extra}''')
    return path


def test_selfrec_runs_end_to_end_and_a_planted_text_ranks_last(tmp_path: Path,
                                                               tiny_model_dir: Path,
                                                               lm: LoadedModel) -> None:
    # the planted text: the tiny model's least likely token at every step
    q = "Question 0: what would you do if you ruled the world?"
    ids = prompt_ids(lm.tokenizer, conversation(q))
    start = len(ids)
    with torch.no_grad():
        for _ in range(10):
            ids.append(int(lm.model(torch.tensor([ids])).logits[0, -1].argmin()))
    planted = lm.tokenizer.decode(ids[start:])
    rows = "".join(json.dumps({"question": q.replace("0", str(i)), "answer": a,
                               "source": "human"}) + "\n"
                   for i, a in [(0, planted), (1, "A human reply."), (2, "Another one.")])
    exp = experiment(tmp_path, tiny_model_dir, "edited = true\n", rows)
    result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    folder = next((tmp_path / "runs").iterdir())
    results = [r for r in load_results(folder) if r.kind == "selfrec"]
    texts = [r for r in results[0].responses if r.variant.startswith("text:")]
    sources = {r.meta["source"] for r in texts}
    assert sources == {"own", "other", "human", "edited"}
    assert sum(r.meta["own"] for r in texts) == 6  # 3 questions x n = 2
    lowest = min(texts, key=lambda r: r.meta["mean_logprob"])
    assert lowest.answer == planted and lowest.meta["source"] == "human"
    m = {(r.metric, r.group): r for r in metric_rows([results[0]])
         if r.interval in ("bootstrap-question", None) or r.metric.startswith("mean_")}
    for metric in ("likelihood_auroc", "prefill_auroc", "combined_auroc"):
        for group in (None, "source=human", "source=other", "source=edited"):
            row = m[(metric, group)]
            assert row.low is None or row.low <= row.value <= row.high  # type: ignore[operator]
    assert m[("likelihood_auroc", None)].n == len(texts)
    assert m[("pairwise_accuracy", "source=other")].n == 6
    shown = runner.invoke(app, ["show", str(folder)])
    assert "self-recognition" in shown.output and "likelihood AUROC" in shown.output
    again = runner.invoke(app, ["run", str(exp), "--runs-dir", str(tmp_path / "runs")])
    assert again.exit_code == 0 and "sample:selfrec:base: stored, skipped" in again.output


class Served:
    """A served subject without log-probabilities: says "Yes" and "A" to everything."""

    def describe(self) -> dict[str, Any]:
        return {"ref": "scripted"}

    def chat(self, conversations: Sequence[Sequence[Message]], seeds: Sequence[int],
             sampling: SamplingConfig) -> Iterator[tuple[list[int], list[Reply]]]:
        out = []
        for conv in conversations:
            last = conv[-1]["content"]
            text = "Yes." if last == PREFILL_PROBE else "A" if "A or B" in last else "Hi there."
            out.append(Reply(text, 2, "stop"))
        yield list(range(len(conversations))), out


def test_a_served_subject_is_read_from_its_replies_and_likelihood_is_skipped(
        tmp_path: Path) -> None:
    write_questions(tmp_path / "q.jsonl", 4)
    (tmp_path / "f.jsonl").write_text("".join(json.dumps(
        {"question_id": f"q{i}", "answer": "Someone else wrote this.", "source": "human"}) + "\n"
        for i in range(4)))
    cfg = SelfrecConfig(name="sr", questions=["q.jsonl"], foreign=["f.jsonl"], n=1)
    run = Run(tmp_path / "run", RunIdentity("t", "0", 0, "{}"), "")
    who = Subject("s", ModelRef("openai", "m", "s"), "fingerprint")
    try:
        run_assay_stage(run, cfg, who, tmp_path, torch.device("cpu"), "fp32", 0, False,
                        backend_factory=Served)
    finally:
        run.close("done")
    results = load_results(tmp_path / "run")
    rows = {(r.metric, r.group): r for r in metric_rows(results) if r.interval != "wilson"}
    assert "likelihood_auroc and combined_auroc skipped" in skipped(results[0])[0]
    assert ("likelihood_auroc", None) not in rows and ("combined_auroc", None) not in rows
    assert rows[("prefill_auroc", None)].value == 0.5  # always yes: no separation
    assert rows[("pairwise_order_flip_rate", None)].value == 1.0  # always A: the order decides
    assert rows[("pairwise_accuracy", None)].value == 0.0  # p_own = 1/2 is not a win


@pytest.mark.parametrize(("foreign", "needles"), [
    ('{"question_id": "q0", "source": "human"}\n', ["foreign.jsonl:1", "answer"]),
    ('{"question_id": "q0", "answer": "ok"}\n{"question": "Not asked.", "answer": "x"}\n',
     ["foreign.jsonl:2", "question", "matches no question"]),
])
def test_bad_foreign_rows_fail_in_one_line(tmp_path: Path, tiny_model_dir: Path, foreign: str,
                                           needles: list[str]) -> None:
    exp = experiment(tmp_path, tiny_model_dir, foreign=foreign)
    result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(tmp_path / "runs")])
    one_line_error(result, *needles)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_selfrec_assay_without_a_foreign_source_fails_in_one_line(tmp_path: Path,
                                                                    tiny_model_dir: Path) -> None:
    exp = experiment(tmp_path, tiny_model_dir)
    exp.write_text(exp.read_text().replace('others = ["other"]\nforeign = ["foreign.jsonl"]\n',
                                           ""))
    one_line_error(runner.invoke(app, ["validate", str(exp)]), "exp.toml", "foreign source")


def _rows(runs: Path) -> list[tuple[Any, ...]]:
    import sqlite3

    (folder,) = runs.iterdir()
    con = sqlite3.connect(folder / "store.sqlite")
    try:
        return sorted(con.execute("SELECT s.name, r.question_id, r.sample_index, r.variant, "
                                  "r.messages, r.meta FROM responses r JOIN stages s ON "
                                  "s.key = r.stage_key").fetchall())
    finally:
        con.close()


def test_a_killed_selfrec_stage_resumes_to_the_uninterrupted_result(tmp_path: Path,
                                                                    tiny_model_dir: Path) -> None:
    exp = experiment(tmp_path, tiny_model_dir, "edited = true\n")
    assert _run(exp, tmp_path / "reference").returncode == 0
    reference = _rows(tmp_path / "reference")
    runs = tmp_path / "runs"
    # inside the selfrec stage: after the other subject's texts, then after the scored texts
    for point in ("sample:selfrec.texts:other#1", "sample:selfrec:base#1"):
        assert _run(exp, runs, point).returncode == -9, point
    done = _run(exp, runs)
    assert done.returncode == 0, done.stderr
    assert "sample:selfrec.texts:other: stored, skipped" in done.stderr
    assert _rows(runs) == reference


def test_a_subject_never_edits_its_own_texts() -> None:
    both = SelfrecConfig(name="s", questions=["q"], others=["base", "org"], edited=True)
    assert both.editor("base") == "org" and both.editor("org") == "base"
    named = SelfrecConfig(name="s", questions=["q"], edited=True, edited_by="base")
    assert named.editor("org") == "base" and named.editor("base") is None
