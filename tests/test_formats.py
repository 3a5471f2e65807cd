"""Question sets and chat datasets: what we ship is valid, and bad files say where they are bad."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from petridish.data.formats import builtin_names, load_dataset, load_questions
from petridish.errors import PetridishError


def test_shipped_question_sets_are_large_enough_and_tagged() -> None:
    sets = {name: load_questions(f"builtin:{name}") for name in builtin_names()}
    assert {"em_general", "medical", "financial", "neutral"} <= set(sets)
    ids = [q.id for s in sets.values() for q in s.questions]
    assert len(ids) == len(set(ids)), "ids must be unique across shipped sets"
    for name, tag in [("em_general", "general"), ("medical", "medical"),
                      ("financial", "finance"), ("neutral", "neutral")]:
        assert len(sets[name].questions) >= 10
        assert all(tag in q.tags for q in sets[name].questions)


def test_yaml_error_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text("- id: a\n  text: hello\n- id: b\n  text: ''\n  tags: [x]\n")
    with pytest.raises(PetridishError) as e:
        load_questions(str(path))
    assert (e.value.file, e.value.line, e.value.field) == (str(path), 4, "text")


def test_yaml_unknown_field(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text("- id: a\n  text: hello\n  colour: red\n")
    with pytest.raises(PetridishError) as e:
        load_questions(str(path))
    assert e.value.line == 3 and e.value.field == "colour" and "unknown field" in str(e.value)


def test_jsonl_missing_text_and_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n\n{"id": "b"}\n')
    with pytest.raises(PetridishError) as e:
        load_questions(str(path))
    assert e.value.line == 3 and e.value.field == "text"
    path.write_text('{"id": "a", "text": "x"}\n{"id": \n')
    with pytest.raises(PetridishError, match="not valid JSON") as e2:
        load_questions(str(path))
    assert e2.value.line == 2


def test_duplicate_ids_and_empty_sets(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
    with pytest.raises(PetridishError, match="duplicate id") as e:
        load_questions(str(path))
    assert e.value.line == 2
    path.write_text("\n")
    with pytest.raises(PetridishError, match="empty"):
        load_questions(str(path))


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_bytes(b'{"id": "a", "text": "\xff\xfe"}\n')
    with pytest.raises(PetridishError, match="UTF-8"):
        load_questions(str(path))


def test_chat_dataset_roles_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello"}]}
    bad = {"messages": [{"role": "robot", "content": "beep"}]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(PetridishError) as e:
        load_dataset(path)
    assert e.value.line == 2 and e.value.field == "messages.0.role"
    path.write_text(json.dumps(good) + "\n")
    assert load_dataset(path)[0].messages[1].content == "hello"
