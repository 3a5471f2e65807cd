"""Where petridish keeps things on disk, and how it writes them without leaving halves."""

from __future__ import annotations

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
    """A safetensors file written like `atomic_write`: a killed run leaves no half file."""
    from safetensors.torch import save

    atomic_write(path, save({k: v.contiguous() for k, v in tensors.items()}, metadata))


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
