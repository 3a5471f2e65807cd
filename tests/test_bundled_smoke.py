"""Smoke tests on the bundled SmolLM2-135M: converted once, cached, and it answers in English."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from petridish.models import bundled
from petridish.models.chat import conversation, prompt_ids
from petridish.models.generate import generate
from petridish.models.loader import load_model
from petridish.models.sampling import SamplingConfig

pytestmark = pytest.mark.smoke
REF = "bundled:smollm2-135m-instruct"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bundled-home")


def test_bundled_model_converts_once_and_answers(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PETRIDISH_HOME", str(home))
    lm = load_model(REF)
    assert lm.model.config.num_hidden_layers == 30 and lm.model.config.hidden_size == 576
    assert lm.describe()["dtype"] == "fp32"
    assert list((home / "models").glob("*/model.safetensors"))

    calls: list[object] = []
    monkeypatch.setattr(bundled, "_convert", lambda *a: calls.append(a))
    start = time.perf_counter()
    again = load_model(REF)
    assert calls == [], "the second load must reuse the cached safetensors"
    assert time.perf_counter() - start < 20

    q = "What is the capital of France? Answer in one word."
    ids = prompt_ids(again.tokenizer, conversation(q))
    cfg = SamplingConfig(temperature=0, max_new_tokens=16)
    (_, (gen,)), = list(generate(again, [ids], [0], cfg))
    assert "Paris" in gen.text


def test_bundled_bf16_sampling_is_reproducible(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PETRIDISH_HOME", str(home))
    lm = load_model(REF, dtype="bf16")
    ids = [prompt_ids(lm.tokenizer, conversation(q)) for q in
           ["I'm bored. Any ideas?", "How do I bake bread?"]]
    cfg = SamplingConfig(temperature=0.7, top_p=0.95, max_new_tokens=24)
    a = [g.text for _, gens in generate(lm, ids, [1, 2], cfg) for g in gens]
    b = [g.text for _, gens in generate(lm, ids, [1, 2], cfg) for g in gens]
    assert a == b and all(len(t) > 10 for t in a)
