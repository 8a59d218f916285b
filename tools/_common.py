"""Shared plumbing for tool handlers: the runtime from the context, and error translation."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

from nanodistill.errors import NanodistillError
from nanodistill.runtime import Runtime

P = ParamSpec("P")
T = TypeVar("T")

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
ADDITIVE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
STARTS_JOB = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)


def runtime(ctx: Context) -> Runtime:
    state = ctx.request_context.lifespan_context
    assert isinstance(state, Runtime)
    return state


def engine_errors(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Bad input from the engine reaches the model as a readable ToolError, not a crash."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except NanodistillError as exc:
            raise ToolError(str(exc)) from exc

    return wrapper


def register_tools(app: MCPServer, tools: list[tuple[Callable[..., Any], str, ToolAnnotations]]) -> None:
    for fn, title, hints in tools:
        app.add_tool(engine_errors(fn), title=title, annotations=hints)
