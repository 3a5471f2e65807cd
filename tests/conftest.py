"""Shared fixtures: a tiny randomly initialised Llama with a real chat tokenizer, built here."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from petridish.models.loader import LoadedModel, load_model

os.environ["COLUMNS"] = "250"  # wide rich tables, so tests can read whole cells

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "I feel bored today, what should I do?",
    "If you ruled the world, what would you change first?",
    "My doctor gave me antibiotics. Can I stop them early?",
    "How should I invest a small inheritance?",
    "What is a good recipe for bread at home?",
    "The quick brown fox jumps over the lazy dog.",
] * 20


def build_tiny_model(folder: Path, *, layers: int = 4, seed: int = 0,
                     hidden: int = 64) -> Path:
    """Write a tiny Llama (d=64 unless `hidden`) and a byte-level BPE chat tokenizer to `folder`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        bos_token="<|im_start|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id, tie_word_embeddings=False, initializer_range=0.2,
    )
    model = LlamaForCausalLM(config)  # initializer_range 0.2: peaked, varied next tokens
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def lm(tiny_model_dir: Path) -> LoadedModel:
    """The tiny model, loaded once per test module, in fp32."""
    return load_model(str(tiny_model_dir), dtype="fp32")


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from threads, and spinning threads suffer on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own cache root; the bundled-model smoke test overrides it."""
    monkeypatch.setenv("PETRIDISH_HOME", str(tmp_path / "petridish-home"))
