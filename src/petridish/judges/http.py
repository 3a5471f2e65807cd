"""OpenAI-compatible served judges (OpenAI, vLLM, Ollama, llama.cpp): paced, retried, honest.

Every row ends scored or unscored with a reason, never a silent 0. Transient faults (timeouts,
429, 5xx, malformed JSON) are retried with exponential backoff that honours Retry-After;
a server that cannot be reached or rejects the key stops the whole run with one line.
"""

from __future__ import annotations

import email.utils
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from petridish.errors import PetridishError
from petridish.judges.base import Item, JudgeSettings, Judgment, register, unscored
from petridish.judges.numbers import score_from_logprobs, score_from_text
from petridish.judges.rubrics import Rubric
from petridish.models.refs import parse_model_ref

MAX_WAIT = 120.0  # longest single pause, whatever Retry-After asks


class _Stop(Exception):
    """A fault no retry will fix (unreachable server, rejected key, unknown model)."""


class HTTPJudge:
    """A chat-completions endpoint asked for one token and its top-20 logprobs per rubric."""

    def __init__(self, spec: str, settings: JudgeSettings) -> None:
        ref = parse_model_ref(spec)
        if ref.kind not in ("openai", "http") or ref.base_url is None:
            raise PetridishError(f"{spec!r} is not a served judge", field="judge")
        self.spec, self.model, self.settings = spec, ref.name, settings
        self.url = f"{ref.base_url}/chat/completions"
        self.id = spec if settings.mode == "logprobs" else f"{spec}|parse"
        if settings.mode not in ("logprobs", "parse"):
            raise PetridishError(f"judge mode must be logprobs or parse, not {settings.mode!r}",
                                 field="judge.mode")
        key_env = settings.api_key_env or ("OPENAI_API_KEY" if ref.kind == "openai" else None)
        self._headers = {"Content-Type": "application/json"}
        if key_env:
            key = os.environ.get(key_env)
            if not key:
                raise PetridishError(f"environment variable {key_env} is not set; judge "
                                     f"{spec} reads its API key from it", field="judge.api_key_env")
            self._headers["Authorization"] = f"Bearer {key}"

    def judge(self, items: Sequence[Item], rubrics: Sequence[Rubric],
              progress: Callable[[int], None] | None = None) -> dict[str, list[Judgment]]:
        jobs = [(r, it) for r in rubrics for it in items]
        stop = threading.Event()
        cause: list[str] = []  # the first fatal fault, reported instead of "stopped"
        limits = httpx.Limits(max_connections=self.settings.concurrency)
        with httpx.Client(timeout=self.settings.timeout, limits=limits) as client:
            def work(job: tuple[Rubric, Item]) -> Judgment:
                if stop.is_set():
                    raise _Stop("stopped")
                try:
                    out = self._one(client, job[0], job[1], stop)
                except _Stop as e:
                    if not stop.is_set():
                        cause.append(str(e))
                    stop.set()
                    raise
                if progress:
                    progress(1)
                return out

            with ThreadPoolExecutor(self.settings.concurrency) as pool:
                futures = [pool.submit(work, j) for j in jobs]
                try:
                    results = [f.result() for f in futures]
                except _Stop as e:
                    stop.set()
                    for f in futures:
                        f.cancel()
                    why = cause[0] if cause else str(e)
                    raise PetridishError(f"judge {self.spec}: {why}", field="judge") from None
        out: dict[str, list[Judgment]] = {r.name: [] for r in rubrics}
        for (r, _), j in zip(jobs, results, strict=True):
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

    def _one(self, client: httpx.Client, rubric: Rubric, item: Item,
             stop: threading.Event) -> Judgment:
        """One judgment, retried on transient faults; raises _Stop on fatal ones."""
        body = self._body(rubric.render(item.question, item.answer))
        s = self.settings
        last = "no attempt"
        for attempt in range(s.max_retries + 1):
            if stop.is_set():
                raise _Stop("stopped")
            wait = s.backoff * 2 ** attempt
            try:
                resp = client.post(self.url, json=body, headers=self._headers)
            except httpx.ConnectError as e:
                last = f"cannot connect to {self.url} ({type(e).__name__})"
                if attempt >= min(s.max_retries, 2):  # refused connections rarely heal
                    raise _Stop(f"does not answer: {last}") from None
            except httpx.TimeoutException:
                last = f"timed out after {s.timeout:g} s"
            except httpx.TransportError as e:
                last = f"transport error {type(e).__name__}"
            else:
                code = resp.status_code
                if code in (401, 403):
                    raise _Stop(f"HTTP {code}: the server rejected the API key")
                if code == 404:
                    raise _Stop(f"HTTP 404 from {self.url}: wrong URL or unknown model "
                                f"{self.model!r}")
                if code == 429 or code >= 500:
                    last = f"HTTP {code}"
                    wait = retry_after(resp) or wait
                elif code >= 400:
                    return unscored(self.id, rubric, f"HTTP {code}: {resp.text[:80]!r}")
                else:
                    try:
                        return self._read(resp.json(), rubric)
                    except (ValueError, KeyError, IndexError, TypeError):
                        last = "malformed response"
            if attempt < s.max_retries:
                time.sleep(min(wait, MAX_WAIT))
        return unscored(self.id, rubric, f"{last}, {s.max_retries + 1} attempts",
                        transient=True)

    def _read(self, data: dict[str, Any], rubric: Rubric) -> Judgment:
        """Score from a chat-completions response; KeyError etc. mean malformed."""
        usage = data.get("usage") or {}
        tin, tout = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        choice = data["choices"][0]
        if self.settings.mode == "parse":
            score, reason = score_from_text(choice["message"]["content"] or "")
            return Judgment(score, self.id, rubric.name, rubric.version, reason,
                            tokens_in=tin, tokens_out=tout)
        content = (choice.get("logprobs") or {}).get("content")
        if not content:
            return unscored(self.id, rubric, "the endpoint returned no logprobs; use "
                            "mode = \"parse\" for it", tokens_in=tin, tokens_out=tout)
        top = [(t["token"], float(t["logprob"])) for t in content[0]["top_logprobs"]]
        score, mass, reason = score_from_logprobs(top)
        return Judgment(score, self.id, rubric.name, rubric.version, reason, mass, tin, tout)


def retry_after(resp: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (number or HTTP date), if it said."""
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@register("openai:")
def _openai(spec: str, settings: JudgeSettings) -> HTTPJudge:
    return HTTPJudge(spec, settings)


@register("http:")
def _http(spec: str, settings: JudgeSettings) -> HTTPJudge:
    return HTTPJudge(spec, settings)


@register("https:")
def _https(spec: str, settings: JudgeSettings) -> HTTPJudge:
    return HTTPJudge(spec, settings)
