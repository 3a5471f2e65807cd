"""A fake OpenAI-compatible judge server on 127.0.0.1, over real HTTP, with scripted faults."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
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


class FakeJudgeServer:
    """Serves /v1/chat/completions. `script` is consumed one action per request; then `default`.

    Actions: ("ok", dist) | ("text", str) | ("timeout", seconds) | ("status", code, headers)
    | ("malformed",) | ("nologprobs",).
    """

    def __init__(self, script: list[tuple[Any, ...]] | None = None,
                 default: tuple[Any, ...] = ("ok", {"80": 0.6, "70": 0.3, "The": 0.1})) -> None:
        self.script = list(script or [])
        self.default = default
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []
        self.lock = threading.Lock()

    def next_action(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[Any, ...]:
        with self.lock:
            self.requests.append(body)
            self.headers.append(headers)
            self.times.append(time.monotonic())
            return self.script.pop(0) if self.script else self.default

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
                    action = fake.default
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
