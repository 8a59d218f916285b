"""distill: seeds → amplify → train → evaluate as one job, every input checked before it starts."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from nanodistill.api import start_distill
from tools._common import STARTS_JOB, register_tools, runtime
from tools.jobs import JobView, job_view


async def distill(
    name: str,
    instruction: str,
    ctx: Context,
    seeds: list[dict[str, Any]] | None = None,
    path: str | None = None,
    teacher: str | None = None,
    student: str = "smollm2-135m",
    augment_factor: int = 50,
    target_size: int | None = None,
    holdout_fraction: float = 0.2,
    max_cost_usd: float | None = None,
    training: dict[str, Any] | None = None,
    api_base: str | None = None,
    api_key_env: str | None = None,
    training_data: list[dict[str, Any]] | str | None = None,
) -> JobView:
    """Make a small model from a handful of examples in one call: creates dataset `name` from `seeds`
    (inline [{input, output}] or a file `path`; `holdout_fraction` of them set aside for the report
    card), amplifies it with `teacher` (any LiteLLM model, or one served at `api_base`), trains
    `student` (a model folder, Hugging Face id, .gguf, ollama:NAME, or smollm2-135m) with `training`
    options (the train_student arguments: method, iters, epochs, batch_size, learning_rate, ...), and
    evaluates it. `training_data` (examples or a file) skips amplification and trains on it directly.
    Runs as a `distill` job with one child job per stage; follow it with get_job: the result names the
    model and summarises its report card. Everything is checked first and all problems are reported
    together. Quote the teacher cost first with amplify_dataset(dry_run=True) on a dataset of the seeds."""
    rt = runtime(ctx)
    job = await start_distill(
        rt.store,
        rt.settings,
        name=name,
        seeds=seeds,
        path=path,
        instruction=instruction,
        teacher=teacher,
        student=student,
        augment_factor=augment_factor,
        target_size=target_size,
        holdout_fraction=holdout_fraction,
        max_cost_usd=max_cost_usd,
        training=training,
        api_base=api_base,
        api_key_env=api_key_env,
        training_data=training_data,
    )
    return await job_view(rt.store, job, None)


def register(app: MCPServer) -> None:
    register_tools(app, [(distill, "Distill a small model from examples (amplify, train, evaluate)", STARTS_JOB)])
