"""The `amplify` job: seeds → teacher → a new dataset, every accepted example committed at once.

A resumed job rebuilds its state from what is already stored (traced seeds, accepted inputs, the
task policy saved with the job), and the teacher cache serves the calls it had already made.
"""

from __future__ import annotations

from typing import Any

from nanodistill.amplify.plan import AmplifyParams, seeds_of
from nanodistill.amplify.quote import Quote, quote
from nanodistill.amplify.records import Accepted, AmplifyConfig, AmplifyHooks, AmplifyState
from nanodistill.data.rows import Row
from nanodistill.errors import NanodistillError
from nanodistill.jobs.context import JobContext
from nanodistill.store import datasets as ds
from nanodistill.store.db import Store
from nanodistill.store.teacher_batches import job_batch_count
from nanodistill.store.teacher_calls import job_call_totals
from nanodistill.teacher.batch import BatchTeacherClient, batch_price
from nanodistill.teacher.cache import SqliteTeacherCache
from nanodistill.teacher.client import TeacherClient, TeacherTotals

MAX_BATCH_CALLERS = 512


def batch_callers(params: AmplifyParams) -> int:
    """The pipeline's workers in batch mode: each batch holds at most one request per worker, so enough for
    a round of the whole job, within what one event loop wakes cheaply."""
    return min(params.target_size + params.seeds, MAX_BATCH_CALLERS)


def teacher_client(params: AmplifyParams, store: Store | None, job_id: str | None) -> TeacherClient:
    """The job's teacher, from the parameters the plan stored (never a key: keys stay in the environment);
    a job in batch mode sends its calls in batches, a dry run always calls live."""
    options: dict[str, Any] = {
        "api_base": params.api_base,
        "api_key_env": params.api_key_env,
        "cache": SqliteTeacherCache(store, job_id) if store is not None else None,
        "input_cost_per_token": params.input_cost_per_token,
        "output_cost_per_token": params.output_cost_per_token,
        "max_tokens": params.max_tokens,
    }
    if params.batch and store is not None and job_id is not None:
        return BatchTeacherClient(params.teacher, store=store, job_id=job_id, callers=batch_callers(params), **options)
    return TeacherClient(params.teacher, concurrency=params.concurrency, job_id=job_id, **options)


def amplify_config(params: AmplifyParams) -> AmplifyConfig:
    return AmplifyConfig(
        target_size=params.target_size,
        test_fraction=params.test_fraction,
        concurrency=batch_callers(params) if params.batch else params.concurrency,
        temperature=params.temperature,
        self_consistency=params.self_consistency,
        max_cost_usd=params.max_cost_usd,
        open_labels=params.open_labels,
    )


async def lifetime_totals(store: Store, job_id: str) -> TeacherTotals:
    """What earlier attempts of this job already paid the teacher, from the call ledger: a resumed job's
    budget and reported cost cover its whole life, not just the latest attempt."""
    earlier = await job_call_totals(store, job_id)
    return TeacherTotals(
        calls=earlier["calls"],
        prompt_tokens=earlier["prompt_tokens"],
        completion_tokens=earlier["completion_tokens"],
        cost_usd=earlier["cost_usd"],
        priced=not earlier["unpriced_calls"],
    )


async def dry_run_quote(store: Store, params: AmplifyParams) -> Quote:
    """Three real teacher calls, projected to the whole job (the job reuses them from the cache)."""
    source = await ds.get_dataset_by_id(store, params.dataset_id)
    seeds = await seeds_of(store, source.id)
    client = teacher_client(params, store, None)
    config = amplify_config(params.model_copy(update={"batch": False}))
    quoted = await quote(seeds, instruction=source.instruction, teacher=client, config=config)
    if not params.batch:
        return quoted
    custom = params.input_cost_per_token is not None or params.output_cost_per_token is not None
    cost = batch_price(client, quoted.projected_prompt_tokens, quoted.projected_completion_tokens, custom_price=custom)
    note = (
        "batch=True: priced at the batch rate (LiteLLM's, else half the live price); the sample calls went live, "
        "and the job's batches take minutes to hours, not the estimated duration"
    )
    return quoted.model_copy(
        update={"projected_cost_usd": cost, "priced": cost is not None, "notes": [*quoted.notes, note]}
    )


async def _resume_state(store: Store, output_id: str, policy: str | None) -> AmplifyState:
    state = AmplifyState(policy=policy)
    async for example in ds.iter_examples(store, output_id):
        seed_id = example.provenance.get("seed_id")
        if example.source == "seed" and isinstance(seed_id, int) and example.reasoning:
            state.traced[seed_id] = example.reasoning
            if isinstance(agrees := example.provenance.get("agrees"), bool):
                state.agreements[seed_id] = agrees
        elif example.source == "synthetic":
            state.accepted_inputs.append(example.input)
    return state


async def _copy_holdout(store: Store, source_id: str, output_id: str) -> int:
    """Held-out seeds travel with the amplified dataset (split 'holdout') so evaluation finds them."""
    rows = [Row(e.input, e.output, e.reasoning) async for e in ds.iter_examples(store, source_id, ("holdout",))]
    async with store.write() as db:
        added = await ds.insert_examples(
            db, output_id, rows, source="seed", split="holdout", provenance={"held_out": True}
        )
    return added.added


async def run_amplify_job(ctx: JobContext) -> dict[str, Any]:
    from nanodistill.amplify.pipeline import amplify

    p = ctx.params_as(AmplifyParams)
    store = ctx.store
    assert p.output_dataset_id is not None, "the plan's prepare step sets output_dataset_id"
    source = await ds.get_dataset_by_id(store, p.dataset_id)
    output = await ds.get_dataset_by_id(store, p.output_dataset_id)
    seeds = await seeds_of(store, source.id)
    if not ctx.state.get("holdout_copied"):
        held = await _copy_holdout(store, source.id, output.id)
        await ctx.save_state({"holdout_copied": True, "holdout": held})
    state = await _resume_state(store, output.id, ctx.state.get("policy"))
    if state.traced or state.accepted_inputs:
        await ctx.event(
            "info",
            f"resuming: {len(state.traced)} seeds traced and {len(state.accepted_inputs)} examples already stored",
            {"traced": len(state.traced)},
        )
    teacher = teacher_client(p, store, ctx.id)
    if isinstance(teacher, BatchTeacherClient):
        if collected := await teacher.resume_open_batches():
            await ctx.event(
                "info", f"collected {collected} teacher batches an earlier attempt submitted", {"batches": collected}
            )
        if teacher.batches_lost:
            await ctx.event(
                "warning",
                f"the teacher no longer knows {teacher.batches_lost} batches an earlier attempt submitted; "
                "their requests go out again",
                {"batches_lost": teacher.batches_lost},
            )
    teacher.totals = await lifetime_totals(store, ctx.id)
    by_id = {seed.id: seed for seed in seeds}

    async def on_seed_trace(seed_id: int, reasoning: str, teacher_answer: str, agrees: bool) -> None:
        seed = by_id[seed_id]
        provenance = {"seed_id": seed_id, "teacher_answer": teacher_answer, "agrees": agrees}
        async with store.write() as db:
            await ds.insert_examples(
                db, output.id, [Row(seed.input, seed.output, reasoning)], source="seed", provenance=provenance
            )

    async def on_policy(policy: str) -> None:
        await ctx.save_state({"policy": policy})
        await ctx.event("info", "task policy extracted", {"policy": policy})

    async def on_accept(example: Accepted) -> None:
        provenance = {**example.provenance, "teacher_answer": example.output}
        async with store.write() as db:
            await ds.insert_examples(
                db,
                output.id,
                [Row(example.input, example.output, example.reasoning)],
                source="synthetic",
                split=example.split,
                provenance=provenance,
            )

    async def on_progress(done: int, total: int, stage: str) -> None:
        await ctx.progress(done, total, stage, cost_usd=teacher.totals.cost_usd)

    async def on_event(level: str, message: str, data: dict[str, Any]) -> None:
        await ctx.event(level, message, data)

    async def on_tally(tally: dict[str, Any]) -> None:
        await ctx.metrics({"examples": tally})

    config = amplify_config(p)
    hooks = AmplifyHooks(on_seed_trace, on_policy, on_accept, on_progress, on_event, ctx.should_stop, on_tally)
    await ctx.stage("amplifying", f"amplifying {len(seeds)} seeds to {config.target_size} examples with {p.teacher}")
    try:
        result = await amplify(
            seeds, instruction=source.instruction, teacher=teacher, config=config, state=state, hooks=hooks
        )
    except NanodistillError:  # a failed job still says what it asked of the teacher (calls, timeouts, cost)
        await ctx.metrics({"teacher": teacher.totals.as_dict()})
        await ctx.set_cost(teacher.totals.cost_usd)
        raise
    await ctx.set_cost(teacher.totals.cost_usd)
    summary = {"output_dataset": output.name, **result.model_dump()}
    if isinstance(teacher, BatchTeacherClient):
        sent = await job_batch_count(store, ctx.id)
        summary["teacher_batches"] = sent
        await ctx.event("info", f"the teacher answered in {sent} batches, at the batch price", {"batches": sent})
    else:
        found = teacher.concurrency_report()
        summary["teacher_concurrency"] = found
        await ctx.event(
            "info",
            f"the teacher served about {found['parallelism']} calls at once; the client settled on "
            f"{found['limit']} in flight (ceiling {found['ceiling']})",
            found,
        )
    await ctx.metrics({"teacher": result.teacher, "agreement_rate": result.agreement_rate})
    if result.stopped_reason == "cancelled":
        return {"stopped": "cancelled", **summary}
    if result.stopped_reason == "budget":
        summary["note"] = (
            f"stopped once the teacher cost reached max_cost_usd={p.max_cost_usd}: "
            f"{result.total_examples} examples kept"
        )
    elif result.stopped_reason == "max_rounds":
        summary["note"] = (
            f"stopped after {result.rounds} rounds with {result.total_examples} examples: the "
            "teacher kept repeating itself; raise temperature or accept fewer"
        )
    return summary
