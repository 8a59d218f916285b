"""evaluate_student: start an `evaluate` job that writes the model's report card."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from nanodistill.evaluate.plan import EvaluateRequest, plan_evaluate
from nanodistill.jobs.start import start_job
from nanodistill.views import JobView, job_view
from tools._common import STARTS_JOB, register_tools, runtime
from tools._request import takes


@takes(EvaluateRequest)
async def evaluate_student(ctx: Context, **arguments: Any) -> JobView:
    """Evaluate a trained student on held-out data as a background `evaluate` job, and write its report
    card: base vs student score with 95% bootstrap intervals per test source (seeds set aside at dataset
    creation, the teacher-labelled test slice of the amplified data, and `test_dataset` if given),
    per-label table, best and worst examples, latency, and a `ready` verdict. `metric`: auto (picked
    from the outputs), exact, numeric, json, label, chrf (character n-gram F-score, for free text) or
    judge (the `teacher` grades each answer against the gold; its cost is on the card).
    `baselines=["base", "seeds_only"]` also trains a student on the seeds alone, so the card says whether
    amplification helped. Read the card at nanodistill://models/{id}/card."""
    rt = runtime(ctx)
    plan = await plan_evaluate(rt.store, rt.settings, EvaluateRequest.model_validate(arguments))
    return await job_view(rt.store, await start_job(rt.store, rt.settings, plan), None)


def register(app: MCPServer) -> None:
    register_tools(app, [(evaluate_student, "Evaluate a student (report card)", STARTS_JOB)])
