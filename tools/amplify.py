"""amplify_dataset: a teacher LLM turns seeds into hundreds of reasoning-annotated examples."""

from __future__ import annotations

from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from nanodistill.amplify.job import MAX_TARGET, seeds_of, teacher_client
from nanodistill.errors import NanodistillError
from nanodistill.jobs.start import start_job
from nanodistill.runtime import Runtime
from nanodistill.store import datasets as ds
from nanodistill.teacher.check import check_teacher, probe_api_base
from tools._common import STARTS_JOB, register_tools, runtime
from tools.jobs import JobView, job_view


class AmplifyStarted(BaseModel):
    job: JobView | None = Field(default=None, description="The amplify job; null for a dry run.")
    quote: dict[str, Any] | None = Field(default=None, description="Dry run only: projected calls, tokens, cost, time.")
    output_dataset: str
    seeds: int
    target_size: int


async def amplify_plan(
    rt: Runtime,
    dataset: str,
    teacher: str,
    *,
    target_size: int | None,
    augment_factor: int,
    concurrency: int,
    temperature: float,
    max_cost_usd: float | None,
    api_base: str | None,
    api_key_env: str | None,
    output_dataset: str | None,
    test_fraction: float,
    self_consistency: int,
    input_cost_per_token: float | None = None,
    output_cost_per_token: float | None = None,
) -> tuple[ds.Dataset, dict[str, Any]]:
    """Check everything a job would trip on, before it starts; return the source and the job's params."""
    found = await ds.get_dataset(rt.store, dataset)
    seeds = await seeds_of(rt.store, found.id)
    if not seeds:
        raise NanodistillError(f"'dataset' {dataset!r} has no seed examples to amplify; add_examples first.")
    if not 1 <= augment_factor <= 1000:
        raise NanodistillError(f"'augment_factor' must be between 1 and 1000, got {augment_factor}.")
    target = target_size if target_size is not None else min(len(seeds) * augment_factor, MAX_TARGET)
    if target < len(seeds) or target > MAX_TARGET:
        raise NanodistillError(
            f"'target_size' must be between the seed count ({len(seeds)}) and {MAX_TARGET:,}, got {target}."
        )
    if not 1 <= concurrency <= 64:
        raise NanodistillError(f"'concurrency' must be between 1 and 64, got {concurrency}.")
    if not 0 <= temperature <= 2:
        raise NanodistillError(f"'temperature' must be between 0 and 2, got {temperature}.")
    if max_cost_usd is not None and max_cost_usd <= 0:
        raise NanodistillError(f"'max_cost_usd' must be positive when given, got {max_cost_usd}.")
    if not 0 <= test_fraction < 0.5:
        raise NanodistillError(f"'test_fraction' must be between 0 and 0.5, got {test_fraction}.")
    if not 1 <= self_consistency <= 9:
        raise NanodistillError(f"'self_consistency' must be between 1 and 9, got {self_consistency}.")
    prices = {"input_cost_per_token": input_cost_per_token, "output_cost_per_token": output_cost_per_token}
    for field, price in prices.items():
        if price is not None and not price >= 0:
            raise NanodistillError(f"'{field}' must be a USD price per token >= 0 when given, got {price}.")
    # Off the event loop: the first check imports LiteLLM, seconds of work that would stall every other request.
    await anyio.to_thread.run_sync(check_teacher, teacher, api_base, api_key_env)
    if api_base:
        await probe_api_base(api_base)
    out_name = output_dataset or f"{dataset}-amplified"
    ds.check_name(out_name, "output_dataset")
    if await ds.find_dataset(rt.store, out_name):
        raise NanodistillError(
            f"'output_dataset': a dataset named {out_name!r} already exists; pass another output_dataset or "
            "delete_dataset it first."
        )
    params = {
        "dataset_id": found.id,
        "dataset": found.name,
        "output_dataset": out_name,
        "teacher": teacher,
        "api_base": api_base,
        "api_key_env": api_key_env,
        "target_size": target,
        "concurrency": concurrency,
        "temperature": temperature,
        "max_cost_usd": max_cost_usd,
        "test_fraction": test_fraction,
        "self_consistency": self_consistency,
        "seeds": len(seeds),
        "input_cost_per_token": input_cost_per_token,
        "output_cost_per_token": output_cost_per_token,
    }
    return found, params


async def amplify_dataset(
    dataset: str,
    teacher: str,
    ctx: Context,
    target_size: int | None = None,
    augment_factor: int = 50,
    concurrency: int = 8,
    temperature: float = 0.7,
    max_cost_usd: float | None = None,
    dry_run: bool = False,
    api_base: str | None = None,
    api_key_env: str | None = None,
    output_dataset: str | None = None,
    test_fraction: float = 0.1,
    self_consistency: int = 1,
    input_cost_per_token: float | None = None,
    output_cost_per_token: float | None = None,
) -> AmplifyStarted:
    """Amplify a dataset's seeds with a teacher LLM into a new dataset (default `<dataset>-amplified`),
    as a background `amplify` job. The teacher traces every seed (the gold output is kept), extracts
    the task policy, writes new varied inputs, and answers each with reasoning; near-duplicates are
    dropped. `teacher` is any LiteLLM model (e.g. anthropic/claude-sonnet-4-5, openai/gpt-4o-mini,
    gemini/gemini-2.0-flash, ollama/llama3.1) or a model served at `api_base` (OpenAI-compatible).
    API keys come from the server's environment (`api_key_env` names a non-default variable).
    `target_size` defaults to seeds x augment_factor. Use dry_run=True first: it makes 3 real calls and
    quotes calls, tokens, cost and time for the whole job. `max_cost_usd` stops the job cleanly.
    `input_cost_per_token` / `output_cost_per_token` (USD) price a model LiteLLM does not know, so budgets
    apply (e.g. a local model at `api_base`)."""
    rt = runtime(ctx)
    found, params = await amplify_plan(
        rt,
        dataset,
        teacher,
        target_size=target_size,
        augment_factor=augment_factor,
        concurrency=concurrency,
        temperature=temperature,
        max_cost_usd=max_cost_usd,
        api_base=api_base,
        api_key_env=api_key_env,
        output_dataset=output_dataset,
        test_fraction=test_fraction,
        self_consistency=self_consistency,
        input_cost_per_token=input_cost_per_token,
        output_cost_per_token=output_cost_per_token,
    )
    if dry_run:
        from nanodistill.amplify.job import CONFIG_FIELDS
        from nanodistill.amplify.quote import quote
        from nanodistill.amplify.records import AmplifyConfig

        config = AmplifyConfig(**{k: params[k] for k in CONFIG_FIELDS if params.get(k) is not None})
        seeds = await seeds_of(rt.store, found.id)
        client = teacher_client(params, rt.store, None)
        estimate = await quote(seeds, instruction=found.instruction, teacher=client, config=config)
        return AmplifyStarted(
            quote=estimate.model_dump(),
            output_dataset=params["output_dataset"],
            seeds=params["seeds"],
            target_size=params["target_size"],
        )

    async def prepare(db: Any, job_id: str) -> dict[str, Any]:
        output_id = await ds.insert_dataset(
            db,
            params["output_dataset"],
            instruction=found.instruction,
            description=f"{found.name} amplified by {teacher} (job {job_id})",
            parent_id=found.id,
        )
        return {"output_dataset_id": output_id}

    job = await start_job(rt.store, rt.settings, "amplify", params, prepare=prepare)
    return AmplifyStarted(
        job=await job_view(rt.store, job, None),
        output_dataset=params["output_dataset"],
        seeds=params["seeds"],
        target_size=params["target_size"],
    )


def register(app: MCPServer) -> None:
    register_tools(app, [(amplify_dataset, "Amplify a dataset with a teacher LLM", STARTS_JOB)])
