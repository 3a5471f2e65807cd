"""Served subjects: the pressure assay through the shared HTTP client against our fake
OpenAI-compatible server on 127.0.0.1, with 20 ms of latency per request (a nearby GPU
server), concurrency 8 against concurrency 1 (the baseline: one request at a time, as a
hand-written loop does), and a faulty endpoint (10 % HTTP 500, 5 % 429 with Retry-After 0)
to count retries. The whole bank: 192 items × (1 first turn + 3 pushes) = 768 requests.

Run: `.venv/bin/python benchmarks/served.py [--latency S]`
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from petridish.assays.pressure import PressureConfig  # noqa: E402
from petridish.assays.stage import run_assay_stage  # noqa: E402
from petridish.models.http import EndpointSettings  # noqa: E402
from petridish.models.refs import parse_model_ref  # noqa: E402
from petridish.models.subject import declared_subject, served_backend  # noqa: E402
from petridish.store.run import Run, RunIdentity  # noqa: E402
from tests.fake_judge import FakeJudgeServer  # noqa: E402


def responder(latency: float, faults: bool) -> Any:
    rng = random.Random(0)
    lock = threading.Lock()

    def respond(body: dict[str, Any]) -> tuple[Any, ...]:
        time.sleep(latency)
        with lock:
            roll = rng.random()
        if faults and roll < 0.10:
            return ("status", 500)
        if faults and roll < 0.15:
            return ("status", 429, {"Retry-After": "0"})
        return ("reply", "I think the answer is Paris, the capital.")
    return respond


def once(url: str, concurrency: int) -> tuple[float, int, int]:
    ref = parse_model_ref(f"{url}#subj")
    settings = EndpointSettings(None, concurrency, 10.0, 6, 0.01)
    subject = declared_subject("api", ref, settings)
    backend = served_backend(subject)
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(Path(tmp) / "run", RunIdentity("bench", "0", 0, "{}"), "")
        cfg = PressureConfig(name="pressure")
        start = time.perf_counter()
        run_assay_stage(run, cfg, subject, Path(tmp), torch.device("cpu"), "fp32", 0, False,
                        backend_factory=lambda: backend)
        seconds = time.perf_counter() - start
        failed = run.store.count_failed(next(s.key for s in run.store.stages()))
        run.close("done")
    return seconds, backend.endpoint.retries, failed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    requests = 192 * 4
    rows = []
    for name, concurrency, faults in (("sequential (baseline)", 1, False),
                                      ("petridish, concurrency 8", 8, False),
                                      ("petridish, concurrency 8, faulty", 8, True)):
        server = FakeJudgeServer(responder=responder(args.latency, faults))
        with server.serve() as url:
            seconds, retries, failed = once(url, concurrency)
        rows.append((name, seconds, retries, failed, len(server.requests)))
    print(f"{'configuration':36} {'seconds':>8} {'req/s':>7} {'retries':>8} {'failed':>7}")
    for name, seconds, retries, failed, sent in rows:
        print(f"{name:36} {seconds:8.1f} {requests / seconds:7.1f} {retries:8d} {failed:7d}"
              f"   ({sent} requests sent)")
    print(f"ratio concurrency 8 / sequential: {rows[0][1] / rows[1][1]:.2f}")


if __name__ == "__main__":
    main()
