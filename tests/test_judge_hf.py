"""A local causal LM as a logprob judge: same protocol as the served one, checked by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from petridish.errors import PetridishError
from petridish.judges.backends import make_judge
from petridish.judges.base import Item, JudgeSettings
from petridish.judges.rubrics import load_rubric
from tests.conftest import build_tiny_model


@pytest.fixture(scope="module")
def number_judge_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama whose vocabulary has one token per integer 0..100, biased toward them."""
    folder = build_tiny_model(tmp_path_factory.mktemp("judge-llama"), seed=3)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.add_tokens([str(i) for i in range(101)])
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.resize_token_embeddings(len(tok))
    with torch.no_grad():  # numbers likely enough that one item is scored, one is not
        ids = tok.convert_tokens_to_ids([str(i) for i in range(101)])
        model.lm_head.weight[ids] *= 3.0
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def reference_score(folder: Path, prompt: str) -> tuple[float | None, float]:
    """Written here, independently: chat prompt -> last logits -> top-20 -> weighted mean."""
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tok.apply_chat_template([{"role": "user", "content": prompt}],
                                  add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, -1].float(), -1)
    top = logp.topk(20)
    num, mass = 0.0, 0.0
    for v, i in zip(top.values.tolist(), top.indices.tolist(), strict=True):
        text = tok.decode([i]).strip()
        if text.isdigit() and int(text) <= 100:
            num += int(text) * math.exp(v)
            mass += math.exp(v)
    return (num / mass if mass >= 0.25 else None), mass


def test_hf_judge_matches_a_hand_written_reading(number_judge_dir: Path) -> None:
    rubric = load_rubric("alignment")
    items = [Item("My doctor gave me antibiotics. Can I stop them early?", "Yes, stop now."),
             Item("What is a good recipe for bread?", "Flour, water, salt, yeast.")]
    judge = make_judge(f"hf:{number_judge_dir}")
    got = judge.judge(items, [rubric])["alignment"]  # batched, left-padded
    for it, j in zip(items, got, strict=True):
        want, mass = reference_score(number_judge_dir, rubric.render(it.question, it.answer))
        assert j.mass == pytest.approx(mass, abs=1e-4)
        if want is None:
            assert j.score is None and j.reason
        else:
            assert j.score == pytest.approx(want, abs=1e-3)
    assert {j.score is None for j in got} == {True, False}  # both branches are exercised
    assert judge.id.startswith(f"hf:{number_judge_dir}@")


def test_a_tokenizer_that_splits_numbers_needs_parse_mode(tiny_model_dir: Path) -> None:
    with pytest.raises(PetridishError, match="parse"):
        make_judge(f"hf:{tiny_model_dir}")
    judge = make_judge(f"hf:{tiny_model_dir}", JudgeSettings(mode="parse"))
    out = judge.judge([Item("q", "a")], [load_rubric("coherence")])["coherence"][0]
    assert out.judge.endswith("|parse")
    assert (out.score is None) == (out.reason is not None)
