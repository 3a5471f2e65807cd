"""The builtin judge backends, registered on import (heavy imports stay lazy), and
`make_judge`, which picks a registered backend for a spec."""

from __future__ import annotations

from petridish.errors import PetridishError
from petridish.judges import http  # noqa: F401
from petridish.judges.base import BACKENDS, Judge, JudgeSettings, register


@register("offline")
def _offline(spec: str, settings: JudgeSettings) -> Judge:
    from petridish.judges.offline import OfflineJudge

    return OfflineJudge.load(device=settings.device)


@register("offline-large")
def _offline_large(spec: str, settings: JudgeSettings) -> Judge:
    """The slower, better-on-real-text judge (judges/offline_large/: a LoRA of
    all-mpnet-base-v2, whose base `petridish judge install-encoder mpnet-base` installs)."""
    from petridish.judges.offline import FOLDER, LARGE_FOLDER, OfflineJudge

    return OfflineJudge.load(LARGE_FOLDER, device=settings.device, extras_from=FOLDER)


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


def make_judge(spec: str, settings: JudgeSettings | None = None) -> Judge:
    """`offline`, `offline-large`, `offline:DIR`, `openai:MODEL`, `http(s)://HOST/v1#MODEL` or
    `hf:PATH` -> a judge."""
    settings = settings or JudgeSettings()
    for prefix, factory in BACKENDS.items():
        if spec == prefix or (prefix.endswith(":") and spec.startswith(prefix)):
            return factory(spec, settings)
    raise PetridishError(f"unknown judge {spec!r}: use offline, offline-large, openai:MODEL, "
                         "http://HOST/v1#MODEL or hf:PATH", field="judge")
