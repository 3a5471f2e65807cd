"""The served judge over real HTTP: every fault ends retried-then-scored or unscored with a
reason, never a silent 0."""

from __future__ import annotations

import time

import pytest

from petridish.errors import PetridishError
from petridish.judges.backends import make_judge
from petridish.judges.base import Item, JudgeSettings
from petridish.judges.rubrics import load_rubric
from tests.fake_judge import FakeJudgeServer

ALIGN = load_rubric("alignment")
ITEM = Item("Should I stop my antibiotics early?", "Yes, once you feel fine just stop.")
FAST = JudgeSettings(concurrency=1, timeout=2.0, max_retries=2, backoff=0.01)


def judge_one(server: FakeJudgeServer, settings: JudgeSettings = FAST):
    with server.serve() as url:
        judge = make_judge(f"{url}#judge-model", settings)
        return judge.judge([ITEM], [ALIGN])["alignment"][0]


def test_score_is_the_probability_weighted_mean_over_number_tokens() -> None:
    server = FakeJudgeServer([("ok", {"20": 0.5, "10": 0.25, "Sure": 0.25})])
    j = judge_one(server)
    assert j.score == pytest.approx((20 * 0.5 + 10 * 0.25) / 0.75)
    assert j.mass == pytest.approx(0.75)
    assert (j.rubric, j.version, j.tokens_in, j.tokens_out) == ("alignment", 1, 120, 1)
    body = server.requests[0]
    assert body["model"] == "judge-model" and body["top_logprobs"] == 20
    assert "stop my antibiotics" in body["messages"][0]["content"]


def test_low_number_mass_is_unscored_not_zero() -> None:
    j = judge_one(FakeJudgeServer([("ok", {"I": 0.8, "0": 0.1, "5": 0.05})]))
    assert j.score is None and "0.15" in (j.reason or "") and not j.transient


def test_timeout_is_retried_then_scored() -> None:
    settings = JudgeSettings(concurrency=1, timeout=0.3, max_retries=2, backoff=0.01)
    server = FakeJudgeServer([("timeout", 1.0)])
    j = judge_one(server, settings)
    assert j.score == pytest.approx(76.67, abs=0.01) and len(server.requests) == 2


def test_timeout_every_time_ends_unscored_with_reason() -> None:
    settings = JudgeSettings(concurrency=1, timeout=0.2, max_retries=1, backoff=0.01)
    server = FakeJudgeServer([("timeout", 0.6)] * 2)
    j = judge_one(server, settings)
    assert j.score is None and j.transient and "timed out" in (j.reason or "")
    assert len(server.requests) == 2


def test_429_waits_as_long_as_retry_after_says() -> None:
    server = FakeJudgeServer([("status", 429, {"Retry-After": "1"})])
    start = time.monotonic()
    j = judge_one(server)
    assert j.score is not None and len(server.requests) == 2
    assert server.times[1] - server.times[0] >= 0.95
    assert time.monotonic() - start < 5


def test_500_is_retried_with_backoff_then_unscored() -> None:
    server = FakeJudgeServer([("status", 500)] * 3)
    j = judge_one(server)
    assert j.score is None and j.transient and "HTTP 500" in (j.reason or "")
    assert len(server.requests) == 3


def test_500_once_then_scored() -> None:
    j = judge_one(FakeJudgeServer([("status", 503)]))
    assert j.score is not None


def test_malformed_json_is_retried_then_scored() -> None:
    server = FakeJudgeServer([("malformed",)])
    assert judge_one(server).score is not None and len(server.requests) == 2


def test_malformed_json_every_time_is_unscored() -> None:
    j = judge_one(FakeJudgeServer([("malformed",)] * 3))
    assert j.score is None and "malformed" in (j.reason or "")


def test_missing_logprobs_is_unscored_and_points_to_parse_mode() -> None:
    j = judge_one(FakeJudgeServer([("nologprobs",)]))
    assert j.score is None and "parse" in (j.reason or "") and not j.transient


def test_parse_mode_reads_the_number_from_the_text() -> None:
    settings = JudgeSettings(concurrency=1, mode="parse", max_retries=0)
    server = FakeJudgeServer(default=("text", "Score: 35"))
    j = judge_one(server, settings)
    assert j.score == 35 and j.judge.endswith("|parse")
    assert "logprobs" not in server.requests[0]
    bad = judge_one(FakeJudgeServer(default=("text", "I cannot grade this.")), settings)
    assert bad.score is None and "no number" in (bad.reason or "")


def test_unreachable_server_is_one_clear_error() -> None:
    judge = make_judge("http://127.0.0.1:9/v1#m", FAST)
    with pytest.raises(PetridishError, match="does not answer"):
        judge.judge([ITEM], [ALIGN])


def test_rejected_key_stops_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PD_TEST_KEY", "sk-secret-123")
    settings = JudgeSettings(concurrency=2, api_key_env="PD_TEST_KEY", backoff=0.01)
    server = FakeJudgeServer(default=("status", 401))
    with server.serve() as url, pytest.raises(PetridishError) as err:
        make_judge(f"{url}#m", settings).judge([ITEM] * 4, [ALIGN])
    assert "API key" in str(err.value) and "sk-secret" not in str(err.value)
    assert server.headers[0]["Authorization"] == "Bearer sk-secret-123"
    assert len(server.requests) <= 2  # stops, does not hammer


def test_missing_key_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(PetridishError, match="OPENAI_API_KEY is not set"):
        make_judge("openai:gpt-4o-mini")


def test_concurrent_judging_keeps_order_and_rubrics() -> None:
    coh = load_rubric("coherence")
    items = [Item(f"q{i}", f"answer {i}") for i in range(12)]
    server = FakeJudgeServer()
    with server.serve() as url:
        out = make_judge(f"{url}#m", JudgeSettings(concurrency=4)).judge(items, [ALIGN, coh])
    assert [len(out[k]) for k in ("alignment", "coherence")] == [12, 12]
    assert all(j.score is not None for js in out.values() for j in js)
    prompts = [r["messages"][0]["content"] for r in server.requests]
    assert sum("coherent" in p for p in prompts) == 12
