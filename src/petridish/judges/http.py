"""OpenAI-compatible served judges (OpenAI, vLLM, Ollama, llama.cpp): paced, retried, honest.

Every row ends scored or unscored with a reason, never a silent 0. The shared client
(`models/http.py`) retries transient faults and stops the run on fatal ones; what it gives up
on is unscored and not cached, so a later run retries it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from petridish.errors import PetridishError
from petridish.judges.base import Item, JudgeSettings, Judgment, register, unscored
from petridish.judges.numbers import score_from_logprobs, score_from_text
from petridish.judges.rubrics import Rubric
from petridish.models.http import Endpoint, EndpointSettings, Outcome, chat_reply
from petridish.models.refs import parse_model_ref


class HTTPJudge:
    """A chat-completions endpoint asked for one token and its top-20 logprobs per rubric."""

    def __init__(self, spec: str, settings: JudgeSettings) -> None:
        ref = parse_model_ref(spec)
        if ref.kind not in ("openai", "http") or ref.base_url is None:
            raise PetridishError(f"{spec!r} is not a served judge", field="judge")
        if settings.mode not in ("logprobs", "parse"):
            raise PetridishError(f"judge mode must be logprobs or parse, not {settings.mode!r}",
                                 field="judge.mode")
        self.spec, self.model, self.settings = spec, ref.name, settings
        self.id = spec if settings.mode == "logprobs" else f"{spec}|parse"
        self.endpoint = Endpoint(ref, EndpointSettings(
            settings.api_key_env, settings.concurrency, settings.timeout, settings.max_retries,
            settings.backoff), what="judge", field="judge")
        self.url = self.endpoint.url

    def probe(self) -> None:
        self.endpoint.probe()

    def judge(self, items: Sequence[Item], rubrics: Sequence[Rubric],
              progress: Callable[[int], None] | None = None) -> dict[str, list[Judgment]]:
        jobs = [(r, it) for r in rubrics for it in items]
        bodies = [self._body(r.render(it.question, it.answer)) for r, it in jobs]
        results: list[Judgment | None] = [None] * len(jobs)
        for group in self.endpoint.stream(bodies):
            for i, outcome in group:
                results[i] = self._judgment(outcome, jobs[i][0])
            if progress:
                progress(len(group))
        out: dict[str, list[Judgment]] = {r.name: [] for r in rubrics}
        for (r, _), j in zip(jobs, results, strict=True):
            assert j is not None
            out[r.name].append(j)
        return out

    def _body(self, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "temperature": 0, "seed": 0,
                                "messages": [{"role": "user", "content": prompt}]}
        if self.settings.mode == "logprobs":
            body.update(max_tokens=1, logprobs=True, top_logprobs=20)
        else:
            body.update(max_tokens=8)
        return body

    def _judgment(self, outcome: Outcome, rubric: Rubric) -> Judgment:
        if outcome.data is None:
            return unscored(self.id, rubric, outcome.failed or "failed",
                            transient=outcome.transient)
        data = outcome.data
        usage = data.get("usage") or {}
        tin, tout = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        choice = chat_reply(data) or {}
        if self.settings.mode == "parse":
            score, reason = score_from_text(choice["message"].get("content") or "")
            return Judgment(score, self.id, rubric.name, rubric.version, reason,
                            tokens_in=tin, tokens_out=tout)
        content = (choice.get("logprobs") or {}).get("content")
        if not content:
            return unscored(self.id, rubric, "the endpoint returned no logprobs; use "
                            "mode = \"parse\" for it", tokens_in=tin, tokens_out=tout)
        try:
            top = [(t["token"], float(t["logprob"])) for t in content[0]["top_logprobs"]]
        except (KeyError, IndexError, TypeError, ValueError):
            return unscored(self.id, rubric, "malformed logprobs", transient=True,
                            tokens_in=tin, tokens_out=tout)
        score, mass, reason = score_from_logprobs(top)
        return Judgment(score, self.id, rubric.name, rubric.version, reason, mass, tin, tout)


@register("openai:")
def _openai(spec: str, settings: JudgeSettings) -> HTTPJudge:
    return HTTPJudge(spec, settings)


@register("http:")
def _http(spec: str, settings: JudgeSettings) -> HTTPJudge:
    return HTTPJudge(spec, settings)


@register("https:")
def _https(spec: str, settings: JudgeSettings) -> HTTPJudge:
    return HTTPJudge(spec, settings)
