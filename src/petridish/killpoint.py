"""Deterministic kill points for resume tests: with `PETRIDISH_KILL_AT=NAME#N` the process
SIGKILLs itself right after the N-th commit of the stage named NAME (e.g.
`sample:free:base#2`, `train:org#3`), or at `load:SUBJECT` when that subject's weights load.
Unset (always, outside tests), it costs one dictionary lookup."""

from __future__ import annotations

import os
import signal
from collections import Counter

_COMMITS: Counter[str] = Counter()


def reached(point: str) -> None:
    if os.environ.get("PETRIDISH_KILL_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def committed(stage: str) -> None:
    """A stage committed one unit of work (a transaction, a checkpoint, a chunk file)."""
    if "PETRIDISH_KILL_AT" in os.environ:
        _COMMITS[stage] += 1
        reached(f"{stage}#{_COMMITS[stage]}")
