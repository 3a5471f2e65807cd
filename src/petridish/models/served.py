"""A served model as a subject: chat completions on an OpenAI-compatible endpoint (OpenAI,
vLLM, Ollama, llama.cpp's server, `petridish serve`), one request per sample so every sample
keeps its own seed, and a record of what the server ignored."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

from petridish.models.backend import Reply
from petridish.models.chat import Message
from petridish.models.http import Endpoint, EndpointSettings, Outcome, chat_reply
from petridish.models.refs import ModelRef
from petridish.models.sampling import SamplingConfig

SEED_BITS = 31  # servers take a 32-bit seed at most


class ServedBackend:
    """Samples through `Endpoint`; failed requests come back as failed replies."""

    def __init__(self, name: str, ref: ModelRef, settings: EndpointSettings) -> None:
        self.ref = ref
        self.endpoint = Endpoint(ref, settings, what="subject", field=f"subjects.{name}")
        self.ignored: set[str] = set()
        self.seen: dict[str, Any] = {}
        self.requests = 0

    def probe(self) -> dict[str, Any]:
        """A cheap request, then two equal seeded samples: does the server honour `seed`?"""
        self.endpoint.probe()
        body = {"model": self.ref.name, "max_tokens": 12, "temperature": 1.0, "seed": 1234,
                "messages": [{"role": "user", "content": "Name three colours."}]}
        a, b = self.endpoint.post_all([body, body])
        texts = [(chat_reply(o.data) or {}).get("message", {}).get("content") for o in (a, b)]
        if a.data is not None and b.data is not None and texts[0] != texts[1]:
            self.ignored.add("seed")
        return {"seed_reproducible": "seed" not in self.ignored}

    def chat(self, conversations: Sequence[Sequence[Message]], seeds: Sequence[int],
             sampling: SamplingConfig) -> Iterator[tuple[list[int], list[Reply]]]:
        if sampling.min_new_tokens:
            self.ignored.add("min_new_tokens")  # chat completions have no such parameter
        bodies = [{"model": self.ref.name, "messages": [dict(m) for m in conv], "n": 1,
                   "temperature": sampling.temperature, "top_p": sampling.top_p,
                   "max_tokens": sampling.max_new_tokens, "seed": seed % 2 ** SEED_BITS}
                  for conv, seed in zip(conversations, seeds, strict=True)]
        self.requests += len(bodies)
        for group in self.endpoint.stream(bodies):
            yield [i for i, _ in group], [self._reply(o, sampling) for _, o in group]

    def _reply(self, outcome: Outcome, sampling: SamplingConfig) -> Reply:
        if outcome.data is None:
            return Reply("", 0, "failed", outcome.failed or "failed")
        data = outcome.data
        choice = chat_reply(data) or {}
        usage = data.get("usage") or {}
        n_out, n_in = int(usage.get("completion_tokens", 0)), int(usage.get("prompt_tokens", 0))
        if n_out > sampling.max_new_tokens:
            self.ignored.add("max_tokens")
        for key in ("model", "system_fingerprint"):
            if data.get(key):
                self.seen[key] = data[key]
        text = choice["message"].get("content") or ""
        finish: Literal["stop", "length"] = ("length" if choice.get("finish_reason") == "length"
                                             else "stop")
        return Reply(str(text), n_out, finish, None, n_in)

    def describe(self) -> dict[str, Any]:
        """What meta.json records (never the API key)."""
        return {"ref": self.ref.text, "kind": self.ref.kind, "base_url": self.ref.base_url,
                "model": self.ref.name, "served_model": self.seen.get("model"),
                "system_fingerprint": self.seen.get("system_fingerprint"),
                "sent": ["n", "temperature", "top_p", "max_tokens", "seed"],
                "ignored": sorted(self.ignored), "requests": self.requests,
                "retries": self.endpoint.retries}
