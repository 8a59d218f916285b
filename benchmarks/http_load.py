"""The HTTP transport under load and under a slow-connection attack, on loopback only.

Starts the real server (`python -m server.main --transport http`) in a subprocess with a fresh
NANODISTILL_HOME and its open-file limit lowered to --open-files (1,024, as `ulimit -n 1024`), then:

- load: --clients concurrent MCP sessions (raw streamable HTTP over httpx, asyncio tasks in this
  process) call `list_datasets` back to back for --duration seconds; every call must succeed.
- attack: --slow half-open connections (part of a request's headers, no token, then a byte every
  2 s; a dropped one reconnects after a pause) for --attack-s seconds, more than the server's file
  limit, while one legitimate session keeps calling `list_datasets`. Its p99 must stay under 1 s.
- after: the attackers leave; the legitimate session and a fresh one must be served normally.

Ends with one JSON line {"benchmark": "http_load", "figures": ..., "goals": ..., "met": ...}; exits 0
whether or not the goals are met (non-zero only if the benchmark itself broke).

    python benchmarks/http_load.py [--clients 200] [--duration 30] [--slow 1100] [--attack-s 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

NAME = "http_load"
GOALS = {"load_errors": 0, "attack_legit_p99_ms": 1000.0, "attack_legit_errors": 0, "after_errors": 0}
REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
CALL_TIMEOUT_S = 10.0
PARTIAL_REQUEST = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Slow: a"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@dataclass
class Calls:
    """Latencies of successful calls (s) and a count of failed ones."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def fail(self, why: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or why

    def figures(self, prefix: str) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else None
        return {
            f"{prefix}_calls": len(ordered),
            f"{prefix}_errors": self.errors,
            f"{prefix}_p50_ms": round(statistics.median(ordered) * 1000, 1) if ordered else None,
            f"{prefix}_p99_ms": round(p99 * 1000, 1) if p99 is not None else None,
            f"{prefix}_first_error": self.first_error,
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def limit_open_files(count: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


@contextmanager
def running_server(home: Path, port: int, open_files: int) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANODISTILL_")}
    env.update(NANODISTILL_HOME=str(home), NANODISTILL_IMPORT_ROOTS=str(home), PYTHONPATH=str(REPO))
    log = (home.parent / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "server.main", "--transport", "http", "--host", HOST, "--port", str(port)],
        env=env,
        cwd=home.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: limit_open_files(open_files),
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError("the server exited: " + (home.parent / "server.log").read_text()[-2000:])
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not listen within 90 s") from None
                time.sleep(0.1)
        yield f"http://{HOST}:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _message(response: httpx.Response, request_id: int) -> dict[str, Any]:
    """The JSON-RPC answer to `request_id`, from a JSON or an SSE body."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                message = json.loads(line[5:])
                if message.get("id") == request_id:
                    return dict(message)
        raise ValueError("no answer in the event stream")
    return dict(response.json())


class Session:
    """One MCP client session over raw streamable HTTP: initialize once, then tools/call."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url
        self.headers = dict(HEADERS)
        self.next_id = 1

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        response = await self.http.post(self.url, json=body, headers=self.headers, timeout=CALL_TIMEOUT_S)
        if response.status_code not in (200, 202):
            raise ValueError(f"HTTP {response.status_code}: {response.text[:200]}")
        return response

    async def open(self) -> None:
        params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": NAME, "version": "0"}}
        response = await self._post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
        answer = _message(response, 0)
        self.headers["mcp-session-id"] = response.headers["mcp-session-id"]
        self.headers["mcp-protocol-version"] = answer["result"]["protocolVersion"]
        await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def list_datasets(self) -> None:
        self.next_id += 1
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call"}
        body["params"] = {"name": "list_datasets", "arguments": {}}
        answer = _message(await self._post(body), self.next_id)
        if "error" in answer or answer["result"].get("isError"):
            raise ValueError(f"tool error: {json.dumps(answer)[:200]}")


async def timed_calls(session: Session, calls: Calls, until: float, gap_s: float = 0.0) -> None:
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            await session.list_datasets()
        except Exception as exc:
            calls.fail(f"{type(exc).__name__}: {exc}"[:300])
        else:
            calls.latencies.append(time.monotonic() - started)
        if gap_s:
            await anyio.sleep(gap_s)


async def load(url: str, clients: int, duration_s: float) -> Calls:
    calls = Calls()
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    async with httpx.AsyncClient(limits=limits) as http:
        sessions = [Session(http, url) for _ in range(clients)]
        async with anyio.create_task_group() as tg:
            for session in sessions:
                tg.start_soon(opened, session, calls)
        until = time.monotonic() + duration_s
        async with anyio.create_task_group() as tg:
            for session in sessions:
                if "mcp-session-id" in session.headers:
                    tg.start_soon(timed_calls, session, calls, until)
    return calls


async def opened(session: Session, calls: Calls) -> None:
    """Open `session`, counting a failure as an error of `calls`."""
    try:
        await session.open()
    except Exception as exc:
        calls.fail(f"initialize: {type(exc).__name__}: {exc}"[:300])


@dataclass
class Attack:
    open_now: int = 0
    peak_open: int = 0
    opened: int = 0
    dropped: int = 0


async def slow_connection(attack: Attack, until: float, port: int, connecting: anyio.Semaphore) -> None:
    """Hold a half-open request until `until`, a byte every 2 s; reconnect when dropped."""
    while time.monotonic() < until:
        try:
            async with connecting:
                stream = await anyio.connect_tcp(HOST, port)
            await stream.send(PARTIAL_REQUEST)
        except OSError:
            await anyio.sleep(0.5)
            continue
        attack.opened += 1
        attack.open_now += 1
        attack.peak_open = max(attack.peak_open, attack.open_now)
        try:
            while time.monotonic() < until:
                with anyio.move_on_after(min(2.0, max(0.01, until - time.monotonic()))):
                    await stream.receive()  # any reply (a 408) or the end means the server dropped us
                    raise anyio.EndOfStream
                await stream.send(b"a")
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            attack.dropped += 1
            await anyio.sleep(0.5)
        finally:
            attack.open_now -= 1
            await stream.aclose()


async def attack_phase(url: str, port: int, slow: int, attack_s: float) -> tuple[Attack, Calls]:
    attack = Attack()
    legit = Calls()
    async with httpx.AsyncClient() as http:
        session = Session(http, url)
        await opened(session, legit)
        until = time.monotonic() + attack_s
        connecting = anyio.Semaphore(100)
        async with anyio.create_task_group() as tg:
            for _ in range(slow):
                tg.start_soon(slow_connection, attack, until, port, connecting)
            tg.start_soon(timed_calls, session, legit, until, 0.05)
    return attack, legit


async def after_phase(url: str, seconds: float) -> Calls:
    calls = Calls()
    async with httpx.AsyncClient() as http:
        for _ in range(2):  # a fresh session each round: the server still accepts and initializes
            session = Session(http, url)
            await opened(session, calls)
            if "mcp-session-id" in session.headers:
                await timed_calls(session, calls, time.monotonic() + seconds / 2, 0.05)
    return calls


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this process holds the attack's sockets
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nd-http-load-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        with running_server(home, port, args.open_files) as url:
            loaded = await load(url, args.clients, args.duration)
            attack, legit = await attack_phase(url, port, args.slow, args.attack_s)
            await anyio.sleep(1.0)  # the server closes its side of the attack
            after = await after_phase(url, args.after_s)
    figures: dict[str, Any] = {
        "server_open_file_limit": args.open_files,
        "clients": args.clients,
        "load_seconds": args.duration,
        **loaded.figures("load"),
        "load_calls_per_s": round(len(loaded.latencies) / args.duration, 1),
        "attack_slow_connections": args.slow,
        "attack_seconds": args.attack_s,
        "attack_peak_open": attack.peak_open,
        "attack_connections_opened": attack.opened,
        "attack_connections_dropped_by_server": attack.dropped,
        **legit.figures("attack_legit"),
        **after.figures("after"),
    }
    met = (
        loaded.errors == 0
        and bool(loaded.latencies)
        and legit.errors == 0
        and figures["attack_legit_p99_ms"] is not None
        and figures["attack_legit_p99_ms"] < GOALS["attack_legit_p99_ms"]
        and after.errors == 0
        and bool(after.latencies)
    )
    return {"benchmark": NAME, "figures": figures, "goals": GOALS, "met": met}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--slow", type=int, default=1100)
    parser.add_argument("--attack-s", type=float, default=20.0)
    parser.add_argument("--after-s", type=float, default=5.0)
    parser.add_argument("--open-files", type=int, default=1024)
    args = parser.parse_args()
    print(json.dumps(anyio.run(main_async, args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
