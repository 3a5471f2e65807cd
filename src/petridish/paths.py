"""Where petridish keeps things on disk, and how it writes them without leaving halves."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def home() -> Path:
    """The cache root: `$PETRIDISH_HOME`, else `~/.cache/petridish`."""
    root = os.environ.get("PETRIDISH_HOME")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "petridish"


def atomic_save_tensors(path: Path, tensors: dict[str, Any],
                        metadata: dict[str, str] | None = None) -> None:
    """A safetensors file written like `atomic_write`: a killed run leaves no half file. The
    header's keys are sorted, so the same tensors and metadata give the same bytes in any
    process (the library writes metadata in hash-map order)."""
    from safetensors.torch import save

    atomic_write(path, canonical(save({k: v.contiguous() for k, v in tensors.items()},
                                      metadata)))


def canonical(raw: bytes) -> bytes:
    """Safetensors bytes with the JSON header re-serialised with sorted keys, same length."""
    n = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8:8 + n]), sort_keys=True, separators=(",", ":"))
    body = header.encode()
    if len(body) > n:  # cannot happen for the library's compact header; keep it as written
        return raw
    return raw[:8] + body + b" " * (n - len(body)) + raw[8 + n:]


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temp file beside `path`, fsync, then rename: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
