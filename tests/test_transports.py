"""The server as hosts run it: `nanodistill-mcp` over stdio and over streamable HTTP, as real processes."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.mcp_helpers import call, read_json

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("litellm", "mlx", "mlx_lm", "transformers", "torch")
DATASET_TOOLS = {"create_dataset", "add_examples", "list_datasets", "get_dataset", "delete_dataset", "export_dataset"}
SEEDS = [{"input": f"question {i}", "output": f"answer {i}"} for i in range(12)]


def server_command() -> list[str]:
    """The installed console script, as a host config names it; `python -m server.main` if it is missing."""
    script = Path(sys.executable).parent / "nanodistill-mcp"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "server.main"]


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANODISTILL_")}
    env.update(NANODISTILL_HOME=str(tmp_path / "home"), NANODISTILL_IMPORT_ROOTS=str(tmp_path), **extra)
    return env


# --- stdio ----------------------------------------------------------------------------------------


async def test_stdio_as_claude_desktop_runs_it(tmp_path: Path) -> None:
    command = server_command()
    params = StdioServerParameters(
        command=command[0],
        args=command[1:],
        env={"NANODISTILL_HOME": str(tmp_path / "home"), "NANODISTILL_IMPORT_ROOTS": str(tmp_path)},
        cwd=str(tmp_path),
    )
    started = time.perf_counter()
    async with Client(params, read_timeout_seconds=60) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        ready = time.perf_counter() - started
        print(f"\nstdio: process start -> initialize + tools/list answered in {ready * 1000:.0f} ms")
        assert tools >= DATASET_TOOLS

        created = await call(client, "create_dataset", name="stdio-set", examples=SEEDS, instruction="Answer.")
        assert (created["added"], created["held_out"]) == (12, 2)
        detail = await read_json(client, "nanodistill://datasets/stdio-set")
        assert detail["dataset"]["examples"] == 12
        page = await read_json(client, "nanodistill://datasets/stdio-set/examples?offset=10&limit=5")
        assert [e["input"] for e in page["examples"]] == ["question 10", "question 11"]
        target = tmp_path / "export.jsonl"
        exported = await call(client, "export_dataset", dataset="stdio-set", format="chat", path=str(target))
        assert exported["rows"] == 10  # the 2 held-out seeds never go into a training export
        rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
        first = rows[0]["messages"]
        assert first[0] == {"role": "system", "content": "Answer."}
        assert first[2]["content"] == first[1]["content"].replace("question", "answer")
        assert (await client.call_tool("get_dataset", {"dataset": "missing"})).is_error
    assert (tmp_path / "home" / "nanodistill.db").is_file()


def test_serving_datasets_never_imports_heavy_modules(tmp_path: Path) -> None:
    """The server process must answer tools/list and dataset calls without litellm or MLX loaded.

    A test cannot see a server process's sys.modules, so the same server runs in a fresh
    interpreter (in-process client) that prints what it imported.
    """
    script = textwrap.dedent(
        """
        import sys, anyio
        from mcp import Client
        import server.app

        async def main():
            async with Client(server.app.build_server()) as client:
                await client.list_tools()
                await client.list_resource_templates()
                rows = [{"input": f"q{i}", "output": "a"} for i in range(12)]
                assert not (await client.call_tool("create_dataset", {"name": "d", "examples": rows})).is_error
                assert not (await client.call_tool("get_dataset", {"dataset": "d"})).is_error
                assert not (await client.call_tool("export_dataset", {"dataset": "d", "format": "chat"})).is_error
                await client.read_resource("nanodistill://datasets/d/examples?limit=3")

        anyio.run(main)
        print(sorted(m for m in sys.modules if m.split(".")[0] in HEAVY))
        """
    ).replace("HEAVY", repr(HEAVY))
    done = subprocess.run(
        [sys.executable, "-c", script], env=server_env(tmp_path), cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


# --- streamable HTTP ------------------------------------------------------------------------------


def limit_open_files(count: int) -> None:
    """In a child before exec: lower its soft open-file limit, as `ulimit -n` would."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def http_server(
    tmp_path: Path,
    *,
    open_files: int | None = None,
    cwd: Path | str | None = None,
    environment: dict[str, str] | None = None,
    **env: str,
) -> Iterator[str]:
    """Run `nanodistill-mcp --transport http` on a free loopback port (in `cwd`, default tmp_path; with
    `environment`, default server_env plus `env`), with at most `open_files` descriptors if given; yield
    its /mcp URL."""
    port = free_port()
    log = (tmp_path / f"http-{port}.log").open("w")
    process = subprocess.Popen(
        [*server_command(), "--transport", "http", "--port", str(port)],
        env=environment if environment is not None else server_env(tmp_path, **env),
        cwd=cwd if cwd is not None else tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=None if open_files is None else lambda: limit_open_files(open_files),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / f"http-{port}.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the HTTP server did not start listening within 60 s"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-httpx", "version": "0"},
    },
}


def post_initialize(url: str, **headers: str) -> httpx.Response:
    base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    return httpx.post(url, json=INITIALIZE, headers={**base, **headers}, timeout=15)


async def test_http_on_loopback(tmp_path: Path) -> None:
    with http_server(tmp_path) as url:
        async with Client(url) as client:
            assert {t.name for t in (await client.list_tools()).tools} >= DATASET_TOOLS
            created = await call(client, "create_dataset", name="over-http", examples=SEEDS)
            assert created["added"] == 12
            listed = await call(client, "list_datasets")
            assert [d["name"] for d in listed["datasets"]] == ["over-http"]
            assert (await read_json(client, "nanodistill://datasets/over-http"))["dataset"]["examples"] == 12

        # The same raw request passes with the server's own Host and fails with a foreign one.
        assert post_initialize(url).status_code == 200
        rebinding = post_initialize(url, Host="evil.example")
        assert 400 <= rebinding.status_code < 500
        assert rebinding.status_code == 421
        foreign_port = post_initialize(url, Host="127.0.0.1:1")
        assert 400 <= foreign_port.status_code < 500
        foreign_origin = post_initialize(url, Origin="http://evil.example")
        assert foreign_origin.status_code == 403


async def test_http_with_a_token(tmp_path: Path) -> None:
    token = "s3cret-token-for-tests"
    with http_server(tmp_path, NANODISTILL_TOKEN=token) as url:
        assert post_initialize(url).status_code == 401
        assert post_initialize(url, Authorization="Bearer wrong").status_code == 401
        assert post_initialize(url, Authorization=token).status_code == 401
        assert httpx.get(url, timeout=15).status_code == 401
        assert post_initialize(url, Authorization=f"Bearer {token}").status_code == 200
        # The token does not switch off DNS-rebinding protection.
        assert post_initialize(url, Authorization=f"Bearer {token}", Host="evil.example").status_code == 421

        http_client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with Client(streamable_http_client(url, http_client=http_client)) as client:
            assert {t.name for t in (await client.list_tools()).tools} >= DATASET_TOOLS
            assert (await call(client, "create_dataset", name="with-token", examples=SEEDS))["added"] == 12
            assert (await call(client, "get_dataset", dataset="with-token"))["dataset"]["examples"] == 12

        with pytest.raises(BaseException) as refused:
            async with Client(url) as anonymous:
                await anonymous.list_tools()
        assert any(isinstance(e, MCPError) for e in leaves(refused.value)), repr(refused.value)


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def test_http_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        done = subprocess.run(
            [*server_command(), "--transport", "http", "--host", host, "--port", str(free_port())],
            env=server_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0, host
        assert "NANODISTILL_TOKEN" in done.stderr, done.stderr
        assert host in done.stderr
