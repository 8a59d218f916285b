"""amplify_dataset: a teacher LLM turns seeds into hundreds of reasoning-annotated examples."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from nanodistill.amplify.job import dry_run_quote
from nanodistill.amplify.plan import AmplifyParams, AmplifyRequest, plan_amplify
from nanodistill.jobs.start import start_job
from nanodistill.views import JobView, job_view
from tools._common import STARTS_JOB, register_tools, runtime
from tools._request import takes


class AmplifyStarted(BaseModel):
    job: JobView | None = Field(default=None, description="The amplify job; null for a dry run.")
    quote: dict[str, Any] | None = Field(default=None, description="Dry run only: projected calls, tokens, cost, time.")
    output_dataset: str
    seeds: int
    target_size: int


@takes(AmplifyRequest)
async def amplify_dataset(ctx: Context, dry_run: bool = False, **arguments: Any) -> AmplifyStarted:
    """Amplify a dataset's seeds with a teacher LLM into a new dataset (default `<dataset>-amplified`),
    as a background `amplify` job. The teacher traces every seed (the gold output is kept), extracts
    the task policy, writes new varied inputs, and answers each with reasoning; near-duplicates are
    dropped. `teacher` is any LiteLLM model (e.g. anthropic/claude-sonnet-4-5, openai/gpt-4o-mini,
    gemini/gemini-2.0-flash, ollama/llama3.1) or a model served at `api_base` (OpenAI-compatible).
    API keys come from the server's environment (`api_key_env` names a non-default variable).
    `target_size` defaults to seeds x augment_factor. Use dry_run=True first: it makes 3 real calls and
    quotes calls, tokens, cost and time for the whole job. `max_cost_usd` stops the job cleanly.
    `input_cost_per_token` / `output_cost_per_token` (USD) price a model LiteLLM does not know, so budgets
    apply (e.g. a local model at `api_base`). `batch=True` sends the calls through the provider's batch API
    (about half the price, minutes to hours per batch); `max_tokens` caps each teacher reply."""
    rt = runtime(ctx)
    plan = await plan_amplify(rt.store, rt.settings, AmplifyRequest.model_validate(arguments))
    params = plan.params
    assert isinstance(params, AmplifyParams)
    started = AmplifyStarted(output_dataset=params.output_dataset, seeds=params.seeds, target_size=params.target_size)
    if dry_run:
        started.quote = (await dry_run_quote(rt.store, params)).model_dump()
        return started
    started.job = await job_view(rt.store, await start_job(rt.store, rt.settings, plan), None)
    return started


def register(app: MCPServer) -> None:
    register_tools(app, [(amplify_dataset, "Amplify a dataset with a teacher LLM", STARTS_JOB)])
