"""The MCP side of a request's allowed folders: the roots a local client declares.

A tool that touches user paths takes `roots: ClientRoots = None`. The SDK fills it before the tool
runs (it is not in the tool's input schema, so no client can pass it as an argument): with the
client's `roots/list` answer when the client declares the roots capability and is local, else None.
Over HTTP the client is remote and is never asked: it must not widen its own reach.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from mcp.server.mcpserver import Context, ListRoots, Resolve
from mcp_types import ListRootsResult

from nanodistill.reach import allowed_folders
from nanodistill.settings import Settings
from tools._common import runtime


def is_remote(ctx: Context) -> bool:
    """HTTP transports (streamable HTTP, SSE) attach the HTTP request; stdio and in-process ones do not."""
    return ctx.request_context.request is not None


def _ask_roots(ctx: Context) -> ListRoots | None:
    capabilities = ctx.client_capabilities
    if is_remote(ctx) or capabilities is None or capabilities.roots is None:
        return None
    return ListRoots()


ClientRoots = Annotated[ListRootsResult | None, Resolve(_ask_roots)]


def request_settings(ctx: Context, roots: ListRootsResult | None) -> Settings:
    """The server's settings with `import_roots` set to the folders this request may touch, as the
    plans and loaders read them."""
    settings = runtime(ctx).settings
    declared = [str(root.uri) for root in roots.roots] if roots is not None else None
    return replace(settings, import_roots=allowed_folders(settings, declared, remote=is_remote(ctx)))
