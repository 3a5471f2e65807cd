"""Subjects: a declared model, or an organism (a model plus the adapter a train stage grew)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from petridish.models.loader import LoadedModel, load_model
from petridish.models.refs import ModelRef


@dataclass(frozen=True)
class Subject:
    """What an assay samples from; `fingerprint` enters every stage key that uses it."""

    name: str
    ref: ModelRef
    fingerprint: str
    adapter: Path | None = None  # PEFT folder, for LoRA organisms


def load_subject(subject: Subject, *, device: str, dtype: str | None) -> LoadedModel:
    """Load the model; an adapter is merged into the weights (sampling is then full speed)."""
    lm = load_model(subject.ref, device=device, dtype=dtype)
    if subject.adapter is not None:
        from peft import PeftModel

        merged = PeftModel.from_pretrained(lm.model, subject.adapter).merge_and_unload()
        merged.requires_grad_(False)
        lm.model = merged.eval()
    return lm
