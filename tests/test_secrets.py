"""API keys go only where the operator allows: the stand-in teacher plays the attacker's endpoint and
records every header it receives, so these tests assert on what actually left the server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from nanodistill.errors import NanodistillError
from nanodistill.teacher.check import check_teacher
from nanodistill.teacher.client import TeacherClient
from nanodistill.teacher.keys import PLACEHOLDER_KEY
from nanodistill.testing import toy_sentiment
from nanodistill.testing.teacher_server import TeacherServer
from tests.mcp_helpers import call, call_error
from tests.test_transports import http_server

pytestmark = pytest.mark.anyio

SECRET = "aws-secret-0123456789abcdef-DO-NOT-SEND"
PROVIDER_SECRET = "sk-provider-0123456789abcdef-DO-NOT-SEND"
HELLO = [{"role": "user", "content": "hello teacher"}]
SEEDS = [{"input": text, "output": label} for text, label in toy_sentiment.SEEDS]


@pytest.fixture(autouse=True)
def operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server environment holding keys it must never send to a client's URL, and no allow-lists."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(name, PROVIDER_SECRET)
    monkeypatch.delenv("NANODISTILL_KEY_ENVS", raising=False)
    monkeypatch.delenv("NANODISTILL_API_BASES", raising=False)


def leaked(server: TeacherServer, *secrets: str) -> list[str]:
    """The requests (method and path) that carried any of `secrets`."""
    return [f"{r.method} {r.path}" for r in server.requests if any(r.carries(s) for s in secrets)]


def authorizations(server: TeacherServer) -> set[str]:
    return {r.headers["authorization"] for r in server.requests if "authorization" in r.headers}


async def dry_run_args(client: Client, server: TeacherServer, **args: Any) -> dict[str, Any]:
    await call(client, "create_dataset", name="reviews", examples=SEEDS, instruction=toy_sentiment.INSTRUCTION)
    return {"dataset": "reviews", "teacher": server.model, "api_base": server.url, "dry_run": True, **args}


# -- through the MCP tool, as a client would try it -----------------------------------------------------


async def test_a_client_cannot_send_any_variable_to_its_own_url(client: Client, server: TeacherServer) -> None:
    args = await dry_run_args(client, server, api_key_env="AWS_SECRET_ACCESS_KEY")
    message = await call_error(client, "amplify_dataset", **args)
    assert "NANODISTILL_KEY_ENVS" in message and "api_key_env" in message
    assert SECRET not in message
    assert leaked(server, SECRET) == []
    assert not any(r.path.endswith("/chat/completions") for r in server.requests)


async def test_the_error_does_not_tell_whether_a_variable_is_set(
    client: Client, server: TeacherServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = await dry_run_args(client, server, api_key_env="AWS_SECRET_ACCESS_KEY")
    when_set = await call_error(client, "amplify_dataset", **args)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    when_unset = await call_error(client, "amplify_dataset", **args)
    assert when_set == when_unset


async def test_a_provider_key_never_goes_to_a_custom_base(client: Client, server: TeacherServer) -> None:
    """Without api_key_env, an OpenAI-compatible URL the operator did not allow gets a placeholder."""
    args = await dry_run_args(client, server)
    quoted = await call(client, "amplify_dataset", **args)
    assert quoted["quote"]["sample_calls"] == 6  # the dry run: one trace alone, three at once, two more
    assert leaked(server, PROVIDER_SECRET, SECRET) == []
    assert authorizations(server) == {f"Bearer {PLACEHOLDER_KEY}"}


async def test_a_named_provider_key_needs_the_operator_to_allow_the_base(client: Client, server: TeacherServer) -> None:
    args = await dry_run_args(client, server, api_key_env="OPENAI_API_KEY")
    message = await call_error(client, "amplify_dataset", **args)
    assert "NANODISTILL_API_BASES" in message and server.url in message
    assert leaked(server, PROVIDER_SECRET) == []


@pytest.mark.parametrize("teacher", ["anthropic/claude-3-5-haiku-latest", "gemini/gemini-2.0-flash"])
async def test_other_providers_keep_their_keys_from_a_custom_base(
    client: Client, server: TeacherServer, teacher: str
) -> None:
    args = await dry_run_args(client, server, teacher=teacher)
    await client.call_tool("amplify_dataset", args)  # the stand-in speaks only OpenAI: the outcome does not matter
    assert leaked(server, PROVIDER_SECRET, SECRET) == []


async def test_the_operator_can_allow_a_variable_and_a_base(
    client: Client, server: TeacherServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_TEACHER_KEY", SECRET)
    monkeypatch.setenv("NANODISTILL_KEY_ENVS", "OTHER_KEY,TEAM_TEACHER_KEY")
    monkeypatch.setenv("NANODISTILL_API_BASES", server.url.removesuffix("/v1") + "/")
    args = await dry_run_args(client, server, api_key_env="TEAM_TEACHER_KEY")
    await call(client, "amplify_dataset", **args)
    assert authorizations(server) == {f"Bearer {SECRET}"}


# -- the rules themselves, through check_teacher and the teacher client ---------------------------------


def test_names_outside_the_allow_list_are_refused_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    messages = set()
    for name in ("AWS_SECRET_ACCESS_KEY", "SURELY_UNSET_VARIABLE_4711", "PATH"):
        with pytest.raises(NanodistillError) as caught:
            check_teacher("openai/gpt-4o-mini", None, name)
        messages.add(str(caught.value).replace(name, "NAME"))
    assert len(messages) == 1, messages
    assert "NANODISTILL_KEY_ENVS" in messages.pop()


def test_provider_defaults_and_operator_names_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    check_teacher("openai/gpt-4o-mini", None, "OPENAI_API_KEY")
    monkeypatch.setenv("TEAM_KEY", "value")
    monkeypatch.setenv("NANODISTILL_KEY_ENVS", f"A_KEY{os.pathsep}TEAM_KEY")
    check_teacher("openai/gpt-4o-mini", None, "TEAM_KEY")


@pytest.mark.parametrize(
    "allowed",
    [
        "http://127.0.0.1:{port}",
        "http://127.0.0.1:{port}/v1",
        "http://LOCALHOST:{port}/,http://127.0.0.1:{port}/v1/",
    ],
)
def test_allowed_bases_match_whole_origins_and_path_segments(
    monkeypatch: pytest.MonkeyPatch, server: TeacherServer, allowed: str
) -> None:
    monkeypatch.setenv("NANODISTILL_API_BASES", allowed.format(port=server.port))
    check_teacher(server.model, server.url, "OPENAI_API_KEY")
    for elsewhere in (
        f"http://127.0.0.1:{server.port + 1}/v1",
        f"https://127.0.0.1:{server.port}/v1",
        f"http://127.0.0.1:{server.port}@evil.example/v1",
        f"http://127.0.0.1.evil.example:{server.port}/v1",
    ):
        with pytest.raises(NanodistillError, match="NANODISTILL_API_BASES"):
            check_teacher(server.model, elsewhere, "OPENAI_API_KEY")


def test_an_allowed_path_covers_whole_segments_only(monkeypatch: pytest.MonkeyPatch, server: TeacherServer) -> None:
    monkeypatch.setenv("NANODISTILL_API_BASES", server.url)
    check_teacher(server.model, server.url + "/", "OPENAI_API_KEY")
    for elsewhere in (server.url + "0", server.url.removesuffix("/v1") + "/v2"):
        with pytest.raises(NanodistillError, match="NANODISTILL_API_BASES"):
            check_teacher(server.model, elsewhere, "OPENAI_API_KEY")


def test_providers_with_ambient_credentials_use_only_allowed_bases(server: TeacherServer) -> None:
    with pytest.raises(NanodistillError, match="NANODISTILL_API_BASES"):
        check_teacher("vertex_ai/gemini-1.5-pro", server.url, None)


async def test_the_client_sends_no_unlisted_key_and_no_provider_key(server: TeacherServer) -> None:
    with pytest.raises(NanodistillError, match="NANODISTILL_KEY_ENVS"):
        await TeacherClient(server.model, api_base=server.url, api_key_env="AWS_SECRET_ACCESS_KEY").complete(HELLO)
    with pytest.raises(NanodistillError, match="NANODISTILL_API_BASES"):
        await TeacherClient(server.model, api_base=server.url, api_key_env="OPENAI_API_KEY").complete(HELLO)
    reply = await TeacherClient(server.model, api_base=server.url).complete(HELLO)
    assert reply.text == "echo: hello teacher"
    assert leaked(server, PROVIDER_SECRET, SECRET) == []
    assert authorizations(server) == {f"Bearer {PLACEHOLDER_KEY}"}


async def test_the_client_sends_an_allowed_key_to_an_allowed_base(
    server: TeacherServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NANODISTILL_API_BASES", server.url)
    reply = await TeacherClient(server.model, api_base=server.url, api_key_env="OPENAI_API_KEY").complete(HELLO)
    assert reply.text == "echo: hello teacher"
    assert authorizations(server) == {f"Bearer {PROVIDER_SECRET}"}


async def test_over_http_with_a_token_the_same_rules_hold(tmp_path: Path, server: TeacherServer) -> None:
    token = "s3cret-token-for-tests"
    with http_server(tmp_path, NANODISTILL_TOKEN=token) as url:
        http_client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with Client(streamable_http_client(url, http_client=http_client)) as remote:
            args = await dry_run_args(remote, server, api_key_env="AWS_SECRET_ACCESS_KEY")
            message = await call_error(remote, "amplify_dataset", **args)
            assert "NANODISTILL_KEY_ENVS" in message
            del args["api_key_env"]
            await call(remote, "amplify_dataset", **args)
    assert leaked(server, PROVIDER_SECRET, SECRET) == []
    assert authorizations(server) == {f"Bearer {PLACEHOLDER_KEY}"}
