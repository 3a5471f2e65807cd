"""Stage keys: a hash of everything a stage's output depends on."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stage_key(kind: str, version: int, inputs: dict[str, Any]) -> str:
    """Same kind, code version and inputs -> same key -> the stored result is reused."""
    body = json.dumps({"kind": kind, "version": version, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:20]
