"""Everything that can be checked without sampling is checked before the run folder exists, and
fails as one line naming FILE:LINE: table[i].field (or the data file's line), exit code 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from petridish.cli import app
from tests.helpers import one_line_error, write_experiment

runner = CliRunner()
CHAT = '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
TRAIN = '''
[[train]]
name = "org"
subject = "base"
dataset = "data.jsonl"
rank = 1
layers = [1]
'''
DIRECTION = '''
[[direction]]
name = "d"
subject = "base"
assay = "freeform"
'''
STEER = DIRECTION + '''
[[steer]]
name = "s"
subject = "base"
direction = "d"
layers = [1]
scales = [0, 2]
questions = ["questions.jsonl"]
'''


def check(tmp_path: Path, exp: Path, *needles: str) -> None:
    runs = tmp_path / "runs"
    for args in (["validate", str(exp)], ["run", str(exp), "--runs-dir", str(runs)]):
        one_line_error(runner.invoke(app, args), *needles)
    assert not runs.exists()


@pytest.mark.parametrize(("extra", "data", "needles"), [
    (TRAIN, CHAT + '\n{"foo": 1}\n', ["data.jsonl:2", "messages", "Field required"]),
    (TRAIN, CHAT + '\n' + CHAT.replace('"b"', '"  "') + "\n",
     ["data.jsonl:2", "messages", "assistant turn is empty"]),
    (TRAIN, '{"messages": [{"role": "user", "content": "a"}]}\n',
     ["data.jsonl:1", "no assistant turn"]),
    (TRAIN.replace("layers = [1]", "layers = [1, 7]"), CHAT + "\n",
     ["exp.toml:20", "train[0].layers", "out of range", "0-3"]),
    (STEER.replace("scales = [0, 2]", "scales = [0, nan]"), "",
     ["exp.toml:25", "steer[0].scales[1]", "finite"]),
    (STEER.replace("scales = [0, 2]", "scales = [inf]"), "", ["steer[0].scales[0]", "finite"]),
    (DIRECTION + 'a = "alignmnt < 30"\n', "", ["exp.toml:19", "direction[0].a", "alignmnt"]),
    (DIRECTION + 'b = "coherence >"\n', "", ["exp.toml:19", "direction[0].b", "cannot read"]),
])
def test_later_checks_run_before_the_run_folder(tmp_path: Path, tiny_model_dir: Path,
                                                extra: str, data: str,
                                                needles: list[str]) -> None:
    (tmp_path / "data.jsonl").write_text(data or CHAT + "\n")
    exp = write_experiment(tmp_path, tiny_model_dir, extra=extra)
    check(tmp_path, exp, *needles)


@pytest.mark.parametrize(("old", "new", "needles"), [
    ("n = 2", "n = true", ["exp.toml:10", "assay[0].n", "valid integer"]),
    ("max_new_tokens = 8", "max_new_tokens = 8.0", ["assay[0].max_new_tokens", "integer"]),
    ("temperature = 1.0", "temperature = inf", ["assay[0].temperature", "finite"]),
    ("temperature = 1.0", "temperature = true", ["assay[0].temperature", "number"]),
])
def test_types_are_strict(tmp_path: Path, tiny_model_dir: Path, old: str, new: str,
                          needles: list[str]) -> None:
    exp = write_experiment(tmp_path, tiny_model_dir)
    exp.write_text(exp.read_text().replace(old, new))
    check(tmp_path, exp, *needles)


def test_an_experiment_path_that_is_not_a_readable_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> None:
    (tmp_path / "folder.toml").mkdir()
    one_line_error(runner.invoke(app, ["run", str(tmp_path / "folder.toml")]), "folder.toml",
                   "not a regular file")
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    one_line_error(runner.invoke(app, ["validate", str(fifo)]), "pipe.toml", "not a regular")
    exp = write_experiment(tmp_path, tiny_model_dir)
    real = Path.read_bytes

    def refuse(self: Path) -> bytes:
        if self == exp:
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    one_line_error(runner.invoke(app, ["run", str(exp)]), "exp.toml", "cannot read",
                   "Permission denied")


def test_non_utf8_and_yaml_errors_name_the_faulty_line(tmp_path: Path,
                                                       tiny_model_dir: Path) -> None:
    exp = write_experiment(tmp_path, tiny_model_dir)
    q = tmp_path / "questions.jsonl"
    q.write_bytes(b'{"id": "a", "text": "fine"}\n{"id": "b", "text": "caf\xe9"}\n')
    check(tmp_path, exp, "questions.jsonl:2", "not UTF-8")
    y = tmp_path / "q.yaml"
    y.write_text('- id: a\n  text: ok\n- id: b\n  text: [never closed\n\n')
    exp.write_text(exp.read_text().replace("questions.jsonl", "q.yaml"))
    check(tmp_path, exp, "q.yaml:4", "not valid YAML")
    exp.write_bytes(exp.read_bytes().replace(b'seed = 1', b'seed = 1 # \xff'))
    one_line_error(runner.invoke(app, ["validate", str(exp)]), "exp.toml:2", "not UTF-8")
