"""Dataset resources: a dataset's summary, and its examples a page at a time."""

from __future__ import annotations

import json

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError

from nanodistill.errors import NanodistillError
from nanodistill.runtime import runtime_of
from nanodistill.store import datasets as ds
from nanodistill.views import dataset_detail, example_row


async def dataset_resource(name: str, ctx: Context) -> str:
    try:
        return (await dataset_detail(runtime_of(ctx).store, name, 5)).model_dump_json(indent=2)
    except (NanodistillError, ToolError) as exc:
        raise ResourceError(str(exc)) from exc


async def examples_resource(name: str, ctx: Context, offset: int = 0, limit: int = 50) -> str:
    if offset < 0 or not 1 <= limit <= 1000:
        raise ResourceError("offset must be >= 0 and limit between 1 and 1000.")
    rt = runtime_of(ctx)
    try:
        found = await ds.get_dataset(rt.store, name)
    except NanodistillError as exc:
        raise ResourceError(str(exc)) from exc
    rows = await ds.page_examples(rt.store, found.id, offset, limit)
    body = [example_row(e).model_dump() for e in rows]
    return json.dumps({"dataset": name, "offset": offset, "limit": limit, "examples": body}, ensure_ascii=False)


def register(app: MCPServer) -> None:
    app.resource(
        "nanodistill://datasets/{name}",
        title="Dataset",
        description="A dataset's counts, stats and sample rows.",
        mime_type="application/json",
    )(dataset_resource)
    app.resource(
        "nanodistill://datasets/{name}/examples{?offset,limit}",
        title="Dataset examples",
        description="A page of a dataset's examples in position order (offset, limit <= 1000).",
        mime_type="application/json",
    )(examples_resource)
