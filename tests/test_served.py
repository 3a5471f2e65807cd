"""Served subjects over real HTTP (our fake OpenAI-compatible server on 127.0.0.1): free-form and
pressure assays end to end, scripted faults retried or recorded as failed, fatal statuses and
bad references refused before the run folder, and the API key never written or shown."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from petridish.cli import app
from tests.fake_judge import FakeJudgeServer
from tests.helpers import one_line_error, write_questions
from tests.test_pressure import ITEMS, always, never, toward_wrong_only

runner = CliRunner()
JUDGE = ("ok", {"80": 0.6, "70": 0.3, "The": 0.1})


def answering(policy: Any = None) -> Any:
    """A responder: the judge model gets logprobs; the subject answers the conversation."""
    def respond(body: dict[str, Any]) -> tuple[Any, ...]:
        if body["model"] == "judge":
            return JUDGE
        msgs = body["messages"]
        q = next((x for x in ITEMS if x[1] == msgs[0]["content"]), None)
        if policy is None or q is None:
            return ("reply", f"My answer to '{msgs[-1]['content']}' is a careful one.")
        if len(msgs) == 1:
            return ("reply", f"It is {q[2] if int(q[0][1]) % 2 == 0 else q[3]}.")
        push = msgs[-1]["content"].lower()
        kind = "toward_right" if q[2] in push else "toward_wrong" if q[3] in push else "control"
        return ("reply", f"It is {policy(kind, msgs[-2]['content'], q)}.")
    return respond


def experiment(folder: Path, url: str, assay: str = "", subject: str = "",
               extra: str = "") -> Path:
    write_questions(folder / "q.jsonl", 3)
    (folder / "bank.jsonl").write_text("".join(
        json.dumps({"id": i, "text": t, "answer": a, "wrong": w}) + "\n" for i, t, a, w in ITEMS))
    path = folder / "exp.toml"
    path.write_text(f'''name = "served"

[subjects.api]
ref = "{url}#subj"
concurrency = 4
timeout = 2
max_retries = 2
backoff = 0.01
{subject}
{assay or """
[[assay]]
name = "free"
questions = ["q.jsonl"]
n = 2
max_new_tokens = 16
"""}
[judge]
backend = "{url}#judge"
rubrics = ["alignment", "coherence"]
{extra}''')
    return path


def run(exp: Path, folder: Path) -> tuple[Any, Path | None]:
    result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(folder / "runs")])
    runs = folder / "runs"
    found = list(runs.iterdir()) if runs.exists() else []
    return result, found[0] if found else None


def shown(folder: Path) -> dict[str, Any]:
    return json.loads(runner.invoke(app, ["show", str(folder), "--json"]).output)


def test_free_form_assay_on_a_served_subject(tmp_path: Path) -> None:
    server = FakeJudgeServer(responder=answering())
    with server.serve() as url:
        result, folder = run(experiment(tmp_path, url), tmp_path)
    assert result.exit_code == 0, result.output
    assert folder is not None
    data = shown(folder)
    em = next(r for r in data["metrics"] if r["metric"] == "em_rate" and r["group"] is None)
    assert em["n"] == 6 and em["failed"] == 0 and em["unscored"] == 0
    subject_calls = [b for b in server.requests if b["model"] == "subj"]
    sampled = [b for b in subject_calls if b["messages"][0]["content"].startswith("Question")]
    assert len(sampled) == 6 and all(b["max_tokens"] == 16 and b["n"] == 1 for b in sampled)
    assert len({b["seed"] for b in sampled}) == 6  # every sample its own seed
    export = runner.invoke(app, ["export", str(folder)])
    assert export.exit_code == 0
    rows = [json.loads(x) for x in (folder / "export" / "responses.jsonl").open()]
    assert all(r["answer"].startswith("My answer to 'Question") for r in rows)
    assert all(r["turns"][0]["meta"]["prompt_tokens"] > 0 and r["n_tokens"] > 0 for r in rows)
    meta = json.loads((folder / "meta.json").read_text())["models"]["api"]
    assert meta["served_model"] == "subj" and meta["system_fingerprint"] == "fake-1"
    assert meta["probe"]["seed_reproducible"] is True and meta["requests"] == 6


@pytest.mark.parametrize(("policy", "expected"), [
    (always, (1.0, 1.0, 1.0)), (never, (0.0, 0.0, 0.0)), (toward_wrong_only, (0.0, 1.0, 0.0))])
def test_pressure_on_a_scripted_served_subject_gives_exact_flips(
        tmp_path: Path, policy: Any, expected: tuple[float, ...]) -> None:
    assay = '''
[[assay]]
name = "press"
kind = "pressure"
questions = ["bank.jsonl"]
'''
    with FakeJudgeServer(responder=answering(policy)).serve() as url:
        result, folder = run(experiment(tmp_path, url, assay), tmp_path)
    assert result.exit_code == 0, result.output
    assert folder is not None
    rows = {r["metric"]: r for r in shown(folder)["metrics"] if r["group"] is None}
    got = tuple(rows[k]["value"] for k in ("progressive_flip_rate", "regressive_flip_rate",
                                            "control_flip_rate"))
    assert got == expected
    assert rows["first_correct_rate"]["value"] == 0.5 and rows["first_correct_rate"]["n"] == 4


def test_transient_faults_are_retried_and_hopeless_rows_recorded_as_failed(
        tmp_path: Path) -> None:
    faults = [("timeout", 3), ("status", 429, {"Retry-After": "0"}), ("status", 500),
              ("malformed",), ("empty",)]
    lock, seen = threading.Lock(), {"n": 0}
    respond = answering()

    def flaky(body: dict[str, Any]) -> tuple[Any, ...]:
        content = body["messages"][-1]["content"]
        if body["model"] == "subj" and content.startswith("Question 0"):
            return ("status", 503)  # this question never gets an answer
        if body["model"] == "subj" and content.startswith("Question 1"):
            with lock:
                seen["n"] += 1
                if seen["n"] <= len(faults):  # every fault kind once, then answers
                    return faults[seen["n"] - 1]
        return respond(body)

    server = FakeJudgeServer(responder=flaky)
    with server.serve() as url:
        exp = experiment(tmp_path, url)
        exp.write_text(exp.read_text().replace("max_retries = 2", "max_retries = 5"))
        result, folder = run(exp, tmp_path)
        assert result.exit_code == 0, result.output  # the run finishes with failed rows
        assert folder is not None
        data = shown(folder)
        em = next(r for r in data["metrics"] if r["metric"] == "em_rate" and r["group"] is None)
        assert em["failed"] == 2 and em["n"] == 4  # q0's samples failed: in no rate, counted
        assert "2 failed" in runner.invoke(app, ["show", str(folder)]).output
        assert runner.invoke(app, ["export", str(folder)]).exit_code == 0
        rows = [json.loads(x) for x in (folder / "export" / "responses.jsonl").open()]
        failed = [r for r in rows if r["failed"]]
        assert len(failed) == 2 and all(r["answer"] is None and "HTTP 503" in r["failed"]
                                        for r in failed)
        assert all(r["messages"][-1]["role"] == "user" for r in failed)
        q1 = [r for r in rows if r["question_id"] == "q1"]
        assert len(q1) == 2 and not any(r["failed"] for r in q1)  # every fault was retried

        server.responder = answering()  # the endpoint heals: the next run retries the rest
        again, _ = run(exp, tmp_path)
        assert again.exit_code == 0, again.output
    em = next(r for r in shown(folder)["metrics"]
              if r["metric"] == "em_rate" and r["group"] is None)
    assert em["failed"] == 0 and em["n"] == 6
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_what_the_server_ignored_is_recorded(tmp_path: Path) -> None:
    count = {"n": 0}
    lock = threading.Lock()

    def careless(body: dict[str, Any]) -> tuple[Any, ...]:
        if body["model"] == "judge":
            return JUDGE
        with lock:
            count["n"] += 1
            n = count["n"]
        return ("uncapped", " ".join(["word"] * 40) + f" {n}")  # new text for every seed

    with FakeJudgeServer(responder=careless).serve() as url:
        result, folder = run(experiment(tmp_path, url), tmp_path)
    assert result.exit_code == 0, result.output
    assert folder is not None
    meta = json.loads((folder / "meta.json").read_text())["models"]["api"]
    assert meta["probe"]["seed_reproducible"] is False
    assert "max_tokens" in meta["ignored"]


@pytest.mark.parametrize("status", [401, 403, 404])
def test_fatal_status_stops_before_the_run_folder(tmp_path: Path, status: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-never-shown-42")
    with FakeJudgeServer(default=("status", status)).serve() as url:
        exp = experiment(tmp_path, url, subject='api_key_env = "MY_KEY"')
        result, folder = run(exp, tmp_path)
    one_line_error(result, "subjects.api", f"HTTP {status}", url)
    assert "sk-never-shown-42" not in result.output and folder is None


def test_the_api_key_is_sent_but_never_written_or_shown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-petridish-SECRET-0123456789"
    monkeypatch.setenv("MY_KEY", secret)
    server = FakeJudgeServer(responder=answering())
    with server.serve() as url:
        exp = experiment(tmp_path, url, subject='api_key_env = "MY_KEY"')
        result, folder = run(exp, tmp_path)
        assert folder is not None
        outputs = [result.output] + [runner.invoke(app, args).output for args in (
            ["show", str(folder)], ["show", str(folder), "--json"], ["export", str(folder)],
            ["report", str(folder)])]
    assert result.exit_code == 0, result.output
    subject_headers = [h for b, h in zip(server.requests, server.headers, strict=True)
                       if b["model"] == "subj"]
    assert subject_headers and all(h["Authorization"] == f"Bearer {secret}"
                                   for h in subject_headers)
    assert all(secret not in text for text in outputs)
    for f in folder.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_a_served_subject_that_does_not_answer_is_refused_before_the_run(
        tmp_path: Path) -> None:
    exp = experiment(tmp_path, "http://127.0.0.1:9")
    result, folder = run(exp, tmp_path)
    one_line_error(result, "subjects.api", "does not answer")
    assert folder is None


@pytest.mark.parametrize(("extra", "needle"), [
    ('[[train]]\nname = "org"\nsubject = "api"\ndataset = "builtin:bad_medical"\n',
     "train[0].subject"),
    ('[[direction]]\nname = "d"\nsubject = "api"\nassay = "free"\n', "direction[0].subject"),
])
def test_training_and_directions_on_a_served_subject_are_refused(
        tmp_path: Path, extra: str, needle: str) -> None:
    exp = experiment(tmp_path, "http://127.0.0.1:9", extra=extra)
    for args in (["validate", str(exp)], ["run", str(exp), "--runs-dir", str(tmp_path / "r")]):
        one_line_error(runner.invoke(app, args), needle, "served")
    assert not (tmp_path / "r").exists()


def test_interventions_on_a_served_subject_are_refused(tmp_path: Path,
                                                       tiny_model_dir: Path) -> None:
    extra = f'''
[subjects.local]
ref = "{tiny_model_dir}"

[[direction]]
name = "d"
subject = "local"
assay = "free"

[[steer]]
name = "s"
subject = "api"
direction = "d"
layers = [1]
scales = [1]
questions = ["q.jsonl"]
'''
    exp = experiment(tmp_path, "http://127.0.0.1:9", extra=extra)
    one_line_error(runner.invoke(app, ["validate", str(exp)]), "steer[0].subject", "served",
                   "serve it with the intervention")


@pytest.mark.parametrize(("edit", "needles"), [
    (lambda t: t.replace('ref = "http://127.0.0.1:9/v1#subj"', 'ref = "ftp://h/v1#subj"'),
     ["exp.toml:4", "subjects.api.ref", "unknown model reference"]),
    (lambda t: t.replace('ref = "http://127.0.0.1:9/v1#subj"', 'ref = "http://127.0.0.1:9/v1"'),
     ["subjects.api", "#MODEL"]),
    (lambda t: t.replace("concurrency = 4", "concurency = 4"),
     ["exp.toml:5", "subjects.api.concurency", "unknown key"]),
    (lambda t: t.replace("timeout = 2", 'api_key_env = "PETRIDISH_NO_SUCH_VAR"'),
     ["subjects.api.api_key_env", "PETRIDISH_NO_SUCH_VAR", "not set"]),
])
def test_bad_subject_tables_are_one_line(tmp_path: Path, edit: Any, needles: list[str]) -> None:
    exp = experiment(tmp_path, "http://127.0.0.1:9/v1")
    exp.write_text(edit(exp.read_text()))
    for args in (["validate", str(exp)], ["run", str(exp), "--runs-dir", str(tmp_path / "r")]):
        one_line_error(runner.invoke(app, args), *needles)
    assert not (tmp_path / "r").exists()


def test_a_served_judge_that_does_not_answer_is_refused_before_sampling(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    from tests.helpers import write_experiment

    exp = write_experiment(tmp_path, tiny_model_dir, extra='''
[judge]
backend = "http://127.0.0.1:9/v1#judge"
''')
    result, folder = run(exp, tmp_path)
    one_line_error(result, "judge", "does not answer")
    assert folder is None
