"""Shared plumbing for tool handlers: the runtime from the context, error translation, and the
argument guard every tool call passes first."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolRequestParams, CallToolResult, TextContent, ToolAnnotations

from nanodistill.data.rows import MAX_ROWS_PER_CALL, MAX_TEXT_CHARS
from nanodistill.errors import NanodistillError
from nanodistill.runtime import runtime_of
from nanodistill.store.disk import readable_disk_errors

P = ParamSpec("P")
T = TypeVar("T")

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
ADDITIVE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
STARTS_JOB = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)


runtime = runtime_of  # the tools' name for it


def _home(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Path:
    """The server's home folder, from the call's MCP context (every tool takes one)."""
    ctx = next(arg for arg in (*args, *kwargs.values()) if isinstance(arg, Context))
    return runtime_of(ctx).settings.home


def engine_errors(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Bad input from the engine reaches the model as a readable ToolError, not a crash; so does a full
    disk or read-only home, which any tool may meet (even get_job writes: it marks dead jobs interrupted)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            with readable_disk_errors(_home(args, kwargs)):
                return await fn(*args, **kwargs)
        except NanodistillError as exc:
            raise ToolError(str(exc)) from exc

    return wrapper


def register_tools(app: MCPServer, tools: list[tuple[Callable[..., Any], str, ToolAnnotations]]) -> None:
    for fn, title, hints in tools:
        app.add_tool(engine_errors(fn), title=title, annotations=hints)


MAX_CHARS = 4096  # names, ids, paths, model references: PATH_MAX on Linux
MAX_ITEMS = 1000
MAX_DEPTH = 16
MAX_INT = 2**63 - 1  # what SQLite stores
NAME_MAX = 255  # bytes in one file name: longer ones fail in the OS with a bare ENAMETOOLONG
# Fields that legitimately carry large text or many rows: example rows, instructions, prompts.
TEXT_FIELDS = frozenset({"examples", "seeds", "training_data", "instruction", "description", "prompt", "prompts"})
ROW_FIELDS = frozenset({"examples", "seeds", "training_data"})
# Rows get twice the row validator's own limits: it names the row and field of a text (or the call of a
# row count) just over them, in its own words.
ROW_TEXT_CHARS = 2 * MAX_TEXT_CHARS
ROW_ITEMS = 2 * MAX_ROWS_PER_CALL
# Fields that may name a file or folder, so each part between slashes must fit a file name.
PATH_FIELDS = frozenset({"path", "source", "model", "base_model", "student", "training_data"})
ECHO_CHARS = 40
_LONG_RUN = re.compile(rf"\S{{{3 * ECHO_CHARS},}}")  # an echo the tool reshaped (resolved, quoted, cut)
ECHOED_VALUES = 64  # the longest argument values looked for in an error; rows are not echoed
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class _Limits:
    chars: int = MAX_CHARS
    items: int = MAX_ITEMS
    path: bool = False


def _text_problem(text: str, where: str, limits: _Limits) -> str | None:
    if "\0" in text:
        return f"'{where}' contains a NUL byte (\\x00); remove it."
    if len(text) > limits.chars:
        return f"'{where}' is {len(text):,} characters long; the limit is {limits.chars:,}. Shorten it."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"'{where}' holds a lone surrogate (\\ud800-\\udfff); send valid Unicode text."
    longest = max((len(part.encode("utf-8")) for part in text.split("/")), default=0)
    if limits.path and longest > NAME_MAX:
        return f"'{where}' has a name {longest:,} bytes long between slashes; file names are at most {NAME_MAX}."
    return None


def _problem(value: Any, where: str, limits: _Limits, depth: int = 0) -> str | None:
    if isinstance(value, str):
        return _text_problem(value, where, limits)
    if isinstance(value, float) and not math.isfinite(value):
        return f"'{where}' is {value}; give a finite number."
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return f"'{where}' is out of range; give a number between {-MAX_INT:,} and {MAX_INT:,}."
    if not isinstance(value, list | dict):
        return None
    if depth >= MAX_DEPTH:
        return f"'{where}' nests more than {MAX_DEPTH} levels deep; flatten it."
    if len(value) > limits.items:
        return f"'{where}' has {len(value):,} items; the limit is {limits.items:,} per call. Split it."
    inner = replace(limits, items=MAX_ITEMS)
    pairs = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in pairs:
        if isinstance(key, str) and (problem := _text_problem(key, f"{where} key", _Limits())):
            return problem
        if problem := _problem(item, f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]", inner, depth + 1):
            return problem
    return None


def argument_problem(arguments: Mapping[str, Any]) -> str | None:
    """What makes these tool arguments unsafe to even validate, as a message naming the field.

    Runs before anything else reads them, so one huge, NUL-laden or deeply nested argument is
    refused in microseconds instead of being parsed, echoed in errors, logged or handed to the OS.
    """
    if len(arguments) > MAX_ITEMS:
        return f"The call has {len(arguments):,} arguments; the limit is {MAX_ITEMS:,}."
    for name, value in arguments.items():
        if problem := _text_problem(name, "argument name", _Limits()):
            return problem
        limits = _Limits(
            chars=ROW_TEXT_CHARS if name in ROW_FIELDS else MAX_TEXT_CHARS if name in TEXT_FIELDS else MAX_CHARS,
            items=ROW_ITEMS if name in ROW_FIELDS else MAX_ITEMS,
            path=name in PATH_FIELDS,
        )
        if problem := _problem(value, name, limits):
            return problem
    return None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = list(value.items()) if isinstance(value, dict) else value if isinstance(value, list) else []
    return [text for item in items for text in _strings(item)]


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[: limit - 300]} ... ({len(text):,} characters in all) ... {text[-250:]}"


def bounded_error(text: str, arguments: Mapping[str, Any]) -> str:
    """An error message that quotes at most a short prefix of any long argument value, and is at
    most MAX_ERROR_CHARS long: errors often echo the bad value, which may be megabytes."""
    text = _cut(text, 50 * MAX_ERROR_CHARS)
    long_values = sorted({v for v in _strings(dict(arguments)) if len(v) > ECHO_CHARS}, key=len, reverse=True)
    for value in long_values[:ECHOED_VALUES]:
        short = f"{value[:ECHO_CHARS]!r}... ({len(value):,} characters)"
        text = text.replace(repr(value), short).replace(value, short)
    text = _LONG_RUN.sub(lambda m: f"{m.group()[:ECHO_CHARS]}... ({len(m.group()):,} characters)", text)
    return _cut(text, MAX_ERROR_CHARS)


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


class ArgumentGuard(Extension):
    """Every tools/call passes here before its arguments are validated: unsafe arguments are
    refused with a readable error, and error results are bounded (see bounded_error)."""

    identifier = "dev.nanodistill/argument-guard"

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        arguments = params.arguments or {}
        if problem := argument_problem(arguments):
            return _error(f"Error executing tool {params.name}: {problem}")
        result = await call_next(ctx)
        if isinstance(result, CallToolResult) and result.is_error:
            text = "\n".join(c.text for c in result.content if isinstance(c, TextContent))
            return _error(bounded_error(text, arguments))
        return result
