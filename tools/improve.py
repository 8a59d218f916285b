"""improve_student: rounds of teacher examples aimed at a model's report-card failures, kept when they help."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from nanodistill.improve.plan import ImproveRequest, plan_improve
from nanodistill.jobs.start import start_job
from nanodistill.views import JobView, job_view
from tools._common import STARTS_JOB, register_tools, runtime
from tools._request import takes


@takes(ImproveRequest)
async def improve_student(ctx: Context, **arguments: Any) -> JobView:
    """Improve a trained model from its report card (run evaluate_student first): each round describes the
    student's failure patterns on the held-out rows (labels missed, input lengths, kinds of mistakes; never
    the held-out rows themselves) to `teacher`, which writes `examples_per_round` new examples of those kinds;
    they are added to a new dataset version (<model>-r<round>: the model's data plus the new rows, none nearly
    duplicating a held-out input), a model of the same name is trained from the base with the model's options,
    and evaluated on the same held-out rows. A round that does not beat the best so far (paired interval above
    zero) ends it, as does `max_rounds` or `max_cost_usd`. Runs as an `improve` job; follow it with get_job: the
    result names the better model and shows every round's card side by side."""
    rt = runtime(ctx)
    plan = await plan_improve(rt.store, rt.settings, ImproveRequest.model_validate(arguments))
    return await job_view(rt.store, await start_job(rt.store, rt.settings, plan), None)


def register(app: MCPServer) -> None:
    register_tools(app, [(improve_student, "Improve a student from its report card's failures", STARTS_JOB)])
