"""Fuzzing every tool of a real `python -m server.main` stdio process, shared by tests/test_fuzz.py
(a bounded run) and benchmarks/fuzz.py (the soak).

Arguments come from each tool's own inputSchema (hypothesis-jsonschema) and from around it: one
field at a time swapped for a hostile value (NUL bytes, lone surrogates, huge strings and lists,
NaN, deep nesting, other objects' ids). The client speaks raw JSON-RPC lines, since the SDK client
refuses to send some of what a hostile one does (a lone surrogate). Each call must answer within
CALL_TIMEOUT_S with a result or a readable error; the server must answer a ping after each batch.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis_jsonschema import from_schema

CALL_TIMEOUT_S = 5.0
REPO = Path(__file__).absolute().parents[2]
SEEDS = [{"input": f"question {i}", "output": f"answer {i}"} for i in range(12)]
BARE = re.compile(r"^Error executing tool \w+\s*$")
MAX_ERROR_CHARS = 4000  # an error quoting a whole huge argument back is a defect too


def hostile_values(ids: list[str]) -> list[Any]:
    """Values that broke, or could break, a server that trusts its arguments."""
    deep: Any = 1
    for _ in range(60):
        deep = [deep]
    return [
        "",
        " ",
        "\0",
        "a\0b",
        "\ud800",
        "x\udfffy",
        "x" * 5000,
        "y" * 300_000,
        "../../../../etc/passwd",
        "/etc/shadow",
        "/",
        "n" * 300,
        "nanodistill://datasets/fz",
        "\u202e\ufeff\u200b",
        -1,
        0,
        2**63,
        -(10**30),
        1e308,
        math.nan,
        math.inf,
        True,
        None,
        [],
        {},
        deep,
        [1] * 2000,
        ["p"] * 70,
        {"a" * 5000: 1},
        {"input": "\0", "output": "x"},
        [{"input": "q", "output": "\ud800"}],
        *ids,
    ]


@dataclass
class Counts:
    calls: int = 0
    results: int = 0
    readable_errors: int = 0
    bad_errors: int = 0
    max_latency_s: float = 0.0
    pings_ok: int = 0
    bad: list[str] = field(default_factory=list)

    def record(self, tool: str, arguments: dict[str, Any], outcome: str, detail: str, latency_s: float) -> None:
        self.calls += 1
        self.max_latency_s = max(self.max_latency_s, latency_s)
        if outcome == "result":
            self.results += 1
        elif outcome == "readable":
            self.readable_errors += 1
        else:
            self.bad_errors += 1
            shown = json.dumps(arguments, default=str)[:300]
            self.bad.append(f"{tool}({shown}): {outcome}: {detail[:300]}")


def _dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode("utf-8", "surrogatepass") + b"\n"


class StdioServer:
    """A server process spoken to in JSON-RPC lines, one request at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.next_id = 0

    async def request(self, method: str, params: dict[str, Any] | None = None, timeout: float = CALL_TIMEOUT_S) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        self.process.stdin.write(_dumps(message))
        await self.process.stdin.drain()
        async with asyncio.timeout(timeout):
            while True:
                reply = json.loads(await self.process.stdout.readline() or b"null")
                if reply is None:
                    raise ConnectionError("the server closed stdout")
                if reply.get("id") == self.next_id:
                    return reply

    async def notify(self, method: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(_dumps({"jsonrpc": "2.0", "method": method}))
        await self.process.stdin.drain()


async def start_server(home: Path) -> StdioServer:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANODISTILL_") and not k.endswith("_API_KEY")}
    env.update(NANODISTILL_HOME=str(home), NANODISTILL_IMPORT_ROOTS=str(home.parent), NANODISTILL_FAST_BLAS="0")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.main",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        cwd=str(REPO),
        limit=64 * 1024 * 1024,
    )
    server = StdioServer(process)
    init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}}
    await server.request("initialize", init, timeout=120)
    await server.notify("notifications/initialized")
    return server


def schema_cases(schema: dict[str, Any], count: int, seed: int) -> list[dict[str, Any]]:
    """`count` argument sets drawn from a tool's inputSchema (fewer when the schema is too tight)."""
    cases: list[dict[str, Any]] = []
    try:
        strategy = from_schema(schema)
    except Exception:  # a schema feature hypothesis-jsonschema does not cover: mutations only
        return cases

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(arguments: dict[str, Any]) -> None:
        cases.append(arguments)

    collect()
    return cases


def mutate(case: dict[str, Any], schema: dict[str, Any], hostile: list[Any], rng: random.Random) -> dict[str, Any]:
    """The case with one field (an existing one, or a new one) swapped for a hostile value."""
    names = [*schema.get("properties", {}), "unknown_field"]
    return {**case, rng.choice(names): rng.choice(hostile)}


def classify(reply: dict[str, Any]) -> tuple[str, str]:
    if "error" in reply:
        error = reply["error"]
        readable = error.get("code") != -32603 and "internal error" not in str(error.get("message", "")).lower()
        return ("readable" if readable else "internal error"), str(error)
    result = reply.get("result") or {}
    text = " ".join(str(c.get("text", "")) for c in result.get("content", []))
    if not result.get("isError"):
        return "result", ""
    if BARE.match(text) or "internal error" in text.lower() or not text.strip():
        return "bare error", text
    if len(text) > MAX_ERROR_CHARS:
        return "oversized error", f"{len(text):,} characters: {text[:200]}"
    return "readable", text


async def _call(server: StdioServer, counts: Counts, tool: str, arguments: dict[str, Any]) -> None:
    started = time.perf_counter()
    try:
        reply = await server.request("tools/call", {"name": tool, "arguments": arguments})
        outcome, detail = classify(reply)
    except TimeoutError:
        outcome, detail = "timeout", f"no answer within {CALL_TIMEOUT_S} s"
    counts.record(tool, arguments, outcome, detail, time.perf_counter() - started)


async def _ids(server: StdioServer) -> list[str]:
    """Names and ids of objects in this home, for fields that name another object."""
    found = ["fz"]
    for tool, key in (("list_jobs", "jobs"), ("list_models", "models")):
        reply = await server.request("tools/call", {"name": tool, "arguments": {}})
        for item in (reply.get("result", {}).get("structuredContent") or {}).get(key, []):
            found += [str(v) for k, v in item.items() if k in ("id", "job_id", "name") and v]
    return found


async def run_fuzz(home: Path, per_tool: int, seed: int = 0) -> Counts:
    """Fuzz every tool `per_tool` times (half schema-drawn, half mutated); the server is stopped on
    return, so the caller can check the database."""
    rng = random.Random(seed)
    counts = Counts()
    server = await start_server(home)
    try:
        tools = (await server.request("tools/list", {}, timeout=60))["result"]["tools"]
        created = {"name": "fz", "examples": SEEDS, "instruction": "Answer."}
        await server.request("tools/call", {"name": "create_dataset", "arguments": created}, timeout=60)
        for round_no, tool in enumerate(sorted(tools, key=lambda t: t["name"])):
            schema = tool["inputSchema"]
            hostile = hostile_values(await _ids(server))
            drawn = schema_cases(schema, max(per_tool // 2, 1), seed + round_no) or [{}]
            cases = drawn + [mutate(rng.choice(drawn), schema, hostile, rng) for _ in range(per_tool - len(drawn))]
            for arguments in cases:
                await _call(server, counts, tool["name"], arguments)
            await server.request("ping")
            counts.pings_ok += 1
        await _cancel_jobs(server)
    finally:
        server.process.kill()
        await server.process.wait()
    return counts


async def _cancel_jobs(server: StdioServer) -> None:
    """Jobs the fuzz started with arguments good enough to run are stopped, not left to compute."""
    reply = await server.request("tools/call", {"name": "list_jobs", "arguments": {"limit": 100}})
    for job in (reply.get("result", {}).get("structuredContent") or {}).get("jobs", []):
        if job.get("status") in ("queued", "running"):
            await server.request("tools/call", {"name": "cancel_job", "arguments": {"job_id": job.get("id", "")}})
