"""Importing this registers the builtin judge backends (heavy imports stay lazy)."""

from __future__ import annotations

from petridish.judges import http  # noqa: F401
from petridish.judges.base import Judge, JudgeSettings, register


@register("offline")
def _offline(spec: str, settings: JudgeSettings) -> Judge:
    from petridish.judges.offline import OfflineJudge

    return OfflineJudge.load(device=settings.device)


@register("offline:")
def _offline_folder(spec: str, settings: JudgeSettings) -> Judge:
    """`offline:DIR`: a retrained judge in its own folder (`judge retrain --output DIR`), to
    validate before installing it."""
    from pathlib import Path

    from petridish.judges.offline import OfflineJudge

    return OfflineJudge.load(Path(spec.removeprefix("offline:")).expanduser(),
                             device=settings.device)


@register("hf:")
def _hf(spec: str, settings: JudgeSettings) -> Judge:
    from petridish.judges.hf import HFJudge

    return HFJudge(spec.removeprefix("hf:"), settings)
