"""The teacher client against the local stand-in server, reached through LiteLLM like any provider."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Any

import anyio
import httpx
import pytest

from nanodistill.errors import NanodistillError
from nanodistill.store.db import Store
from nanodistill.store.teacher_calls import job_call_totals
from nanodistill.teacher.cache import SqliteTeacherCache
from nanodistill.teacher.check import check_teacher, probe_api_base
from nanodistill.teacher.client import TeacherClient, TeacherError
from nanodistill.teacher.limits import RateLimiter
from nanodistill.teacher.provider import load_litellm
from nanodistill.teacher.retry import backoff_s, classify
from nanodistill.testing.teacher_server import TeacherServer, start_teacher_server

SECRET = "sk-test-0123456789abcdef-secret"
HELLO = [{"role": "user", "content": "hello teacher"}]


@pytest.fixture
def secret_key(monkeypatch: pytest.MonkeyPatch, server: TeacherServer) -> str:
    """A key variable the operator allows, and the stand-in as a URL the operator lets keys go to."""
    monkeypatch.setenv("STAND_IN_TEACHER_KEY", SECRET)
    monkeypatch.setenv("NANODISTILL_KEY_ENVS", "STAND_IN_TEACHER_KEY")
    monkeypatch.setenv("NANODISTILL_API_BASES", server.url)
    return "STAND_IN_TEACHER_KEY"


def _client(server: TeacherServer, **kwargs: Any) -> TeacherClient:
    kwargs.setdefault("backoff_base_s", 0.05)
    return TeacherClient(server.model, api_base=server.url, **kwargs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.anyio
async def test_second_identical_call_comes_from_the_cache(server: TeacherServer, store: Store, secret_key: str) -> None:
    client = _client(server, cache=SqliteTeacherCache(store), job_id="job_a", api_key_env=secret_key)
    first = await client.complete(HELLO)
    second = await client.complete(HELLO)
    assert first.text == second.text == "echo: hello teacher"
    assert (first.cached, second.cached) == (False, True)
    assert first.key == second.key
    assert server.calls == 1
    assert (client.totals.calls, client.totals.cached_calls) == (1, 1)
    assert second.cost_usd == 0.0

    other = await client.complete(HELLO, seed_tag="sample-2")
    assert not other.cached and server.calls == 2

    rows = await store.fetchall("SELECT * FROM teacher_calls")
    assert len(rows) == 2 and {row["job_id"] for row in rows} == {"job_a"}
    assert all(SECRET not in json.dumps(dict(row)) for row in rows)
    stats = await job_call_totals(store, "job_a")
    assert stats["calls"] == 2 and stats["unpriced_calls"] == 2
    assert stats["prompt_tokens"] == 2 * first.prompt_tokens


@pytest.mark.anyio
async def test_the_same_model_name_at_another_server_is_another_teacher(store: Store) -> None:
    with start_teacher_server() as first, start_teacher_server() as second:
        cache = SqliteTeacherCache(store)
        assert (await _client(first, cache=cache).complete(HELLO)).cached is False
        assert (await _client(first, cache=cache).complete(HELLO)).cached is True
        elsewhere = await _client(second, cache=cache).complete(HELLO)
        assert elsewhere.cached is False and second.calls == 1
        assert (await _client(second, cache=cache).complete(HELLO)).cached is True
        assert first.calls == 1 and second.calls == 1


@pytest.mark.anyio
async def test_a_fresh_client_on_the_same_store_makes_no_network_call(server: TeacherServer, store: Store) -> None:
    await _client(server, cache=SqliteTeacherCache(store)).complete(HELLO, temperature=0.2)
    again = _client(server, cache=SqliteTeacherCache(store))
    reply = await again.complete(HELLO, temperature=0.2)
    assert reply.cached and server.calls == 1 and again.totals.calls == 0


@pytest.mark.anyio
async def test_tokens_and_cost_are_counted(server: TeacherServer) -> None:
    unpriced = _client(server)
    reply = await unpriced.complete(HELLO)
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0
    assert reply.cost_usd is None
    assert unpriced.totals.priced is False and unpriced.totals.cost_usd == 0.0
    assert unpriced.totals.prompt_tokens == reply.prompt_tokens

    priced = _client(server, input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    reply = await priced.complete(HELLO)
    expected = reply.prompt_tokens * 1e-6 + reply.completion_tokens * 2e-6
    assert reply.cost_usd == pytest.approx(expected)
    assert priced.totals.priced and priced.totals.cost_usd == pytest.approx(expected)


@pytest.mark.anyio
async def test_rate_limits_are_retried_and_retry_after_is_read(server: TeacherServer) -> None:
    server.faults.retry_after_s = 0.3
    server.faults.rate_limit = 1
    litellm = load_litellm()
    with pytest.raises(litellm.RateLimitError) as caught:
        await litellm.acompletion(
            model=server.model, api_base=server.url, api_key="x", messages=HELLO, num_retries=0, max_retries=0
        )
    failure = classify(caught.value)
    assert failure.retryable and failure.retry_after_s == pytest.approx(0.3)
    assert backoff_s(0, failure, base_s=0.05, cap_s=1) >= 0.3

    server.faults.rate_limit = 2
    client = _client(server)
    reply = await client.complete(HELLO)
    assert reply.text == "echo: hello teacher"
    assert client.totals.retries == 2 and server.calls == 4


@pytest.mark.anyio
async def test_server_errors_are_retried(server: TeacherServer) -> None:
    server.faults.server_error = 2
    client = _client(server)
    assert (await client.complete(HELLO)).text == "echo: hello teacher"
    assert server.calls == 3 and client.totals.retries == 2 and client.totals.calls == 1


@pytest.mark.anyio
async def test_a_hung_call_times_out_and_is_retried(server: TeacherServer) -> None:
    server.faults.hang = 1
    client = _client(server, timeout_s=1)
    assert (await client.complete(HELLO)).text == "echo: hello teacher"
    assert server.calls == 2 and client.totals.retries == 1


@pytest.mark.anyio
async def test_gives_up_with_a_clear_error_that_hides_the_key(server: TeacherServer, secret_key: str) -> None:
    server.faults.server_error = 10
    client = _client(server, max_retries=2, api_key_env=secret_key)
    with pytest.raises(TeacherError) as caught:
        await client.complete(HELLO)
    message = str(caught.value)
    assert "3 times" in message and "500" in message and server.url in message
    assert SECRET not in message
    assert server.calls == 3


@pytest.mark.anyio
async def test_unreachable_server_fails_after_retries() -> None:
    client = TeacherClient(
        "stand-in", api_base=f"http://127.0.0.1:{_free_port()}/v1", max_retries=1, backoff_base_s=0.05
    )
    with pytest.raises(TeacherError, match="2 times"):
        await client.complete(HELLO)


@pytest.mark.anyio
async def test_a_missing_key_variable_is_never_replaced_by_another_key(
    server: TeacherServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MY_TEACHER_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with pytest.raises(NanodistillError, match="MY_TEACHER_KEY"):
        await _client(server, api_key_env="MY_TEACHER_KEY").complete(HELLO)
    assert server.calls == 0


@pytest.mark.anyio
async def test_empty_replies_are_not_cached(server: TeacherServer, store: Store) -> None:
    server.faults.empty = 1
    client = _client(server, cache=SqliteTeacherCache(store))
    assert (await client.complete(HELLO)).text == ""
    reply = await client.complete(HELLO)
    assert reply.text == "echo: hello teacher" and not reply.cached and server.calls == 2


@pytest.mark.anyio
async def test_concurrency_is_bounded(server: TeacherServer) -> None:
    server.faults.latency_s = 0.05
    client = _client(server, concurrency=3)
    async with anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(client.complete, [{"role": "user", "content": f"call {i}"}])
    assert server.calls == 12 and server.max_in_flight == 3


def test_rate_limiter_holds_calls_beyond_the_minute_budget() -> None:
    async def two_calls_then_wait() -> float:
        limiter = RateLimiter(rpm=2)
        await limiter.acquire()
        await limiter.acquire()
        return limiter.wait_s()

    assert anyio.run(two_calls_then_wait) > 50


def test_check_teacher_names_the_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with pytest.raises(NanodistillError, match="ANTHROPIC_API_KEY"):
        check_teacher("anthropic/claude-3-5-haiku-latest", None, None)
    monkeypatch.delenv("MY_TEACHER_KEY", raising=False)
    with pytest.raises(NanodistillError, match="MY_TEACHER_KEY"):
        check_teacher("anthropic/claude-3-5-haiku-latest", None, "MY_TEACHER_KEY")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-placeholder")
    check_teacher("anthropic/claude-3-5-haiku-latest", None, None)


def test_check_teacher_rejects_an_unknown_model() -> None:
    with pytest.raises(NanodistillError) as caught:
        check_teacher("definitely-not-a-model", None, None)
    assert "anthropic/" in str(caught.value) and "api_base" in str(caught.value)
    check_teacher("definitely-not-a-model", "http://127.0.0.1:9/v1", None)


@pytest.mark.anyio
async def test_probe_api_base(server: TeacherServer) -> None:
    await probe_api_base(server.url)
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(NanodistillError, match=dead):
        await probe_api_base(dead)
    with pytest.raises(NanodistillError, match="not an http"):
        await probe_api_base("ftp://example")


@pytest.mark.anyio
async def test_the_server_runs_as_its_own_process_with_an_admin_endpoint() -> None:
    command = [sys.executable, "-m", "nanodistill.testing.teacher_server", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            info = json.loads(process.stdout.readline())
            admin = info["url"].removesuffix("/v1") + "/admin"
            async with httpx.AsyncClient() as http:
                response = await http.post(admin + "/faults", json={"server_error": 1})
                assert response.json()["server_error"] == 1
                assert (await http.post(admin + "/faults", json={"nonsense": 1})).status_code == 400
                client = TeacherClient(info["model"], api_base=info["url"], backoff_base_s=0.05)
                assert (await client.complete(HELLO)).text == "echo: hello teacher"
                stats = (await http.get(admin + "/stats")).json()
            assert stats["calls"] == 2 and client.totals.retries == 1
        finally:
            process.terminate()
