"""A dry run: a few real teacher calls, projected to the whole amplification job.

The trace and generation calls are the very prompts the job starts with, so through the cache
the job gets them for free later. One trace goes alone, then PROBE_CALLS more go at once: how much
longer the group takes than one call alone is how many calls the teacher really serves in parallel
(a local server answers one at a time), and the duration estimate uses that, not the ceiling.
The projection assumes every generated input is new and every answer is kept; dropped duplicates
and disagreements make a real job somewhat dearer, and `notes` says which assumptions were made.
"""

from __future__ import annotations

import math
import time
from typing import Any

import anyio
from pydantic import BaseModel

from nanodistill.amplify.parse import AnswerReply, parse_answer, parse_inputs
from nanodistill.amplify.pipeline import ADHERENCE_FLOOR, PROMPT_EXAMPLES, generation_messages
from nanodistill.amplify.records import AmplifyConfig, Seed
from nanodistill.data.similarity import normalize
from nanodistill.errors import NanodistillError
from nanodistill.teacher import prompts
from nanodistill.teacher.client import Readable, TeacherClient, TeacherReply

POLICY_TOKENS_GUESS = 250
PROBE_CALLS = 3


class Quote(BaseModel):
    sample_calls: int
    cached_sample_calls: int
    projected_calls: dict[str, int]
    projected_total_calls: int
    projected_prompt_tokens: int
    projected_completion_tokens: int
    projected_cost_usd: float | None
    priced: bool
    mean_latency_s: float
    parallelism: float | None
    concurrency: dict[str, Any]
    format_adherence: dict[str, Any]
    estimated_duration_s: float
    sample_inputs: list[str]
    sample_trace: dict[str, str | bool] | None
    notes: list[str]


def _tokens(reply: TeacherReply, count: int) -> tuple[int, int]:
    return reply.prompt_tokens * count, reply.completion_tokens * count


def significant(seconds: float, digits: int = 3) -> float:
    """Rounded to significant digits, not decimals: a fast local teacher's 1.5 ms stays 0.0015, not 0.0."""
    return float(f"{seconds:.{digits}g}")


async def _probe(
    teacher: TeacherClient, seeds: list[Seed], instruction: str, temperature: float
) -> tuple[list[Readable[AnswerReply]], float | None]:
    """Trace the first seed alone, then PROBE_CALLS more seeds at once (repeats tagged apart when there are
    fewer seeds); the parallelism is PROBE_CALLS x one call's time / the group's time, in [1, PROBE_CALLS]:
    a teacher serving one call at a time takes PROBE_CALLS times as long for the group. None when a reply
    came from the cache (nothing was timed)."""
    asked = [
        (prompts.trace_messages(instruction, seeds[i % len(seeds)].input), f"probe{i}" if i >= len(seeds) else "")
        for i in range(PROBE_CALLS + 1)
    ]
    replies: list[TeacherReply | None] = [None] * len(asked)

    async def ask(slot: int) -> None:
        messages, tag = asked[slot]
        replies[slot] = await teacher.complete(messages, temperature=temperature, seed_tag=tag, json_reply=True)

    await ask(0)
    started = time.monotonic()
    async with anyio.create_task_group() as group:
        for slot in range(1, len(asked)):
            group.start_soon(ask, slot)
    wall = time.monotonic() - started
    got = [reply for reply in replies if reply is not None]
    parallelism = None
    if not any(reply.cached for reply in got) and wall > 0:
        # One call's time is the fastest reply, not the lone one: the lone call is the client's first and
        # also pays for connecting and LiteLLM's first-request setup, which would inflate the estimate.
        fastest = min(reply.latency_s for reply in got)
        parallelism = round(min(max(PROBE_CALLS * fastest / wall, 1.0), PROBE_CALLS), 1)
    reads = [
        await teacher.read_or_repair(messages, reply, parse_answer, temperature=temperature, seed_tag=tag)
        for (messages, tag), reply in zip(asked, got, strict=True)
    ]
    return reads, parallelism


def _adherence(reads: list[Readable[Any]]) -> dict[str, Any]:
    readable = sum(r.value is not None for r in reads)
    return {
        "replies": len(reads),
        "readable": readable,
        "repaired": sum(r.repaired for r in reads),
        "rate": round(readable / len(reads), 2) if reads else None,
    }


async def quote(seeds: list[Seed], *, instruction: str, teacher: TeacherClient, config: AmplifyConfig) -> Quote:
    """Trace seeds (one alone, PROBE_CALLS at once), then one generation and one answer call, and project
    calls, tokens, cost and time; report how well the teacher followed the reply format."""
    if not seeds:
        raise NanodistillError("a quote needs seed examples: add at least one input/output pair to the dataset")
    notes: list[str] = []
    temperature = config.temperature
    traces, parallelism = await _probe(teacher, seeds, instruction, temperature)
    trace = traces[0].replies[0]
    traced = traces[0].value
    messages, _ = generation_messages(seeds, instruction, config.batch_size, 0)
    generated = await teacher.complete_readable(messages, parse_inputs, temperature=temperature)
    generation = generated.replies[0]
    inputs = (generated.value or [])[: config.batch_size]
    if not inputs:
        notes.append("the sample generation reply could not be read; the projection assumes full batches")
    examples = [
        (s.input, traced.reasoning if i == 0 and traced else s.reasoning or "", s.output)
        for i, s in enumerate(seeds[:PROMPT_EXAMPLES])
    ]
    answered = await teacher.complete_readable(
        prompts.answer_messages(instruction, "", examples, (inputs or [seeds[0].input])[0]),
        parse_answer,
        temperature=temperature,
    )
    answer = answered.replies[0]
    synthetic = max(config.target_size - len(seeds), 0)
    per_call = len(inputs) or config.batch_size
    calls = {
        "trace": sum(1 for s in seeds if not (s.reasoning and s.reasoning.strip())),
        "policy": 1,
        "generate": math.ceil(synthetic / per_call) + (1 if synthetic else 0),
        "answer": synthetic * config.self_consistency,
    }
    parts = [
        _tokens(trace, calls["trace"]),
        (trace.prompt_tokens + len(seeds) * trace.completion_tokens, POLICY_TOKENS_GUESS),
        _tokens(generation, calls["generate"]),
        (
            (answer.prompt_tokens + POLICY_TOKENS_GUESS) * calls["answer"],
            answer.completion_tokens * calls["answer"],
        ),
    ]
    prompt_tokens = sum(p for p, _ in parts)
    completion_tokens = sum(c for _, c in parts)
    notes.append(f"assumes a task policy of about {POLICY_TOKENS_GUESS} tokens in every answer prompt")
    cost = teacher.price(prompt_tokens, completion_tokens)
    if cost is None:
        notes.append("LiteLLM has no price for this model: tokens are projected, cost is not")
    reads: list[Readable[Any]] = [*traces, generated, answered]
    adherence = _adherence(reads)
    if adherence["repaired"]:
        notes.append(f"{adherence['repaired']} sample replies were readable only after a repair request")
    if adherence["readable"] < ADHERENCE_FLOOR * adherence["replies"]:
        notes.append(
            f"teacher {teacher.model} followed the reply format in {adherence['readable']} of "
            f"{adherence['replies']} sample replies: pick a stronger teacher (a job would stop early)"
        )
    samples = [r for read in reads for r in read.replies]
    latency = sum(r.latency_s for r in (trace, generation, answer)) / 3  # calls that went alone
    total = sum(calls.values())
    ceiling = min(config.concurrency, teacher.concurrency)
    if parallelism is None:
        lanes = ceiling
        notes.append("the sample replies came from the cache, so the teacher's parallelism was not measured")
    elif parallelism >= PROBE_CALLS - 0.5:
        lanes = ceiling
        notes.append(f"the teacher served {PROBE_CALLS} calls at once about as fast as one")
    else:
        lanes = min(ceiling, max(1, round(parallelism)))
        notes.append(f"the teacher served about {parallelism:g} calls at once ({PROBE_CALLS} sent together)")
    duration = total * latency / lanes + 2 * latency
    if teacher.rpm:
        duration = max(duration, total / teacher.rpm * 60)
    notes.append(f"duration assumes {lanes} calls in flight at {latency:.2f} s each, without rate limiting")
    return Quote(
        sample_calls=len(samples),
        cached_sample_calls=sum(r.cached for r in samples),
        projected_calls=calls,
        projected_total_calls=total,
        projected_prompt_tokens=prompt_tokens,
        projected_completion_tokens=completion_tokens,
        projected_cost_usd=cost,
        priced=cost is not None,
        mean_latency_s=significant(latency),
        parallelism=parallelism,
        concurrency=teacher.concurrency_report(),
        format_adherence=adherence,
        estimated_duration_s=significant(duration),
        sample_inputs=inputs,
        sample_trace=None
        if traced is None
        else {
            "input": seeds[0].input,
            "reasoning": traced.reasoning,
            "answer": traced.answer,
            "agrees_with_seed": normalize(traced.answer) == normalize(seeds[0].output),
        },
        notes=notes,
    )
