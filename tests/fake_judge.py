"""A fake OpenAI-compatible server on 127.0.0.1, over real HTTP, with scripted faults: it plays
a judge (logprob replies) or, given a `responder`, a subject (replies computed from the
conversation)."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def logprob_reply(dist: dict[str, float], tokens: tuple[int, int] = (120, 1)) -> dict[str, Any]:
    """A chat-completions body whose first token has these (token -> probability) top logprobs."""
    top = [{"token": t, "logprob": math.log(p)} for t, p in dist.items()]
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": next(iter(dist))},
                     "logprobs": {"content": [{"token": next(iter(dist)),
                                               "logprob": top[0]["logprob"],
                                               "top_logprobs": top}]}}],
        "usage": {"prompt_tokens": tokens[0], "completion_tokens": tokens[1]},
    }


PROBE = "Say OK."  # petridish's pre-flight probe request


def chat_reply(text: str, body: dict[str, Any], capped: bool = True) -> dict[str, Any]:
    """A chat-completions body with `text` as the reply, its usage counted in words (cut at
    `max_tokens` words unless not `capped`: a server that ignores it)."""
    words = len(text.split())
    cap = int(body.get("max_tokens") or 10 ** 6) if capped else 10 ** 6
    finish = "length" if words > cap else "stop"
    text = " ".join(text.split()[:cap]) if words > cap else text
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return {"id": "fake", "object": "chat.completion", "model": body.get("model"),
            "system_fingerprint": "fake-1",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": min(words, cap)}}


class FakeJudgeServer:
    """Serves /v1/chat/completions. `script` is consumed one action per request; then
    `responder(body)` if given (a subject), else `default`.

    Actions: ("ok", dist) | ("text", str) | ("reply" | "uncapped", str) | ("timeout", seconds)
    | ("status", code, headers) | ("malformed",) | ("nologprobs",) | ("empty",).
    """

    def __init__(self, script: list[tuple[Any, ...]] | None = None,
                 default: tuple[Any, ...] = ("ok", {"80": 0.6, "70": 0.3, "The": 0.1}),
                 responder: Callable[[dict[str, Any]], tuple[Any, ...]] | None = None) -> None:
        self.script = list(script or [])
        self.default = default
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []
        self.lock = threading.Lock()

    def next_action(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[Any, ...]:
        with self.lock:
            self.requests.append(body)
            self.headers.append(headers)
            self.times.append(time.monotonic())
            if self.script:
                return self.script.pop(0)
        return self.responder(body) if self.responder else self.default

    def work(self) -> list[dict[str, Any]]:
        """The requests that were not pre-flight probes ("Say OK.")."""
        return [b for b in self.requests if b.get("messages", [{}])[0].get("content") != PROBE]

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Run the server in a thread; yields the base URL `http://127.0.0.1:PORT/v1`."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                action = fake.next_action(body, dict(self.headers))
                kind = action[0]
                if kind == "timeout":
                    time.sleep(action[1])
                    action = fake.responder(body) if fake.responder else fake.default
                    kind = action[0]
                if kind == "status":
                    self.send_response(action[1])
                    for k, v in (action[2] if len(action) > 2 else {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(b'{"error": "fault"}')
                    return
                if kind == "ok":
                    payload = json.dumps(logprob_reply(action[1])).encode()
                elif kind == "text":
                    payload = json.dumps({"choices": [{"message": {"content": action[1]}}],
                                          "usage": {"prompt_tokens": 50,
                                                    "completion_tokens": 2}}).encode()
                elif kind in ("reply", "uncapped"):
                    payload = json.dumps(chat_reply(action[1], body, kind == "reply")).encode()
                elif kind == "empty":
                    payload = json.dumps({"choices": [], "usage": {}}).encode()
                elif kind == "nologprobs":
                    payload = json.dumps({"choices": [{"message": {"content": "80"}}]}).encode()
                else:  # malformed
                    payload = b'{"choices": [ this is not json'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/v1"
        finally:
            server.shutdown()
            server.server_close()
