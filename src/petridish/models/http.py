"""One client for every OpenAI-compatible endpoint (served subjects and served judges): a
concurrency limit, timeouts, exponential backoff honouring Retry-After, bounded retries.

A request ends as data, or as a failure with its reason (`transient` when a later run may
succeed: timeouts, 429, 5xx, malformed JSON); faults no retry can fix (an endpoint that does
not answer, a rejected key, an unknown model) stop the run with one line naming the endpoint
and the status. The API key is read from the environment and lives only in a header.
"""

from __future__ import annotations

import email.utils
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import httpx

from petridish.errors import PetridishError
from petridish.models.refs import ModelRef

MAX_WAIT = 120.0  # longest single pause, whatever Retry-After asks


@dataclass(frozen=True)
class EndpointSettings:
    """How to reach and pace an endpoint."""

    api_key_env: str | None = None  # default OPENAI_API_KEY for openai:, none for http://
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 4
    backoff: float = 1.0  # seconds before the first retry; doubles each time


@dataclass(frozen=True)
class Outcome:
    """The parsed JSON body of a 2xx response, or why there is none."""

    data: dict[str, Any] | None
    failed: str | None = None
    transient: bool = False
    attempts: int = 1


class Fatal(Exception):
    """A fault no retry will fix."""


def key_variable(ref: ModelRef, settings: EndpointSettings) -> str | None:
    return settings.api_key_env or ("OPENAI_API_KEY" if ref.kind == "openai" else None)


class Endpoint:
    """`POST {base_url}/chat/completions` (or another path) for one served model."""

    def __init__(self, ref: ModelRef, settings: EndpointSettings, *, what: str,
                 field: str) -> None:
        if ref.base_url is None:
            raise PetridishError(f"{ref.text!r} is not a served model", field=field)
        self.ref, self.settings, self.what, self.field = ref, settings, what, field
        self.url = f"{ref.base_url}/chat/completions"
        self.retries = 0  # retried attempts so far, for reports
        self._lock = threading.Lock()
        self._headers = {"Content-Type": "application/json"}
        env = key_variable(ref, settings)
        if env:
            key = os.environ.get(env)
            if not key:
                raise PetridishError(f"environment variable {env} is not set; {what} "
                                     f"{ref.text} reads its API key from it",
                                     field=f"{field}.api_key_env")
            self._headers["Authorization"] = f"Bearer {key}"

    def stream(self, bodies: Sequence[dict[str, Any]]) -> Iterator[list[tuple[int, Outcome]]]:
        """Post every body, `concurrency` at a time; yields groups of `(index, outcome)` as
        they finish. A fatal fault cancels the rest and raises one PetridishError."""
        stop = threading.Event()
        limits = httpx.Limits(max_connections=self.settings.concurrency)
        with httpx.Client(timeout=self.settings.timeout, limits=limits) as client, \
                ThreadPoolExecutor(self.settings.concurrency) as pool:
            futures: dict[Future[Outcome], int] = {
                pool.submit(self._post, client, body, stop): i for i, body in enumerate(bodies)}
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    real = [f for f in done if _is_fatal(f) and str(f.exception()) != "stopped"]
                    if real:  # the first real cause, not a worker told to stop
                        raise real[0].exception()  # type: ignore[misc]
                    yield [(futures[f], f.result()) for f in done]
            except Fatal as e:
                stop.set()
                for f in pending:
                    f.cancel()
                raise PetridishError(f"{self.what} {self.ref.text}: {e}",
                                     field=self.field) from None
            finally:
                stop.set()

    def post_all(self, bodies: Sequence[dict[str, Any]]) -> list[Outcome]:
        out: list[Outcome | None] = [None] * len(bodies)
        for group in self.stream(bodies):
            for i, outcome in group:
                out[i] = outcome
        return [o for o in out if o is not None]

    def probe(self) -> Outcome:
        """One cheap request; a fault that is not a clean answer is an error naming it."""
        body = {"model": self.ref.name, "max_tokens": 1, "temperature": 0,
                "messages": [{"role": "user", "content": "Say OK."}]}
        (outcome,) = self.post_all([body])
        if outcome.data is None:
            raise PetridishError(f"{self.what} {self.ref.text} does not answer a probe "
                                 f"request: {outcome.failed}", field=self.field)
        return outcome

    def _post(self, client: httpx.Client, body: dict[str, Any],
              stop: threading.Event) -> Outcome:
        """One request, retried on transient faults; raises Fatal on the others (and tells
        the other workers at once, so a rejected key is not hammered)."""
        try:
            return self._attempts(client, body, stop)
        except Fatal:
            stop.set()
            raise

    def _attempts(self, client: httpx.Client, body: dict[str, Any],
                  stop: threading.Event) -> Outcome:
        s = self.settings
        last = "no attempt"
        for attempt in range(s.max_retries + 1):
            if stop.is_set():
                raise Fatal("stopped")
            pause = s.backoff * 2 ** attempt
            if attempt:
                with self._lock:
                    self.retries += 1
            try:
                resp = client.post(self.url, json=body, headers=self._headers)
            except httpx.ConnectError as e:
                last = f"cannot connect to {self.url} ({type(e).__name__})"
                if attempt >= min(s.max_retries, 2):  # refused connections rarely heal
                    raise Fatal(f"does not answer: {last}") from None
            except httpx.TimeoutException:
                last = f"timed out after {s.timeout:g} s"
            except httpx.TransportError as e:
                last = f"transport error {type(e).__name__}"
            else:
                code = resp.status_code
                if code in (401, 403):
                    raise Fatal(f"HTTP {code} from {self.url}: the server rejected the API key")
                if code == 404:
                    raise Fatal(f"HTTP 404 from {self.url}: wrong URL or unknown model "
                                f"{self.ref.name!r}")
                if code == 429 or code >= 500:
                    last = f"HTTP {code}"
                    asked = retry_after(resp)
                    pause = pause if asked is None else asked
                elif code >= 400:
                    return Outcome(None, f"HTTP {code}: {resp.text[:80]!r}", False, attempt + 1)
                else:
                    try:
                        data = resp.json()
                    except ValueError:
                        data = None
                    if chat_reply(data) is not None:
                        return Outcome(data, None, False, attempt + 1)
                    last = "malformed response (no choices with a message)"
            if attempt < s.max_retries:
                time.sleep(min(pause, MAX_WAIT))
        return Outcome(None, f"{last}, {s.max_retries + 1} attempts", True, s.max_retries + 1)


def _is_fatal(f: Future[Outcome]) -> bool:
    return not f.cancelled() and isinstance(f.exception(), Fatal)


def chat_reply(data: Any) -> dict[str, Any] | None:
    """The first choice of a chat-completions body, if the body has one with a message."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        return None
    choices = data["choices"]
    if not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    return choices[0] if isinstance(message, dict) else None


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
