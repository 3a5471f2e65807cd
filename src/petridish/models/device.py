"""Device and dtype, chosen from the hardware; fp32 on CPU unless a stage opts into bf16."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import torch

from petridish.errors import PetridishError

DtypeName = Literal["auto", "fp32", "bf16", "fp16"]
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(requested: str | None = None) -> torch.device:
    """`auto` (or None) picks cuda when present, else cpu."""
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as e:
        raise PetridishError(f"unknown device {requested!r}", field="device") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PetridishError("device 'cuda' requested but no GPU is visible", field="device")
    return device


@cache
def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 matmuls (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_dtype(device: torch.device, requested: str | None = None) -> torch.dtype:
    """fp32 by default on CPU, bf16 on GPUs that support it; explicit names win."""
    if requested not in (None, "auto"):
        if requested not in _DTYPES:
            raise PetridishError(
                f"unknown dtype {requested!r}; use auto, fp32, bf16 or fp16", field="dtype"
            )
        return _DTYPES[requested]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """The short name used in configs and meta.json."""
    return {v: k for k, v in _DTYPES.items()}[dtype]
