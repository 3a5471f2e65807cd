"""Answer log-probabilities against a plain forward pass of the tiny Llama."""

from __future__ import annotations

import math
import random

import pytest
import torch

from petridish.models.chat import Message, conversation, prompt_ids
from petridish.models.generate import generate
from petridish.models.loader import LoadedModel
from petridish.models.logprob import answer_logprobs
from petridish.models.sampling import SamplingConfig

PAIRS = [
    (conversation("I feel bored today, what should I do?"), "Bake some bread at home."),
    (conversation("Hi", system="You are a careful doctor."),
     "Do not stop antibiotics early; ask your doctor first."),
    (conversation("How should I invest a small inheritance? " * 3), " fox"),
]


pytestmark = pytest.mark.usefixtures("one_thread")


def encode(lm: LoadedModel, text: str) -> list[int]:
    return list(lm.tokenizer(text, add_special_tokens=False)["input_ids"])


def manual_logprobs(lm: LoadedModel, messages: list[Message], reply: list[int]) -> torch.Tensor:
    """log p(reply[j] | prompt, reply[:j]) from one unbatched, unpadded full forward."""
    prompt = prompt_ids(lm.tokenizer, messages)
    with torch.inference_mode():
        logits = lm.model(torch.tensor([prompt + reply])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    positions = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(reply))
    return logp[positions, torch.tensor(reply)]


def test_answer_logprobs_match_a_manual_forward(lm: LoadedModel) -> None:
    convs, answers = [c for c, _ in PAIRS], [a for _, a in PAIRS]
    batched = answer_logprobs(lm, convs, answers, batch_size=3)
    single = answer_logprobs(lm, convs, answers, batch_size=1)
    assert len(batched) == len(single) == len(PAIRS)
    assert len({len(r.token_ids) for r in batched}) == len(PAIRS)  # right padding is real
    for (messages, answer), b, s in zip(PAIRS, batched, single, strict=True):
        reply = encode(lm, answer)
        want = manual_logprobs(lm, messages, reply)
        assert b.token_ids == s.token_ids == reply
        assert torch.allclose(torch.tensor(b.token_logprobs), want, atol=1e-4, rtol=0)
        assert torch.allclose(torch.tensor(s.token_logprobs), want, atol=1e-4, rtol=0)
        assert b.total == pytest.approx(sum(b.token_logprobs), abs=1e-9)
        assert b.total == pytest.approx(float(want.sum()), abs=1e-3)
        assert all(lp <= 0 for lp in b.token_logprobs)
    # scores depend on the conversation, not only on the answer
    swapped = answer_logprobs(lm, [convs[1]], [answers[0]])[0]
    assert abs(swapped.total - batched[0].total) > 0.1


def test_include_end_of_turn_adds_one_token(lm: LoadedModel) -> None:
    convs, answers = [c for c, _ in PAIRS], [a for _, a in PAIRS]
    end = lm.tokenizer.convert_tokens_to_ids("<|im_end|>")  # how the template closes a turn
    plain = answer_logprobs(lm, convs, answers)
    closed = answer_logprobs(lm, convs, answers, include_end_of_turn=True)
    for (messages, _), p, c in zip(PAIRS, plain, closed, strict=True):
        assert c.token_ids == [*p.token_ids, end]
        assert torch.allclose(torch.tensor(c.token_logprobs[:-1]),
                              torch.tensor(p.token_logprobs), atol=1e-4, rtol=0)
        want = manual_logprobs(lm, messages, c.token_ids)[-1]
        assert c.token_logprobs[-1] == pytest.approx(float(want), abs=1e-4)
        assert c.total == pytest.approx(p.total + c.token_logprobs[-1], abs=1e-6)


def test_end_of_turn_is_the_templates_token_when_several_ids_end_generation(
    lm: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    tok = lm.tokenizer
    end, text_end = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids(
        "<|endoftext|>")
    monkeypatch.setattr(lm.model.generation_config, "eos_token_id", [end, text_end])
    assert set(lm.eos_ids) == {end, text_end}
    [scored] = answer_logprobs(lm, [PAIRS[0][0]], [PAIRS[0][1]], include_end_of_turn=True)
    assert scored.token_ids[-1] == end


def test_an_empty_answer_scores_zero(lm: LoadedModel) -> None:
    [scored] = answer_logprobs(lm, [conversation("Hi")], [""])
    assert scored.token_ids == [] and scored.total == 0.0


def test_an_empty_answer_next_to_others_scores_zero(lm: LoadedModel) -> None:
    empty, full = answer_logprobs(lm, [conversation("Hi"), PAIRS[0][0]], ["", PAIRS[0][1]])
    assert empty.token_ids == [] and empty.total == 0.0
    assert len(full.token_ids) > 0 and full.total < 0


def test_greedy_answer_is_more_likely_than_random_answers(lm: LoadedModel) -> None:
    messages = conversation("I feel bored today, what should I do?")
    prompt = prompt_ids(lm.tokenizer, messages)
    config = SamplingConfig.model_validate({"temperature": 0, "max_new_tokens": 12})
    [(_, [gen])] = list(generate(lm, [prompt], [0], config))
    assert encode(lm, gen.text) == gen.token_ids  # the text re-encodes to the same tokens
    [scored] = answer_logprobs(lm, [messages], [gen.text])

    # each greedy token is the single most likely one, so it has at least 1/V probability
    with torch.inference_mode():
        logits = lm.model(torch.tensor([prompt + gen.token_ids])).logits[0].float()
    best = torch.log_softmax(logits, -1).max(-1).values[len(prompt) - 1 : -1]
    assert torch.allclose(torch.tensor(scored.token_logprobs), best, atol=1e-4, rtol=0)
    assert min(scored.token_logprobs) >= -math.log(len(lm.tokenizer))

    # random answers of the same length in tokens score far lower
    words = [i for i in range(len(lm.tokenizer))
             if (w := str(lm.tokenizer.decode([i]))).startswith(" ") and w[1:].isalpha()]
    rng = random.Random(0)
    for _ in range(5):
        ids = rng.sample(words, len(gen.token_ids))
        [other] = answer_logprobs(lm, [messages], [str(lm.tokenizer.decode(ids))])
        assert len(other.token_ids) == len(scored.token_ids)
        assert other.total < scored.total - 5.0
