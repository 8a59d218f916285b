"""Stdio serving where every request line gets an answer.

The SDK's stdio transport hands a line it cannot read (a lone surrogate, nesting past the JSON
parser's depth limit, a message without a method) to the session as an exception, which drops it:
the client then waits forever for its reply. Here such a line is answered: with an error carrying
the request's id when the id can be read from the line's top level, else with a JSON-RPC parse
error (id null), as the HTTP transport does.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

# A JSON string (escapes included) or one bracket: enough to skip a nested value without parsing it.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
PARSER_DEPTH_LIMIT = 200  # pydantic's JSON parser refuses this many nested arrays and objects
_DECODER = json.JSONDecoder()


def _skip_nested(line: str, start: int) -> int:
    """Index just past the array or object opening at `start`, however deep it nests."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(line, start):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth == 0:
                return match.end()
    raise ValueError("unterminated array or object")


def _skip_space(line: str, i: int) -> int:
    while line[i : i + 1] in (" ", "\t", "\n", "\r"):
        i += 1
    return i


def top_level_fields(line: str) -> dict[str, Any]:
    """The top-level fields of a JSON object line: scalars decoded, nested values skipped unparsed
    (given as None), so no depth or content below the top level can stop the id being found.

    Raises ValueError when the line is not one JSON object.
    """
    i = _skip_space(line, 0)
    if line[i : i + 1] != "{":
        raise ValueError("not a JSON object")
    fields: dict[str, Any] = {}
    i = _skip_space(line, i + 1)
    if line[i : i + 1] == "}":
        return fields
    while True:
        key, i = _DECODER.raw_decode(line, i)
        i = _skip_space(line, i)
        if not isinstance(key, str) or line[i : i + 1] != ":":
            raise ValueError("expected a key and ':'")
        i = _skip_space(line, i + 1)
        if line[i : i + 1] in ("[", "{"):
            fields[key], i = None, _skip_nested(line, i)
        else:
            fields[key], i = _DECODER.raw_decode(line, i)
        i = _skip_space(line, i)
        if line[i : i + 1] == "}":
            if line[i + 1 :].strip():
                raise ValueError("text after the object")
            return fields
        if line[i : i + 1] != ",":
            raise ValueError("expected ',' or '}'")
        i = _skip_space(line, i + 1)


def _depth(line: str) -> int:
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(line):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def _reason(line: str) -> str:
    """Why a line that is JSON at its top level could still not be read, in words for the client."""
    if _depth(line) >= PARSER_DEPTH_LIMIT:
        return f"it nests {PARSER_DEPTH_LIMIT} or more levels deep; flatten the arguments"
    try:
        json.dumps(json.loads(line), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "a string holds a lone surrogate (\\ud800-\\udfff); send valid Unicode text"
    except ValueError:
        return "its params are not valid JSON"
    return "the server's JSON parser refused it"


def answer_for(exc: Exception) -> JSONRPCError | None:
    """The error reply to a line the transport could not read, or None when no reply is due
    (a notification or a response: JSON-RPC answers neither)."""
    if not isinstance(exc, ValidationError):
        return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=PARSE_ERROR, message="Parse error"))
    raw = exc.errors(include_url=False)[0].get("input")
    if isinstance(raw, dict):
        fields: dict[str, Any] = raw
        bad_json = False
    else:
        try:
            fields = top_level_fields(raw if isinstance(raw, str) else "")
        except (ValueError, RecursionError):
            return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=PARSE_ERROR, message="Parse error"))
        bad_json = True
    if "id" not in fields or "result" in fields or "error" in fields:
        return None
    request_id = fields["id"]
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        error = ErrorData(code=INVALID_REQUEST, message="Invalid request: 'id' must be a string or an integer")
        return JSONRPCError(jsonrpc="2.0", id=None, error=error)
    if not isinstance(fields.get("method"), str):
        error = ErrorData(code=INVALID_REQUEST, message="Invalid request: a request needs a 'method' string")
    elif bad_json:
        message = f"Invalid params: the request could not be read: {_reason(raw)}"
        error = ErrorData(code=INVALID_PARAMS, message=message)
    else:
        error = ErrorData(code=INVALID_REQUEST, message="Invalid request: not a JSON-RPC 2.0 message")
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=error)


async def _answer_unreadable(
    source: ReadStream[SessionMessage | Exception],
    sink: anyio.abc.ObjectSendStream[SessionMessage | Exception],
    replies: WriteStream[SessionMessage],
) -> None:
    async with source, sink:
        async for item in source:
            if not isinstance(item, Exception):
                await sink.send(item)
            elif (reply := answer_for(item)) is not None:
                await replies.send(SessionMessage(reply))


async def serve_stdio(app: MCPServer) -> None:
    """`app.run("stdio")`, answering every request line the transport cannot read."""
    lowlevel = app._lowlevel_server  # the SDK runs stdio through it too (MCPServer.run_stdio_async)
    async with stdio_server() as (read_stream, write_stream):
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_answer_unreadable, read_stream, send, write_stream)
            await lowlevel.run(receive, write_stream, lowlevel.create_initialization_options())
            tg.cancel_scope.cancel()
