"""Calling tools the way a client does, with one-line assertions on success or error."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from mcp import Client


async def call(client: Client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; return its structured result."""
    result = await client.call_tool(tool, arguments)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert not result.is_error, f"{tool} failed: {text}"
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, /, **arguments: Any) -> str:
    """Call a tool that must fail with a readable error; return the message."""
    result = await client.call_tool(tool, arguments)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert result.is_error, f"{tool} should have failed but returned {result.structured_content}"
    return text


async def read_json(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


FAST_TRAINING: dict[str, Any] = {
    "num_layers": -1,
    "learning_rate": 3e-4,
    "batch_size": 4,
    "max_seq_length": 128,
    "reasoning": "none",
    "steps_per_eval": 10,
    "save_every": 10,
}
"""train_student options for short, stable runs on the tiny student."""

JobUntil = Callable[[dict[str, Any], list[dict[str, Any]]], bool]


async def wait_job(
    client: Client,
    job_id: str,
    timeout: float = 240.0,
    until: JobUntil | None = None,
    after: int = 0,
    views: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Follow a job with get_job long-polls (wait_s, events_after) until it ends or `until(view, events)`;
    return the last view and the events after `after`. Every view seen is appended to `views` if given."""
    events: list[dict[str, Any]] = []
    cursor = after
    deadline = time.monotonic() + timeout
    while True:
        view = await call(client, "get_job", job_id=job_id, wait_s=10, events_after=cursor)
        if views is not None:
            views.append(view)
        events.extend(view["events"])
        assert view["events_cursor"] >= cursor
        cursor = view["events_cursor"]
        if view["next_poll_s"] is None or (until is not None and until(view, events)):
            return view, events
        assert time.monotonic() < deadline, f"job {job_id} still {view['status']} after {timeout}s: {view}"
