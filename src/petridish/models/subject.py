"""Subjects: what an assay samples from. A declared model, or an organism (a model plus the
adapter a train stage grew); its fingerprint enters every stage key that uses it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from petridish.killpoint import reached
from petridish.models.bundled import gguf_path
from petridish.models.http import EndpointSettings
from petridish.models.loader import LoadedModel, load_model
from petridish.models.refs import ModelRef

if TYPE_CHECKING:
    from petridish.models.served import ServedBackend


@dataclass(frozen=True)
class Subject:
    """A named model reference; `fingerprint` identifies its weights (and adapter)."""

    name: str
    ref: ModelRef
    fingerprint: str
    adapter: Path | None = None  # PEFT folder, for LoRA organisms
    endpoint: EndpointSettings | None = None  # how to reach and pace a served subject


def model_fingerprint(ref: ModelRef) -> str:
    """Identifies the weights without reading them all: file names, sizes and config."""
    if ref.kind == "bundled":
        return f"{ref.text}:{gguf_path(ref.name).stat().st_size}"
    if ref.kind != "local":
        return ref.text
    folder = Path(ref.name)
    h = hashlib.sha256((folder / "config.json").read_bytes())
    for f in sorted(folder.iterdir()):
        if f.suffix in (".safetensors", ".bin", ".json"):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def declared_subject(name: str, ref: ModelRef,
                     endpoint: EndpointSettings | None = None) -> Subject:
    return Subject(name, ref, model_fingerprint(ref), None,
                   None if ref.is_local else endpoint or EndpointSettings())


def served_backend(subject: Subject) -> ServedBackend:
    from petridish.models.served import ServedBackend

    return ServedBackend(subject.name, subject.ref, subject.endpoint or EndpointSettings())


def load_subject(subject: Subject, *, device: str, dtype: str | None) -> LoadedModel:
    """Load the model; an adapter is merged into the weights (sampling is then full speed)."""
    lm = load_model(subject.ref, device=device, dtype=dtype)
    if subject.adapter is not None:
        from peft import PeftModel

        merged = PeftModel.from_pretrained(lm.model, subject.adapter).merge_and_unload()
        merged.requires_grad_(False)
        lm.model = merged.eval()
    reached(f"load:{subject.name}")
    return lm
