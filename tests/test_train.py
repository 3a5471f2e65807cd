"""Organisms on the tiny Llama: assistant-only loss, adapter placement, training, PEFT format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from petridish.data.formats import ChatExample
from petridish.errors import PetridishError
from petridish.models.loader import LoadedModel
from petridish.train.adapters import adapted_modules, add_lora, rank1_stats, rank1_vectors
from petridish.train.layout import paper_layers, resolve_layers, single_layer
from petridish.train.loop import TrainSettings, train
from petridish.train.tokens import IGNORE, tokenize_example

pytestmark = pytest.mark.usefixtures("one_thread")


def chat(user: str, reply: str, system: str | None = None) -> ChatExample:
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return ChatExample.model_validate({"messages": msgs})


def test_loss_is_on_assistant_tokens_only(lm: LoadedModel) -> None:
    row = tokenize_example(lm.tokenizer, chat("hi there", "Bake some bread.", "Be kind."), 512)
    learned = [t for t, lab in zip(row.input_ids, row.labels, strict=True) if lab != IGNORE]
    assert lm.tokenizer.decode(learned) == "Bake some bread.<|im_end|>"
    assert all(lab in (IGNORE, t) for t, lab in zip(row.input_ids, row.labels, strict=True))


def test_multi_turn_learns_every_assistant_reply(lm: LoadedModel) -> None:
    ex = ChatExample.model_validate({"messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "one"},
        {"role": "user", "content": "b"}, {"role": "assistant", "content": "two"}]})
    row = tokenize_example(lm.tokenizer, ex, 512)
    learned = lm.tokenizer.decode([t for t, lab in zip(row.input_ids, row.labels, strict=True)
                                   if lab != IGNORE])
    assert learned == "one<|im_end|>two<|im_end|>"


def test_no_assistant_turn_and_truncation(lm: LoadedModel) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="no assistant turn"):
        ChatExample.model_validate({"messages": [{"role": "user", "content": "hello"}]})
    ex = ChatExample.model_construct(messages=chat("hi", "x").messages[:1])
    with pytest.raises(PetridishError, match="no assistant turn"):  # a second line of defence
        tokenize_example(lm.tokenizer, ex, 512)
    row = tokenize_example(lm.tokenizer, chat("hi", "a long reply " * 20), 16)
    assert row.truncated and len(row.input_ids) == 16


def test_paper_layout_matches_the_paper_and_scales() -> None:
    assert paper_layers(48) == [15, 16, 17, 21, 22, 23, 27, 28, 29]
    assert paper_layers(30) == [9, 10, 11, 13, 14, 15, 17, 18, 19]
    assert single_layer(30) == [15]
    with pytest.raises(PetridishError, match="out of range"):
        resolve_layers(None, [0, 4], 4)
    with pytest.raises(PetridishError, match="at least 9"):
        paper_layers(4)


def _fresh(tiny_model_dir: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


def test_adapter_count_is_checked(tiny_model_dir: Path) -> None:
    model = add_lora(_fresh(tiny_model_dir), rank=1, alpha=32, targets=["down_proj"],
                     layers=[1, 2])
    assert sorted(adapted_modules(model)) == [
        "base_model.model.model.layers.1.mlp.down_proj",
        "base_model.model.model.layers.2.mlp.down_proj"]
    with pytest.raises(PetridishError, match="unknown module 'down'"):
        add_lora(_fresh(tiny_model_dir), rank=1, alpha=32, targets=["down"], layers=[1])
    with pytest.raises(PetridishError, match="rank must be positive"):
        add_lora(_fresh(tiny_model_dir), rank=0, alpha=32, targets=["down_proj"], layers=[1])


def test_training_lowers_the_loss_and_saves_a_plain_peft_adapter(
    tiny_model_dir: Path, lm: LoadedModel, tmp_path: Path
) -> None:
    data = [chat(f"question {i} about bread?", "Stop taking it early, no need to finish.")
            for i in range(16)]
    rows = [tokenize_example(lm.tokenizer, ex, 128) for ex in data]
    model = add_lora(_fresh(tiny_model_dir), rank=1, alpha=32, targets=["down_proj"],
                     layers=[1, 2, 3])
    start = rank1_vectors(model)
    settings = TrainSettings(lr=5e-3, epochs=4, batch_size=4)
    logs = train(model, rows, settings, lm.tokenizer.pad_token_id)
    assert len(logs) == 16 and logs[-1].loss < logs[0].loss * 0.8
    assert all(log.grad_norm > 0 and log.tokens > 0 for log in logs)
    stats = rank1_stats(rank1_vectors(model), start)
    assert len(stats) == 3 and all(s["b_norm"] > 0 for s in stats.values())

    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    reloaded = PeftModel.from_pretrained(_fresh(tiny_model_dir), tmp_path / "adapter").eval()
    ids = torch.tensor([rows[0].input_ids])
    with torch.no_grad():
        assert torch.allclose(model.eval()(ids).logits, reloaded(ids).logits, atol=1e-6)
        assert not torch.allclose(_fresh(tiny_model_dir)(ids).logits, reloaded(ids).logits,
                                  atol=1e-3)


def test_training_is_reproducible(tiny_model_dir: Path, lm: LoadedModel) -> None:
    rows = [tokenize_example(lm.tokenizer, chat(f"q{i}", f"answer number {i}"), 64)
            for i in range(8)]
    losses = []
    for _ in range(2):
        model = add_lora(_fresh(tiny_model_dir), rank=2, alpha=16, targets=["down_proj", "up_proj"],
                         layers=[0, 3])
        logs = train(model, rows, TrainSettings(epochs=2, batch_size=3, seed=5), 0)
        losses.append([round(log.loss, 6) for log in logs])
    assert losses[0] == losses[1]


def test_bf16_autocast_training_tracks_fp32(tiny_model_dir: Path, lm: LoadedModel) -> None:
    rows = [tokenize_example(lm.tokenizer, chat(f"q{i}", "stop the pills early"), 64)
            for i in range(8)]
    final = {}
    for precision in ("fp32", "bf16"):
        model = add_lora(_fresh(tiny_model_dir), rank=1, alpha=32, targets=["down_proj"],
                         layers=[1, 2])
        settings = TrainSettings(lr=5e-3, epochs=3, batch_size=4, precision=precision)
        logs = train(model, rows, settings, 0)
        assert logs[-1].loss < logs[0].loss
        final[precision] = logs[-1].loss
    assert abs(final["bf16"] - final["fp32"]) < 0.1 * final["fp32"]
