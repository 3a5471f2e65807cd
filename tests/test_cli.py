"""The CLI end to end on the tiny model: runs, resumes from the store, and fails cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from petridish.cli import app
from tests.helpers import one_line_error, write_experiment, write_questions

runner = CliRunner()


def test_run_show_ls_export(tmp_path: Path, tiny_model_dir: Path) -> None:
    exp = write_experiment(tmp_path, tiny_model_dir, n=2, questions=3)
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    (folder,) = runs.iterdir()
    assert folder.name.startswith("t-")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["seed"] == 1 and meta["versions"]["torch"] and meta["end"]
    assert meta["models"]["base"]["dtype"] == "fp32"
    assert (folder / "config.toml").read_text() == exp.read_text()

    again = runner.invoke(app, ["run", str(exp), "--runs-dir", str(runs)])
    assert again.exit_code == 0 and "stored, skipped" in again.output

    shown = runner.invoke(app, ["show", str(folder)])
    assert "sample:freeform:base" in shown.output and "done" in shown.output
    listed = runner.invoke(app, ["ls", "--runs-dir", str(runs)])
    assert folder.name in listed.output

    assert runner.invoke(app, ["export", str(folder), "--format", "jsonl"]).exit_code == 0
    rows = [json.loads(x) for x in (folder / "export" / "responses.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    assert {(r["question_id"], r["sample_index"]) for r in rows} == {
        (f"q{i}", k) for i in range(3) for k in range(2)}
    assert runner.invoke(app, ["export", str(folder), "--format", "parquet"]).exit_code == 0
    import pyarrow.parquet as pq

    assert pq.read_table(folder / "export" / "responses.parquet").num_rows == 6


def test_sample_command_writes_jsonl(tmp_path: Path, tiny_model_dir: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl", 2)
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["sample", str(tiny_model_dir), "--questions", str(q), "-n", "3",
                                 "--max-new-tokens", "5", "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 6 and all(r["n_tokens"] <= 5 for r in rows)


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (lambda t: t.replace("n = 2", "n = 0"), ["exp.toml:10", "assay[0].n"]),
        (lambda t: t.replace("max_new_tokens = 8", "max_new_tokens = -1"),
         ["assay[0].max_new_tokens"]),
        (lambda t: t + "bogus = 1\n", ["unknown key", "bogus"]),
        (lambda t: t.replace('base = "', 'base = "nowhere/'), ["subjects.base"]),
        (lambda t: t.replace("[subjects]", "[subjects"), ["not valid TOML"]),
    ],
)
def test_bad_experiment_exits_2_and_writes_nothing(
    tmp_path: Path, tiny_model_dir: Path, edit: object, needles: list[str]
) -> None:
    exp = write_experiment(tmp_path, tiny_model_dir)
    exp.write_text(edit(exp.read_text()))  # type: ignore[operator]
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(runs)])
    one_line_error(result, *needles)
    assert not runs.exists()


def test_empty_question_set_and_missing_file(tmp_path: Path, tiny_model_dir: Path) -> None:
    exp = write_experiment(tmp_path, tiny_model_dir)
    (tmp_path / "questions.jsonl").write_text("")
    result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(tmp_path / "runs")])
    one_line_error(result, "questions.jsonl", "empty")
    result = runner.invoke(app, ["run", str(tmp_path / "none.toml")])
    one_line_error(result, "none.toml", "not found")


def test_run_folder_under_a_file_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    exp = write_experiment(tmp_path, tiny_model_dir)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(blocker / "runs")])
    one_line_error(result, "not writable")


def test_sample_rejects_non_positive_options(tmp_path: Path, tiny_model_dir: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl", 1)
    result = runner.invoke(app, ["sample", str(tiny_model_dir), "-q", str(q), "-n", "0"])
    one_line_error(result, "-n")
    result = runner.invoke(app, ["sample", str(tiny_model_dir), "-q", str(q),
                                 "--max-new-tokens", "0"])
    one_line_error(result, "--max-new-tokens")
    result = runner.invoke(app, ["sample", "bundled:nope", "-q", str(q)])
    one_line_error(result, "unknown bundled model")


def test_show_on_a_non_run_folder(tmp_path: Path) -> None:
    one_line_error(runner.invoke(app, ["show", str(tmp_path)]), "not a run folder")


def test_unreachable_hub_model_fails_before_the_run_folder(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    exp = write_experiment(tmp_path, tiny_model_dir)
    exp.write_text(exp.read_text().replace(str(tiny_model_dir), "petridish-test/no-such-model"))
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(runs)])
    one_line_error(result, "petridish-test/no-such-model", "local model folder")
    assert not runs.exists()


@pytest.mark.parametrize("native", [True, False])
def test_dtype_override_enters_the_stage_key_not_the_run_name(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    """bf16 is its own sample stage where the CPU has native bf16; where it has not, sampling
    falls back to fp32 (slower, not faster, otherwise), so the fp32 stage is reused. The CPU is
    pinned both ways: the answer must not depend on the machine the suite runs on."""
    import petridish.assays.stage as stage

    monkeypatch.setattr(stage, "cpu_has_bf16", lambda: native)
    exp = write_experiment(tmp_path, tiny_model_dir, n=1, questions=1)
    runs = tmp_path / "runs"
    assert runner.invoke(app, ["run", str(exp), "--runs-dir", str(runs)]).exit_code == 0
    result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(runs), "--dtype", "bf16"])
    assert result.exit_code == 0, result.output
    (folder,) = runs.iterdir()
    from petridish.store.db import Store

    store = Store(folder / "store.sqlite")
    kinds = [s.kind for s in store.stages()]
    assert kinds.count("sample") == (2 if native else 1)  # fp32 and bf16 are different stages
    assert kinds.count("judge") == kinds.count("sample")  # each judged once
    store.close()
    one_line_error(runner.invoke(app, ["run", str(exp), "--dtype", "fp8"]), "--dtype")


def test_library_chatter_stays_out_of_stderr_unless_verbose(tmp_path: Path,
                                                            tiny_model_dir: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "data.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", '
        '"content": "b c"}]}\n' * 4)
    exp = write_experiment(tmp_path, tiny_model_dir, n=1, questions=1, extra='''
[[train]]
name = "org"
subject = "base"
dataset = "data.jsonl"
rank = 1
layers = [1]
''')

    def stderr(*flags: str) -> str:
        out = subprocess.run([sys.executable, "-m", "petridish.cli", *flags, "run", str(exp),
                              "--runs-dir", str(tmp_path / f"runs{len(flags)}")],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return out.stderr

    quiet = stderr()
    for chatter in ("Loading weights", "Writing model shards", "Warning", "warnings.warn", "%|"):
        assert chatter not in quiet, quiet
    assert "train:org" in quiet  # our own progress lines stay
    loud = stderr("--verbose")
    assert "Loading weights" in loud or "Warning" in loud  # the same chatter, let through
