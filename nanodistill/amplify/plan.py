"""The `amplify` job kind's contract: what a user asks, what the job stores, and every check before it starts.

`distill` reuses `AmplifyOptions` and `check_amplify_options` for its amplify stage, so it can
never check (or pass on) less than `amplify_dataset` does.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
from pydantic import BaseModel, Field

from nanodistill.amplify.records import Seed
from nanodistill.jobs.plan import Plan, Problems
from nanodistill.settings import Settings
from nanodistill.store import datasets as ds
from nanodistill.store.db import Store
from nanodistill.teacher.batch import check_batch_api
from nanodistill.teacher.check import check_teacher, probe_api_base

MAX_TARGET = 100_000
MIN_MAX_TOKENS = 16  # fewer cannot hold a JSON reply with its reasoning
MAX_MAX_TOKENS = 131_072


class AmplifyOptions(BaseModel):
    """How to amplify, independent of which dataset: the teacher and the knobs."""

    teacher: str = Field(
        description="Any LiteLLM model (anthropic/claude-sonnet-4-5, openai/gpt-4o-mini, ollama/llama3.1, ...) "
        "or a model served at api_base."
    )
    target_size: int | None = Field(
        default=None, description="Examples to reach, seeds included (default: seeds x augment_factor)."
    )
    augment_factor: int = Field(default=50, description="target_size = seeds x augment_factor when not given.")
    concurrency: int = Field(
        default=32,
        description="Teacher calls in flight at most (1-64): a ceiling; the client finds how many the teacher "
        "serves at once (a local server often serves one) and keeps to that.",
    )
    temperature: float = Field(default=0.7, description="Teacher sampling temperature for new inputs (0-2).")
    max_cost_usd: float | None = Field(default=None, description="Stop cleanly once the teacher cost reaches this.")
    api_base: str | None = Field(default=None, description="URL of an OpenAI-compatible server (Ollama, vLLM, ...).")
    api_key_env: str | None = Field(
        default=None,
        description="Environment variable holding the API key: a provider's own (e.g. OPENAI_API_KEY) or one the "
        "operator lists in NANODISTILL_KEY_ENVS; a key goes to a custom api_base only if NANODISTILL_API_BASES "
        "lists it.",
    )
    test_fraction: float = Field(
        default=0.1, description="Share of new examples kept as a teacher-labelled test slice."
    )
    self_consistency: int = Field(default=1, description="Teacher answers per input; disagreeing ones are dropped.")
    input_cost_per_token: float | None = Field(default=None, description="USD per input token, for unpriced models.")
    output_cost_per_token: float | None = Field(default=None, description="USD per output token, for unpriced models.")
    open_labels: bool = Field(
        default=False,
        description="Keep answers outside the seeds' labels (by default, when the seed outputs are a small repeated "
        "label set, other answers are rejected and counted).",
    )
    batch: bool = Field(
        default=False,
        description="Send the teacher calls through the provider's batch API (OpenAI-style /v1/files + "
        "/v1/batches): about half the price and no rate limits, but minutes to hours per batch (a job sends a "
        "few, since answers need the task policy); a restarted job collects the batches it already sent. "
        "concurrency does not apply.",
    )
    max_tokens: int | None = Field(
        default=None, description=f"Cap on each teacher reply's length in tokens ({MIN_MAX_TOKENS}-{MAX_MAX_TOKENS})."
    )


class AmplifyRequest(AmplifyOptions):
    """amplify_dataset's arguments."""

    dataset: str = Field(description="The dataset whose seeds to amplify.")
    output_dataset: str | None = Field(
        default=None, description="Name of the new dataset (default <dataset>-amplified)."
    )


class AmplifyParams(BaseModel):
    """What an amplify job stores: the resolved settings, never a key (keys stay in the environment)."""

    dataset_id: str
    dataset: str
    output_dataset: str
    output_dataset_id: str | None = None
    teacher: str
    api_base: str | None = None
    api_key_env: str | None = None
    target_size: int
    concurrency: int = 8
    temperature: float = 0.7
    max_cost_usd: float | None = None
    test_fraction: float = 0.1
    self_consistency: int = 1
    seeds: int
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    open_labels: bool = False
    batch: bool = False
    max_tokens: int | None = None


async def seeds_of(store: Store, dataset_id: str) -> list[Seed]:
    """The seeds the teacher may see: training rows only, never held-out ones."""
    return [
        Seed(id=e.position, input=e.input, output=e.output, reasoning=e.reasoning)
        async for e in ds.iter_examples(store, dataset_id, ("train",))
    ]


async def check_amplify_options(opts: AmplifyOptions, n_seeds: int | None, problems: Problems) -> int:
    """Every problem with the options (the teacher is checked for real: routed, keyed, reachable);
    returns the target size (seeds x augment_factor unless given)."""
    problems.need(
        1 <= opts.augment_factor <= 1000, f"'augment_factor' must be between 1 and 1000, got {opts.augment_factor}"
    )
    target = opts.target_size if opts.target_size is not None else min((n_seeds or 1) * opts.augment_factor, MAX_TARGET)
    if n_seeds:
        problems.need(
            n_seeds <= target <= MAX_TARGET,
            f"'target_size' must be between the seed count ({n_seeds}) and {MAX_TARGET:,}, got {target}",
        )
    problems.need(1 <= opts.concurrency <= 64, f"'concurrency' must be between 1 and 64, got {opts.concurrency}")
    problems.need(0 <= opts.temperature <= 2, f"'temperature' must be between 0 and 2, got {opts.temperature}")
    problems.need(
        opts.max_cost_usd is None or opts.max_cost_usd > 0,
        f"'max_cost_usd' must be positive when given, got {opts.max_cost_usd}",
    )
    problems.need(0 <= opts.test_fraction < 0.5, f"'test_fraction' must be between 0 and 0.5, got {opts.test_fraction}")
    problems.need(
        1 <= opts.self_consistency <= 9, f"'self_consistency' must be between 1 and 9, got {opts.self_consistency}"
    )
    problems.need(
        opts.max_tokens is None or MIN_MAX_TOKENS <= opts.max_tokens <= MAX_MAX_TOKENS,
        f"'max_tokens' must be between {MIN_MAX_TOKENS} and {MAX_MAX_TOKENS:,} when given, got {opts.max_tokens}",
    )
    for field in ("input_cost_per_token", "output_cost_per_token"):
        price = getattr(opts, field)
        problems.need(
            price is None or price >= 0, f"'{field}' must be a USD price per token >= 0 when given, got {price}"
        )
    known = len(problems.found)
    # Off the event loop: the first check imports LiteLLM, seconds of work that would stall every other request.
    await problems.check_async(
        lambda: anyio.to_thread.run_sync(check_teacher, opts.teacher, opts.api_base, opts.api_key_env)
    )
    if opts.api_base:
        await problems.check_async(lambda: probe_api_base(opts.api_base or ""))
    if opts.batch and len(problems.found) == known:  # a teacher that is reachable at all
        await problems.check_async(lambda: check_batch_api(opts.teacher, opts.api_base))
    return target


def amplify_params(
    opts: AmplifyOptions, *, dataset_id: str, dataset: str, output: str, seeds: int, target: int
) -> AmplifyParams:
    return AmplifyParams(
        dataset_id=dataset_id,
        dataset=dataset,
        output_dataset=output,
        seeds=seeds,
        target_size=target,
        **opts.model_dump(include=set(AmplifyOptions.model_fields) - {"target_size", "augment_factor"}),
    )


async def check_output_name(store: Store, name: str, field: str, problems: Problems) -> None:
    if problems.check(lambda: ds.check_name(name, field)) is None:
        return
    if await ds.find_dataset(store, name):
        problems.add(
            f"'{field}': a dataset named {name!r} already exists; pass another {field} or delete_dataset it first"
        )


async def plan_amplify(store: Store, settings: Settings, request: AmplifyRequest) -> Plan:
    """Check an amplify_dataset request; the plan's prepare creates the output dataset with the job."""
    problems = Problems()
    found = await problems.check_async(lambda: ds.get_dataset(store, request.dataset))
    seeds = await seeds_of(store, found.id) if found else []
    if found and not seeds:
        problems.add(f"'dataset' {request.dataset!r} has no seed examples to amplify; add_examples first")
    target = await check_amplify_options(request, len(seeds) or None, problems)
    output = request.output_dataset or f"{request.dataset}-amplified"
    await check_output_name(store, output, "output_dataset", problems)
    problems.raise_if_any("amplify_dataset")
    assert found is not None
    params = amplify_params(
        request, dataset_id=found.id, dataset=found.name, output=output, seeds=len(seeds), target=target
    )

    async def prepare(db: Any, job_id: str) -> dict[str, Any]:
        output_id = await ds.insert_dataset(
            db,
            params.output_dataset,
            instruction=found.instruction,
            description=f"{found.name} amplified by {params.teacher} (job {job_id})",
            parent_id=found.id,
        )
        return {"output_dataset_id": output_id}

    return Plan("amplify", params, prepare)
