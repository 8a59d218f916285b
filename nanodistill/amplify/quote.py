"""A dry run: three real teacher calls, projected to the whole amplification job.

The trace and generation calls are the very prompts the job starts with, so through the cache
the job gets them for free later. The projection assumes every generated input is new and every
answer is kept; dropped duplicates and disagreements make a real job somewhat dearer, and
`notes` says which assumptions were made.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from nanodistill.amplify.parse import parse_answer, parse_inputs
from nanodistill.amplify.pipeline import PROMPT_EXAMPLES, generation_messages
from nanodistill.amplify.records import AmplifyConfig, Seed
from nanodistill.data.similarity import normalize
from nanodistill.errors import NanodistillError
from nanodistill.teacher import prompts
from nanodistill.teacher.client import TeacherClient, TeacherReply

POLICY_TOKENS_GUESS = 250


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
    estimated_duration_s: float
    sample_inputs: list[str]
    sample_trace: dict[str, str | bool] | None
    notes: list[str]


def _tokens(reply: TeacherReply, count: int) -> tuple[int, int]:
    return reply.prompt_tokens * count, reply.completion_tokens * count


def significant(seconds: float, digits: int = 3) -> float:
    """Rounded to significant digits, not decimals: a fast local teacher's 1.5 ms stays 0.0015, not 0.0."""
    return float(f"{seconds:.{digits}g}")


async def quote(seeds: list[Seed], *, instruction: str, teacher: TeacherClient, config: AmplifyConfig) -> Quote:
    """Make one trace, one generation and one answer call, and project calls, tokens, cost and time."""
    if not seeds:
        raise NanodistillError("a quote needs seed examples: add at least one input/output pair to the dataset")
    notes: list[str] = []
    trace = await teacher.complete(prompts.trace_messages(instruction, seeds[0].input), temperature=config.temperature)
    traced = parse_answer(trace.text)
    messages, _ = generation_messages(seeds, instruction, config.batch_size, 0)
    generation = await teacher.complete(messages, temperature=config.temperature)
    inputs = (parse_inputs(generation.text) or [])[: config.batch_size]
    if not inputs:
        notes.append("the sample generation reply could not be read; the projection assumes full batches")
    examples = [
        (s.input, traced.reasoning if i == 0 and traced else s.reasoning or "", s.output)
        for i, s in enumerate(seeds[:PROMPT_EXAMPLES])
    ]
    answer = await teacher.complete(
        prompts.answer_messages(instruction, "", examples, (inputs or [seeds[0].input])[0]),
        temperature=config.temperature,
    )
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
    samples = (trace, generation, answer)
    latency = sum(r.latency_s for r in samples) / len(samples)
    total = sum(calls.values())
    lanes = min(config.concurrency, teacher.concurrency)
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
