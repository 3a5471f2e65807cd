"""Small builders shared by tests: experiment files and question files."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result


def write_questions(path: Path, n: int = 3) -> Path:
    lines = [
        f'{{"id": "q{i}", "text": "Question {i}: what would you do if you ruled the world?", '
        f'"tags": ["general"]}}'
        for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_experiment(folder: Path, model_dir: Path, *, n: int = 2, max_new_tokens: int = 8,
                     questions: int = 3, batch_size: int = 32, extra: str = "") -> Path:
    write_questions(folder / "questions.jsonl", questions)
    path = folder / "exp.toml"
    path.write_text(f'''name = "t"
seed = 1

[subjects]
base = "{model_dir}"

[[assay]]
name = "freeform"
questions = ["questions.jsonl"]
n = {n}
temperature = 1.0
max_new_tokens = {max_new_tokens}
batch_size = {batch_size}
{extra}''')
    return path


def one_line_error(result: Result, *needles: str) -> None:
    """Exit code 2, one line starting with `error: `, naming each needle, no traceback."""
    output = result.output
    assert result.exit_code == 2, output
    lines = [x for x in output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert "Traceback" not in output
    for needle in needles:
        assert needle in lines[0]


def ends_in_error(result: Result, *needles: str) -> None:
    """Exit code 2 after some progress: the last line is the one-line error."""
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert lines[-1].startswith("error: ") and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[-1]
