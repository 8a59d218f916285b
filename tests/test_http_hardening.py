"""The HTTP transport against slow and oddly-cased clients: a real server process on loopback.

Slow clients open connections and send part of a request's headers, never the rest. The server must
keep answering a legitimate client meanwhile, and drop the slow connections (after the header
timeout, or sooner when they crowd the open-file limit). Assertions are on outcomes; the waits are
only upper bounds.
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import pytest
from mcp import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from tests.mcp_helpers import call
from tests.test_transports import http_server, post_initialize

pytestmark = pytest.mark.anyio

PARTIAL_REQUEST = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Slow: "
DROP_WITHIN_S = 30.0
ANSWER_WITHIN_S = 30.0


@contextmanager
def slow_connections(url: str, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections that each sent part of a request's headers and then went quiet."""
    parts = urlsplit(url)
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
            sock.sendall(PARTIAL_REQUEST)
            opened.append(sock)
        yield opened
    finally:
        for sock in opened:
            sock.close()


def dropped(sock: socket.socket, deadline: float) -> bool:
    """Whether the server ends this connection (EOF, a reset, or a reply then EOF) before `deadline`."""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            if sock.recv(4096) == b"":
                return True
        except ConnectionError:
            return True
        except TimeoutError:
            return False
    return False


async def answers(url: str) -> None:
    """A legitimate client is served (a server that cannot accept it fails the bound, not the suite)."""
    with anyio.fail_after(ANSWER_WITHIN_S):
        async with Client(url) as client:
            assert (await call(client, "list_datasets"))["datasets"] == []


async def test_slow_headers_are_dropped_after_the_header_timeout_while_others_are_served(tmp_path: Path) -> None:
    with http_server(tmp_path, NANODISTILL_HTTP_HEADER_TIMEOUT="1") as url:
        with slow_connections(url, 50) as slow:
            await answers(url)
            deadline = time.monotonic() + DROP_WITHIN_S
            assert all(dropped(sock, deadline) for sock in slow)
        await answers(url)


async def test_a_crowd_of_slow_connections_cannot_use_up_the_open_files(tmp_path: Path) -> None:
    """Under `ulimit -n 1024`, 1,100 half-open connections would exhaust the server's descriptors; the
    cap closes the oldest instead, and a legitimate client is still served."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1300:
        pytest.skip(f"this test holds 1,100 sockets; the hard open-file limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1300), hard))
    try:
        with http_server(tmp_path, open_files=1024) as url:
            await answers(url)
            with slow_connections(url, 1100) as slow:
                await answers(url)
                deadline = time.monotonic() + DROP_WITHIN_S
                assert dropped(slow[0], deadline)
            await answers(url)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_the_bearer_scheme_is_case_insensitive(tmp_path: Path) -> None:
    token = "s3cret-token-for-tests"
    with http_server(tmp_path, NANODISTILL_TOKEN=token) as url:
        for scheme in ("Bearer", "bearer", "BEARER"):
            assert post_initialize(url, Authorization=f"{scheme} {token}").status_code == 200, scheme
        assert post_initialize(url, Authorization="bearer wrong").status_code == 401
        assert post_initialize(url, Authorization=f"Basic {token}").status_code == 401
        http_client = create_mcp_http_client(headers={"Authorization": f"bearer {token}"})
        async with Client(streamable_http_client(url, http_client=http_client)) as client:
            assert (await call(client, "list_datasets"))["datasets"] == []


async def test_host_names_are_case_insensitive(tmp_path: Path) -> None:
    with http_server(tmp_path) as url:
        port = urlsplit(url).port
        assert post_initialize(url, Host=f"LOCALHOST:{port}").status_code == 200
        assert post_initialize(url, Host=f"LocalHost:{port}", Origin=f"http://LOCALHOST:{port}").status_code == 200
        assert post_initialize(url, Host="EVIL.example").status_code == 421
        assert post_initialize(url, Origin="http://EVIL.example").status_code == 403
