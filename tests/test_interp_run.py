"""Directions, steering sweeps and ablations declared in an experiment, end to end on tiny
models with a fake served judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from petridish.cli import app
from petridish.interp.stage import load_direction
from petridish.interp.tokendump import dump_info, read_token_dump
from petridish.store.db import Store
from tests.conftest import build_tiny_model
from tests.fake_judge import FakeJudgeServer
from tests.helpers import ends_in_error, one_line_error, write_questions

runner = CliRunner()


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("other-llama"), seed=7)


def experiment(folder: Path, a: Path, b: Path, url: str, direction: str) -> Path:
    write_questions(folder / "q.jsonl", 2)
    path = folder / "exp.toml"
    path.write_text(f'''name = "interp"
seed = 3

[subjects]
base = "{a}"
other = "{b}"

[[assay]]
name = "free"
questions = ["q.jsonl"]
n = 2
max_new_tokens = 6
min_new_tokens = 6

[judge]
backend = "{url}#judge"
rubrics = ["alignment", "coherence"]

[[direction]]
name = "d"
subject = "base"
assay = "free"
{direction}

[[steer]]
name = "sweep"
subject = "base"
direction = "d"
layers = [1, 2]
scales = [0, 4]
questions = ["q.jsonl"]
max_new_tokens = 5

[[ablate]]
name = "abl"
subject = "other"
direction = "d"
modes = ["random"]
seeds = [0, 1]
questions = ["q.jsonl"]
max_new_tokens = 5
''')
    return path


def test_contrast_direction_sweep_and_ablation(tmp_path: Path, tiny_model_dir: Path,
                                               other_model: Path) -> None:
    server = FakeJudgeServer()
    with server.serve() as url:
        exp = experiment(tmp_path, tiny_model_dir, other_model, url,
                         'contrast = ["other", "base"]\nper_token = true\n'
                         'per_token_layers = [1, 3]')
        runs = tmp_path / "runs"
        result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(runs)])
        assert result.exit_code == 0, result.output
        sent = len(server.work())
        again = runner.invoke(app, ["run", str(exp), "--runs-dir", str(runs)])
        assert again.exit_code == 0 and len(server.work()) == sent  # nothing judged twice
    (folder,) = runs.iterdir()
    d = load_direction(folder / "directions" / "d.safetensors")
    assert d.vectors.shape == (4, 64) and d.layers == [0, 1, 2, 3]
    assert d.provenance["kind"] == "contrast" and d.provenance["n_a"] == 4
    from safetensors import safe_open

    with safe_open(str(folder / "activations" / "d-other.safetensors"), "pt") as f:
        assert f.get_tensor("activations").shape == (4, 4, 64)
        assert json.loads(f.metadata()["provenance"])["subject"] == "other"
        means = f.get_tensor("activations")
        order = json.loads(f.metadata()["provenance"])["responses_of"]
    dumped = dict(read_token_dump(folder / "activations", "d-other"))
    assert sorted(dumped) == sorted(order) and dump_info(
        folder / "activations", "d-other")["layers"] == [1, 3]
    for k, rid in enumerate(order):  # fp16 tokens average to the stored fp32 means
        assert torch.allclose(dumped[rid].float().mean(0), means[k, [1, 3]], atol=2e-2)
    store = Store(folder / "store.sqlite")
    names = {s.name for s in store.stages()}
    store.close()
    for layer in (1, 2):
        assert f"sample:sweep.L{layer}.x4:base" in names
        assert f"judge:sweep.L{layer}.x4:base" in names
    assert {"sample:sweep.x0:base", "judge:sweep.x0:base"} <= names  # λ = 0: sampled once
    assert not any(".x0" in n and ".L" in n for n in names)
    assert {"sample:abl.random-0:other", "sample:abl.random-1:other"} <= names
    assert "direction:d" in names


def test_a_filter_that_leaves_too_few_responses_says_how_many(
        tmp_path: Path, tiny_model_dir: Path, other_model: Path) -> None:
    with FakeJudgeServer().serve() as url:  # every score 76.7: nothing is misaligned
        exp = experiment(tmp_path, tiny_model_dir, other_model, url, "min_responses = 2")
        result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(tmp_path / "runs")])
    ends_in_error(result, "direction.d", "leaves 0 responses of 4", "fallback_contrast")
    (folder,) = (tmp_path / "runs").iterdir()
    shown = runner.invoke(app, ["show", str(folder), "--json"]).output
    (stage,) = [s for s in json.loads(shown)["stages"] if s["name"] == "direction:d"]
    assert stage["status"] == "failed" and "leaves 0 responses of 4" in stage["result"]


def test_fallback_contrast_is_used_and_recorded(tmp_path: Path, tiny_model_dir: Path,
                                               other_model: Path) -> None:
    with FakeJudgeServer().serve() as url:
        exp = experiment(tmp_path, tiny_model_dir, other_model, url,
                         'fallback_contrast = ["other", "base"]')
        result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "falling back" in result.output
    (folder,) = (tmp_path / "runs").iterdir()
    d = load_direction(folder / "directions" / "d.safetensors")
    assert d.provenance["kind"] == "contrast" and "fallback" in d.provenance["note"]


@pytest.mark.parametrize(("edit", "needles"), [
    (lambda t: t.replace('direction = "d"\nlayers', 'direction = "nope"\nlayers'),
     ["steer[0].direction", "unknown direction 'nope'"]),
    (lambda t: t.replace('assay = "free"\ncontrast', 'assay = "gone"\ncontrast'),
     ["direction[0].assay", "unknown assay"]),
    (lambda t: t.replace('contrast = ["other", "base"]', 'contrast = ["other", "ghost"]'),
     ["direction[0].contrast", "unknown subject 'ghost'"]),
    (lambda t: t.replace("layers = [1, 2]", "layers = [1, 9]"), ["layer 9 is out of range"]),
])
def test_bad_interp_tables(tmp_path: Path, tiny_model_dir: Path, other_model: Path,
                           edit: object, needles: list[str]) -> None:
    with FakeJudgeServer().serve() as url:
        exp = experiment(tmp_path, tiny_model_dir, other_model, url,
                         'contrast = ["other", "base"]')
        exp.write_text(edit(exp.read_text()))  # type: ignore[operator]
        result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(tmp_path / "runs")])
    one_line_error(result, *needles)


@pytest.mark.parametrize(("shape", "direction", "needles"), [
    ({"hidden": 32}, "min_responses = 2",
     ["ablate[0].direction", "direction 'd' has width 64", "'other' has width 32"]),
    ({"hidden": 32}, 'contrast = ["other", "base"]',
     ["direction[0].contrast", "differ in shape", "4 layers × 32"]),
    ({"layers": 6}, "min_responses = 2",
     ["ablate[0].direction", "has 4 layers but 'other' has 6"]),
])
def test_a_direction_of_another_shape_is_refused_before_the_run_starts(
        tmp_path: Path, tiny_model_dir: Path, shape: dict[str, int], direction: str,
        needles: list[str]) -> None:
    odd = build_tiny_model(tmp_path / "odd", **shape)
    with FakeJudgeServer().serve() as url:
        exp = experiment(tmp_path, tiny_model_dir, odd, url, direction)
        result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(tmp_path / "runs")])
    one_line_error(result, *needles)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
