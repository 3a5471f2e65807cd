"""Experiment files: typed schema, unknown keys are errors, messages name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from petridish.config import load_experiment
from petridish.errors import PetridishError
from tests.helpers import write_experiment


def test_valid_experiment_loads_with_defaults(tmp_path: Path, tiny_model_dir: Path) -> None:
    exp = load_experiment(write_experiment(tmp_path, tiny_model_dir))
    assert exp.name == "t"
    assert exp.assay[0].n == 2 and exp.assay[0].top_p == 1.0
    assert exp.short_hash() == load_experiment(tmp_path / "exp.toml").short_hash()


def test_changed_content_changes_the_run_hash(tmp_path: Path, tiny_model_dir: Path) -> None:
    a = load_experiment(write_experiment(tmp_path, tiny_model_dir, n=2)).short_hash()
    b = load_experiment(write_experiment(tmp_path, tiny_model_dir, n=3)).short_hash()
    assert a != b


@pytest.mark.parametrize(
    ("extra", "field", "line"),
    [
        ("colour = 3\n", "assay[0].colour", 14),
        ("n = 0\n", None, None),  # duplicate key: a TOML syntax error
    ],
)
def test_bad_keys_name_the_line(
    tmp_path: Path, tiny_model_dir: Path, extra: str, field: str | None, line: int | None
) -> None:
    path = write_experiment(tmp_path, tiny_model_dir, extra=extra)
    with pytest.raises(PetridishError) as e:
        load_experiment(path)
    assert e.value.file == str(path)
    if field:
        assert e.value.field == field and e.value.line == line
        assert "unknown key" in str(e.value)


@pytest.mark.parametrize(
    ("n", "max_new_tokens", "field"),
    [(0, 8, "assay[0].n"), (-2, 8, "assay[0].n"), (2, 0, "assay[0].max_new_tokens")],
)
def test_non_positive_counts_are_rejected(
    tmp_path: Path, tiny_model_dir: Path, n: int, max_new_tokens: int, field: str
) -> None:
    path = write_experiment(tmp_path, tiny_model_dir, n=n, max_new_tokens=max_new_tokens)
    with pytest.raises(PetridishError) as e:
        load_experiment(path)
    assert e.value.field == field
    assert e.value.line is not None
    key = field.split(".")[-1]
    assert path.read_text().splitlines()[e.value.line - 1].startswith(key)


def test_unknown_model_reference_names_the_subject(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = write_experiment(tmp_path, tiny_model_dir)
    path.write_text(path.read_text().replace(str(tiny_model_dir), "no such thing!"))
    with pytest.raises(PetridishError) as e:
        load_experiment(path)
    assert e.value.field == "subjects.base" and e.value.line == 5
    assert "unknown model reference" in str(e.value)


def test_unknown_bundled_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = write_experiment(tmp_path, tiny_model_dir)
    path.write_text(path.read_text().replace(str(tiny_model_dir), "bundled:gpt-9"))
    with pytest.raises(PetridishError, match="unknown bundled model"):
        load_experiment(path)


def test_missing_question_file_names_the_experiment_field(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    path = write_experiment(tmp_path, tiny_model_dir)
    (tmp_path / "questions.jsonl").unlink()
    with pytest.raises(PetridishError) as e:
        load_experiment(path)
    assert e.value.field == "assay[0].questions" and "not found" in str(e.value)


def test_unknown_subject_in_assay(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = write_experiment(tmp_path, tiny_model_dir, extra='subjects = ["organism"]\n')
    with pytest.raises(PetridishError, match="unknown subject 'organism'"):
        load_experiment(path)


def test_malformed_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\n[subjects\nbase = 1\n')
    with pytest.raises(PetridishError) as e:
        load_experiment(path)
    assert e.value.line == 2 and "not valid TOML" in str(e.value)


def test_missing_experiment_file(tmp_path: Path) -> None:
    with pytest.raises(PetridishError, match="not found"):
        load_experiment(tmp_path / "nope.toml")


def test_the_shipped_demo_experiment_is_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    exp = load_experiment(root / "experiments" / "demo.toml")
    assert exp.subjects["base"] == "bundled:smollm2-135m-instruct"
    assert {q.removeprefix("builtin:") for q in exp.assay[0].questions} >= {
        "em_general", "medical", "financial", "neutral"}


@pytest.mark.parametrize("name", sorted(p.name for p in (
    Path(__file__).resolve().parents[1] / "experiments").glob("*.toml")))
def test_every_example_experiment_is_valid(name: str) -> None:
    """The README runs them: a schema change that breaks one fails here, not for a user."""
    from petridish.preflight import preflight

    path = Path(__file__).resolve().parents[1] / "experiments" / name
    preflight(load_experiment(path), path)


def test_quick_demo_runs_every_mode_once_with_fewer_conditions() -> None:
    from importlib import resources

    import torch

    from petridish.config import Experiment, load_experiment
    from petridish.demo import quick_experiment
    from petridish.interp.conditions import ablate_conditions, steer_conditions
    from petridish.interp.directions import Direction
    from petridish.interp.nulls import NullSource

    full = load_experiment(Path(str(resources.files("petridish") / "experiments" / "demo.toml")))
    quick = quick_experiment(full)
    Experiment.model_validate(quick.model_dump())  # cross-references still hold
    d = Direction(torch.randn(30, 576), list(range(30)), {"n_a": 4})
    nulls = NullSource.__new__(NullSource)
    nulls.direction, nulls.name, nulls.of = d, "em", "bad-medical"
    nulls._cache = [torch.randn(8, 30, 576)]

    def names(exp: Experiment) -> list[str]:
        out = [c.assay.name for s in exp.steer for c in steer_conditions(s, d)]
        return out + [c.assay.name for a in exp.ablate
                      for c in ablate_conditions(a, d, "bad-medical", nulls)]

    assert len(names(quick)) < len(names(full))
    assert names(quick) == ["steer.x0", "steer.L16.x0.5", "steer.L16.x0.5.random-0",
                            "ablate.none", "ablate.layerwise", "ablate.single-L14",
                            "ablate.random-0", "ablate.random_matched-0", "ablate.permuted-0"]
    assert quick.name != full.name and all(t.epochs == 1 for t in quick.train)
