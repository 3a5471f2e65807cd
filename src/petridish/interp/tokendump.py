"""Per-token activations on disk, for probes trained later: streamed in shards so neither
the run nor the reader ever holds more than one shard.

A dump `NAME` is `NAME.tokens-000.safetensors`, `-001`, … each holding `tokens`
`[tokens, layers, d]` (the answer tokens of several responses, concatenated), `offsets`
`[responses + 1]` (where each response starts), and in its metadata the response ids, the
layers and the provenance.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor

from petridish.paths import atomic_save_tensors

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


class TokenDump:
    """Collects `add(response_id, [tokens, layers, d])` and writes a shard whenever the
    buffer passes `shard_mb`; `close()` writes the rest and returns the shard paths."""

    def __init__(self, folder: Path, name: str, layers: list[int], provenance: dict[str, Any],
                 *, shard_mb: float = 256, dtype: str = "fp16") -> None:
        self.folder, self.name, self.layers = folder, name, layers
        self.provenance, self.limit, self.dtype = provenance, shard_mb * 2**20, DTYPES[dtype]
        self.ids: list[str] = []
        self.parts: list[Tensor] = []
        self.size = 0
        self.paths: list[Path] = []
        folder.mkdir(parents=True, exist_ok=True)
        for stale in shard_paths(folder, name):  # a killed earlier attempt
            stale.unlink()

    def add(self, response_id: str, tokens: Tensor) -> None:
        part = tokens.to(self.dtype).contiguous()
        self.ids.append(response_id)
        self.parts.append(part)
        self.size += part.numel() * part.element_size()
        if self.size >= self.limit:
            self._flush()

    def close(self) -> list[Path]:
        if self.parts or not self.paths:
            self._flush()
        return self.paths

    def _flush(self) -> None:
        lengths = torch.tensor([0] + [len(p) for p in self.parts])
        d = self.parts[0].shape[-1] if self.parts else 0
        tokens = torch.cat(self.parts) if self.parts else torch.zeros(0, len(self.layers), d)
        path = self.folder / f"{self.name}.tokens-{len(self.paths):03d}.safetensors"
        atomic_save_tensors(path, {"tokens": tokens.to(self.dtype),
                                   "offsets": lengths.cumsum(0)},
                            {"responses": json.dumps(self.ids), "layers": json.dumps(self.layers),
                             "provenance": json.dumps(self.provenance)})
        self.paths.append(path)
        self.ids, self.parts, self.size = [], [], 0


def shard_paths(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f"{name}.tokens-[0-9][0-9][0-9].safetensors"))


def read_token_dump(folder: Path, name: str) -> Iterator[tuple[str, Tensor]]:
    """(response id, `[tokens, layers, d]`) for every response of dump `name`, shard by
    shard."""
    for path in shard_paths(folder, name):
        with safe_open(str(path), "pt") as f:
            ids = json.loads((f.metadata() or {})["responses"])
            tokens, offsets = f.get_tensor("tokens"), f.get_tensor("offsets").tolist()
        for k, rid in enumerate(ids):
            yield rid, tokens[offsets[k]:offsets[k + 1]]


def dump_info(folder: Path, name: str) -> dict[str, Any]:
    """Layers and provenance of a dump (from its first shard)."""
    paths = shard_paths(folder, name)
    if not paths:
        return {}
    with safe_open(str(paths[0]), "pt") as f:
        meta = f.metadata() or {}
    return {"layers": json.loads(meta["layers"]), "provenance": json.loads(meta["provenance"]),
            "shards": len(paths)}
