"""Stage keys: a hash of everything a stage's output depends on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from petridish.models.bundled import gguf_path
from petridish.models.refs import ModelRef


def stage_key(kind: str, version: int, inputs: dict[str, Any]) -> str:
    """Same kind, code version and inputs -> same key -> the stored result is reused."""
    body = json.dumps({"kind": kind, "version": version, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:20]


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
