"""Load a local chat model (bundled, folder or hub id) into transformers, ready to sample."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from petridish.errors import PetridishError
from petridish.models.bundled import converted_path, gguf_path
from petridish.models.device import dtype_name, pick_device, pick_dtype
from petridish.models.refs import ModelRef, parse_model_ref


@dataclass
class LoadedModel:
    """A transformers causal LM with its tokenizer; `.model` is the plain nn.Module."""

    model: Any  # transformers PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    ref: ModelRef
    device: torch.device
    dtype: torch.dtype
    path: str

    @property
    def eos_ids(self) -> list[int]:
        """Token ids that end an assistant turn."""
        ids: set[int] = set()
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        for value in (gen_eos, self.tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list):
                ids.update(value)
        return sorted(ids)

    @property
    def end_of_turn_id(self) -> int:
        """The token the chat template puts after an assistant reply (e.g. <|im_end|>)."""
        sentinel = "petridish-sentinel"
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": sentinel}],
            tokenize=False,
        )
        assert isinstance(text, str)
        after = text[text.rindex(sentinel) + len(sentinel) :]
        ids = self.tokenizer(after, add_special_tokens=False)["input_ids"]
        for i in ids:
            if i in self.eos_ids:
                return int(i)
        return int(self.tokenizer.eos_token_id)

    def describe(self) -> dict[str, Any]:
        """What meta.json records about the model that was used."""
        cfg = self.model.config
        return {
            "ref": self.ref.text,
            "kind": self.ref.kind,
            "path": self.path,
            "device": str(self.device),
            "dtype": dtype_name(self.dtype),
            "architecture": type(self.model).__name__,
            "layers": getattr(cfg, "num_hidden_layers", None),
            "d_model": getattr(cfg, "hidden_size", None),
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }


def check_available(ref: ModelRef) -> None:
    """Fail early, before a run folder exists, if a local model cannot be had here."""
    if ref.kind == "bundled":
        gguf_path(ref.name)
    elif ref.kind == "hub":
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(ref.name, "config.json"), str):
            return
        try:
            from huggingface_hub import HfApi

            HfApi().model_info(ref.name, timeout=10)
        except Exception as e:
            raise PetridishError(
                f"hub model {ref.text!r} is not in the local HF cache and the hub is not "
                f"reachable ({type(e).__name__}); use a local model folder"
            ) from e


def load_model(
    ref: str | ModelRef, *, device: str | None = None, dtype: str | None = None
) -> LoadedModel:
    """Resolve `ref`, load weights and tokenizer, pick device and dtype (fp32 on CPU)."""
    model_ref = parse_model_ref(ref) if isinstance(ref, str) else ref
    if not model_ref.is_local:
        raise PetridishError(
            f"{model_ref.text!r} is a served model; it cannot be loaded into this process"
        )
    hf_logging.disable_progress_bar()
    torch_device = pick_device(device)
    torch_dtype = pick_dtype(torch_device, dtype)
    path = converted_path(model_ref.name) if model_ref.kind == "bundled" else model_ref.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    except OSError as e:
        if model_ref.kind == "hub":
            raise PetridishError(
                f"could not load {model_ref.text!r} from the Hugging Face hub (offline, or no "
                "such model) and it is not in the local HF cache; use a local model folder"
            ) from e
        raise PetridishError(f"could not load model {model_ref.text!r}: {e}") from e
    model = model.to(torch_device)  # type: ignore[arg-type]
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if not tokenizer.chat_template:
        raise PetridishError(f"model {model_ref.text!r} has no chat template in its tokenizer")
    return LoadedModel(model, tokenizer, model_ref, torch_device, torch_dtype, str(path))
