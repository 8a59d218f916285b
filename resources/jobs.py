"""Job resources: the job record, its events after a cursor, and the tail of its log."""

from __future__ import annotations

import json
from collections import deque

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from nanodistill.errors import NanodistillError
from nanodistill.jobs.process import log_path, reconcile
from nanodistill.runtime import runtime_of
from nanodistill.store import jobs as jobs_db
from nanodistill.views import JobEvent, job_view


async def _job(ctx: Context, job_id: str) -> jobs_db.Job:
    store = runtime_of(ctx).store
    try:
        await jobs_db.get_job(store, job_id)
    except NanodistillError as exc:
        raise ResourceError(str(exc)) from exc
    await reconcile(store, [job_id])
    return await jobs_db.get_job(store, job_id)


async def job_resource(id: str, ctx: Context) -> str:
    job = await _job(ctx, id)
    return (await job_view(runtime_of(ctx).store, job, None)).model_dump_json(indent=2)


async def job_events_resource(id: str, ctx: Context, after: int = 0) -> str:
    job = await _job(ctx, id)
    events = await jobs_db.events_after(runtime_of(ctx).store, job.id, after, limit=1000)
    body = [JobEvent(seq=e.seq, at=e.at, level=e.level, message=e.message, data=e.data).model_dump() for e in events]
    cursor = events[-1].seq if events else after
    return json.dumps({"job": job.id, "events": body, "events_cursor": cursor})


async def job_log_resource(id: str, ctx: Context, tail: int = 200) -> str:
    job = await _job(ctx, id)
    path = log_path(runtime_of(ctx).settings, job.id)
    if not path.exists():
        return ""
    with path.open(encoding="utf-8", errors="replace") as handle:
        return "".join(deque(handle, maxlen=max(1, min(tail, 5000))))


def register(app: MCPServer) -> None:
    app.resource(
        "nanodistill://jobs/{id}",
        title="Job",
        description="A job's record, as get_job returns it.",
        mime_type="application/json",
    )(job_resource)
    app.resource(
        "nanodistill://jobs/{id}/events{?after}",
        title="Job events",
        description="A job's events after a cursor (seq).",
        mime_type="application/json",
    )(job_events_resource)
    app.resource(
        "nanodistill://jobs/{id}/log{?tail}",
        title="Job log",
        description="The last lines of a job's log file.",
        mime_type="text/plain",
    )(job_log_resource)
