"""distill: seeds → amplify → train → evaluate as one job, every input checked before it starts."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from nanodistill.distill.plan import DistillRequest, plan_distill
from nanodistill.jobs.start import start_job
from nanodistill.views import JobView, job_view
from tools._common import STARTS_JOB, register_tools, runtime
from tools._request import takes
from tools._roots import ClientRoots, request_settings


@takes(DistillRequest)
async def distill(ctx: Context, roots: ClientRoots = None, **arguments: Any) -> JobView:
    """Make a small model from a handful of examples in one call: creates dataset `name` from `seeds`
    (inline [{input, output}] or a file `path`; `holdout_fraction` of them set aside for the report
    card), amplifies it with `teacher` (any LiteLLM model, or one served at `api_base`), trains
    `student` (a model folder, Hugging Face id, .gguf, ollama:NAME, or smollm2-135m) with `training`
    options (the train_student arguments: method, iters, epochs, batch_size, learning_rate, ...), and
    evaluates it. `training_data` (examples or a file) skips amplification and trains on it directly.
    Runs as a `distill` job with one child job per stage; follow it with get_job: the result names the
    model and summarises its report card. Everything is checked first and all problems are reported
    together. Quote the teacher cost first with amplify_dataset(dry_run=True) on a dataset of the seeds;
    `max_cost_usd` caps it (with `input_cost_per_token`/`output_cost_per_token` for unpriced teachers)."""
    rt = runtime(ctx)
    plan = await plan_distill(rt.store, request_settings(ctx, roots), DistillRequest.model_validate(arguments))
    return await job_view(rt.store, await start_job(rt.store, rt.settings, plan), None)


def register(app: MCPServer) -> None:
    register_tools(app, [(distill, "Distill a small model from examples (amplify, train, evaluate)", STARTS_JOB)])
