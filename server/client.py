"""The terminal's way in: the same MCP tools, called through an in-process client session.

The CLI and the demo go through the tools rather than around them, so validation, errors and
results are exactly what an assistant sees.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import Client
from mcp_types import ListRootsResult, Root
from pydantic import FileUrl

TERMINAL = ("succeeded", "failed", "cancelled", "interrupted")


class ToolFailed(Exception):
    """A tool answered with an error; the message is the tool's own."""


@asynccontextmanager
async def session() -> AsyncIterator[Client]:
    from server.app import build_server

    app = build_server()
    # The server logs each tool error at INFO; here the caller prints it, so it would show twice.
    logging.getLogger("mcp").setLevel(logging.WARNING)
    async with Client(app, list_roots_callback=_terminal_roots) as client:
        yield client


async def _terminal_roots(context: Any) -> ListRootsResult:
    """A person at a terminal may name files where they stand: the working directory, with the folders
    the server allows anyway (the operator's or the user's home), declared as this client's roots."""
    from nanodistill.settings import load_settings

    folders = dict.fromkeys([Path.cwd().resolve(), *load_settings().import_roots])
    return ListRootsResult(
        roots=[Root(uri=FileUrl(folder.as_uri()), name=folder.name or str(folder)) for folder in folders]
    )


async def call(client: Client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, {k: v for k, v in arguments.items() if v is not None})
    text = " ".join(getattr(part, "text", "") for part in result.content)
    if result.is_error:
        raise ToolFailed(text.removeprefix(f"Error executing tool {tool}: "))
    return result.structured_content or json.loads(text or "{}")


def progress_line(job: dict[str, Any], width: int = 30) -> str:
    fraction = job["progress"]["fraction"] or 0.0
    filled = round(fraction * width)
    bar = "#" * filled + "." * (width - filled)
    stage = job.get("stage") or job["status"]
    cost = f"  ${job['cost_usd']:.4f}" if job.get("cost_usd") else ""
    return f"[{bar}] {fraction * 100:5.1f}%  {job['kind']} {job['status']}: {stage}{cost}"


async def follow(client: Client, job_id: str, *, quiet: bool = False) -> dict[str, Any]:
    """Follow a job to its end with a live progress bar and its events; return the final record."""
    cursor = 0
    live = sys.stderr.isatty() and not quiet
    started = time.monotonic()
    while True:
        job = await call(client, "get_job", job_id=job_id, wait_s=5, events_after=cursor)
        cursor = job["events_cursor"]
        if not quiet:
            for event in job["events"]:
                if event["level"] in ("warning", "error") or event["level"] == "info":
                    prefix = "\r\033[K" if live else ""
                    print(f"{prefix}  {time.monotonic() - started:6.1f}s  {event['message']}", file=sys.stderr)
            if live:
                print("\r\033[K" + progress_line(job), end="", file=sys.stderr, flush=True)
        if job["status"] in TERMINAL:
            if live:
                print(file=sys.stderr)
            return job
