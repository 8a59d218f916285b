"""The `amplify` job: seeds → teacher → a new dataset, every accepted example committed at once.

A resumed job rebuilds its state from what is already stored (traced seeds, accepted inputs, the
task policy saved with the job), and the teacher cache serves the calls it had already made.
"""

from __future__ import annotations

from typing import Any

from nanodistill.amplify.records import Accepted, AmplifyConfig, AmplifyHooks, AmplifyState, Seed
from nanodistill.data.rows import Row
from nanodistill.jobs.context import JobContext
from nanodistill.store import datasets as ds
from nanodistill.store.db import Store
from nanodistill.teacher.cache import SqliteTeacherCache
from nanodistill.teacher.client import TeacherClient

MAX_TARGET = 100_000
CONFIG_FIELDS = ("target_size", "test_fraction", "concurrency", "temperature", "self_consistency", "max_cost_usd")


def teacher_client(params: dict[str, Any], store: Store | None, job_id: str | None) -> TeacherClient:
    """The job's teacher, from the parameters the tool stored (never a key: keys stay in the environment)."""
    return TeacherClient(
        params["teacher"],
        api_base=params.get("api_base"),
        api_key_env=params.get("api_key_env"),
        concurrency=params["concurrency"],
        cache=SqliteTeacherCache(store, job_id) if store is not None else None,
        job_id=job_id,
        input_cost_per_token=params.get("input_cost_per_token"),
        output_cost_per_token=params.get("output_cost_per_token"),
    )


async def seeds_of(store: Store, dataset_id: str) -> list[Seed]:
    """The seeds the teacher may see: training rows only, never held-out ones."""
    return [
        Seed(id=e.position, input=e.input, output=e.output, reasoning=e.reasoning)
        async for e in ds.iter_examples(store, dataset_id, ("train",))
    ]


async def _resume_state(store: Store, output_id: str, policy: str | None) -> AmplifyState:
    state = AmplifyState(policy=policy)
    async for example in ds.iter_examples(store, output_id):
        seed_id = example.provenance.get("seed_id")
        if example.source == "seed" and isinstance(seed_id, int) and example.reasoning:
            state.traced[seed_id] = example.reasoning
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

    p = ctx.params
    store = ctx.store
    source = await ds.get_dataset_by_id(store, p["dataset_id"])
    output = await ds.get_dataset_by_id(store, p["output_dataset_id"])
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

    config = AmplifyConfig(**{key: p[key] for key in CONFIG_FIELDS if p.get(key) is not None})
    hooks = AmplifyHooks(on_seed_trace, on_policy, on_accept, on_progress, on_event, ctx.should_stop)
    await ctx.stage("amplifying", f"amplifying {len(seeds)} seeds to {config.target_size} examples with {p['teacher']}")
    result = await amplify(
        seeds, instruction=source.instruction, teacher=teacher, config=config, state=state, hooks=hooks
    )
    await ctx.set_cost(teacher.totals.cost_usd)
    summary = {"output_dataset": output.name, **result.model_dump()}
    await ctx.metrics({"teacher": result.teacher, "agreement_rate": result.agreement_rate})
    if result.stopped_reason == "cancelled":
        return {"stopped": "cancelled", **summary}
    if result.stopped_reason == "budget":
        summary["note"] = (
            f"stopped once the teacher cost reached max_cost_usd={p['max_cost_usd']}: "
            f"{result.total_examples} examples kept"
        )
    elif result.stopped_reason == "max_rounds":
        summary["note"] = (
            f"stopped after {result.rounds} rounds with {result.total_examples} examples: the "
            "teacher kept repeating itself; raise temperature or accept fewer"
        )
    return summary
