"""The `[judge]` table: who grades every assay's answers, under which rubrics."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from petridish.judges.base import JudgeSettings
from petridish.judges.rubrics import DEFAULT_RUBRICS
from petridish.names import TABLE


class JudgeConfig(BaseModel):
    """Who grades every assay's answers, under which rubrics; `[judge]` in the experiment."""

    model_config = TABLE

    backend: str = Field("offline", description="offline, offline-large (slower, better on "
                         "real answers), offline:DIR (a `judge retrain --output DIR` judge; "
                         "DIR relative to the experiment file), openai:MODEL, "
                         "http://HOST/v1#MODEL or hf:PATH")
    rubrics: list[str] = Field(default_factory=lambda: list(DEFAULT_RUBRICS), min_length=1,
                               description="rubric names, e.g. alignment, coherence, bad_stuff")
    api_key_env: str | None = Field(None, description="environment variable holding the API "
                                    "key (default OPENAI_API_KEY for openai:)")
    mode: Literal["logprobs", "parse"] = Field("logprobs", description="read the score from "
                                               "top-20 logprobs, or parse it from the text")
    concurrency: int = Field(8, ge=1, le=256, description="requests in flight")
    timeout: float = Field(60.0, gt=0, description="seconds per request")
    max_retries: int = Field(4, ge=0, le=20, description="retries of a transient failure")

    def spec(self, base_dir: Path) -> str:
        """The backend as `make_judge` takes it: an `offline:DIR` folder resolved against the
        experiment's folder, so the run does not depend on where it was started."""
        folder = self.folder(base_dir)
        return f"offline:{folder}" if folder is not None else self.backend

    def folder(self, base_dir: Path) -> Path | None:
        """The retrained judge's folder an `offline:DIR` backend names, else None."""
        if not self.backend.startswith("offline:"):
            return None
        return (base_dir / Path(self.backend.removeprefix("offline:")).expanduser()).resolve()

    def settings(self) -> JudgeSettings:
        return JudgeSettings(api_key_env=self.api_key_env, mode=self.mode,
                             concurrency=self.concurrency, timeout=self.timeout,
                             max_retries=self.max_retries)
