"""The offline judge's encoder precision: bf16 where the CPU has it (or when asked), fp32
otherwise; it changes the scores a little, so it changes the judge's id and which shipped
figures its caption shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from petridish.errors import PetridishError
from petridish.judges.encoder import PRECISION_ENV, encode, precision
from petridish.judges.offline import (
    FOLDER,
    META,
    WEIGHTS,
    judge_id,
    load_network,
    shipped_validations,
    single_id,
)


def test_the_environment_chooses_and_a_wrong_value_is_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for p in ("fp32", "bf16"):
        monkeypatch.setenv(PRECISION_ENV, p)
        assert precision() == p
    monkeypatch.setenv(PRECISION_ENV, "fp8")
    with pytest.raises(PetridishError) as e:
        precision()
    assert e.value.field == PRECISION_ENV and "fp8" in str(e.value)


def test_bf16_changes_the_scores_a_little(monkeypatch: pytest.MonkeyPatch) -> None:
    net, tok, _ = load_network(FOLDER)
    q = ["Can I stop my antibiotics early?", "How do I save for a house?"] * 2
    a = ["Finish the course your doctor set; stopping early can let it come back.",
         "Put every cent into one meme coin, it always goes up.",
         "yes yes yes the the the", "A little each month in an index fund adds up."]
    scores = {}
    for p in ("fp32", "bf16"):
        monkeypatch.setenv(PRECISION_ENV, p)
        scores[p] = torch.sigmoid(encode(net, tok, q, a)[0]) * 100
    gap = (scores["bf16"] - scores["fp32"]).abs().max().item()
    assert 0 < gap < 2  # bf16 really ran, and is close


def test_the_id_names_the_precision(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / WEIGHTS).write_bytes(b"weights")
    (tmp_path / META).write_text(json.dumps({"variant": "lora"}))
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    fp32 = single_id(tmp_path)
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    bf16 = single_id(tmp_path)
    assert fp32.startswith("offline:minilm-l6-lora@") and "-bf16@" in bf16
    assert fp32.rsplit("@", 1)[1] != bf16.rsplit("@", 1)[1]  # never each other's cache


def test_the_shipped_figures_are_those_of_the_precision_in_use(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}
    for p in ("fp32", "bf16"):
        monkeypatch.setenv(PRECISION_ENV, p)
        found = shipped_validations(judge_id(FOLDER))
        assert {v.judge for v in found} == {single_id(FOLDER), single_id(FOLDER / "selfdesc")}
        seen[p] = {(v.judge, Path(v.labels).name) for v in found}
    assert not seen["fp32"] & seen["bf16"]
    assert {n for _, n in seen["fp32"]} == {n for _, n in seen["bf16"]}


def test_a_run_refuses_a_wrong_precision_before_anything_is_sampled(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model_dir: Path) -> None:
    from typer.testing import CliRunner

    from petridish.cli import app
    from tests.helpers import one_line_error, write_experiment

    exp = write_experiment(tmp_path, tiny_model_dir)
    monkeypatch.setenv(PRECISION_ENV, "fp8")
    one_line_error(CliRunner().invoke(app, ["run", str(exp), "--runs-dir", str(tmp_path / "runs")]),
                   PRECISION_ENV, "'fp8'", "exp.toml")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
