"""Answer prompts with a loaded student, formatted exactly as it was trained.

Each prompt becomes `prompt_messages(instruction, prompt)` rendered by the tokenizer's own chat
template with the generation prompt, tokenised once and handed to mlx-lm as token ids, so a
query costs what a bare `mlx_lm.generate` costs. Several prompts go through mlx-lm's batch
generator together.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from nanodistill.data.chat import ReasoningMode, prompt_messages, split_reasoning
from nanodistill.errors import NanodistillError
from nanodistill.student.load import LoadedStudent


@dataclass(frozen=True)
class Answer:
    """One generated answer. In a batch, `elapsed_s` runs from the batch start to this answer's
    last token; `tokens_per_s` is `tokens_generated / elapsed_s` (stop token included)."""

    text: str
    reasoning: str | None
    tokens_generated: int
    tokens_per_s: float
    elapsed_s: float


@lru_cache(maxsize=16)
def _sampler(temperature: float) -> Callable[[Any], Any]:
    from mlx_lm.sample_utils import make_sampler

    return make_sampler(temp=temperature)


def encode_prompts(student: LoadedStudent, prompts: Sequence[str], instruction: str) -> list[list[int]]:
    """Chat-templated token ids per prompt; a prompt that leaves no room to answer is refused."""
    encoded = []
    limit = student.context_length
    for i, prompt in enumerate(prompts):
        tokens = list(
            student.tokenizer.apply_chat_template(prompt_messages(instruction, prompt), add_generation_prompt=True)
        )
        if limit is not None and len(tokens) >= limit:
            raise NanodistillError(
                f"prompts[{i}] is {len(tokens)} tokens with the chat template; the model's context is "
                f"{limit} tokens: shorten the input."
            )
        encoded.append(tokens)
    return encoded


def _answer(student: LoadedStudent, text: str, reasoning: ReasoningMode, tokens: int, elapsed: float) -> Answer:
    for special in student.special_tokens:
        text = text.replace(special, "")
    thought, answer = split_reasoning(text) if reasoning == "full" else (None, text.strip())
    return Answer(
        text=answer,
        reasoning=thought,
        tokens_generated=tokens,
        tokens_per_s=tokens / elapsed if elapsed > 0 else 0.0,
        elapsed_s=elapsed,
    )


def _generate_one(
    student: LoadedStudent, tokens: list[int], reasoning: ReasoningMode, max_tokens: int, sampler: Any
) -> Answer:
    from mlx_lm.generate import stream_generate

    started = time.perf_counter()
    pieces = []
    generated = 0
    for response in stream_generate(student.model, student.tokenizer, tokens, max_tokens=max_tokens, sampler=sampler):
        pieces.append(response.text)
        generated = response.generation_tokens
    return _answer(student, "".join(pieces), reasoning, generated, time.perf_counter() - started)


def _generate_batch(
    student: LoadedStudent, encoded: list[list[int]], reasoning: ReasoningMode, max_tokens: int, sampler: Any
) -> list[Answer]:
    from mlx_lm.generate import BatchGenerator

    eos = student.tokenizer.eos_token_ids
    generator = BatchGenerator(student.model, stop_tokens=[[t] for t in eos], sampler=sampler)
    started = time.perf_counter()
    try:
        uids = generator.insert(encoded, [max_tokens] * len(encoded))
        tokens: dict[int, list[int]] = {uid: [] for uid in uids}
        counts = dict.fromkeys(uids, 0)
        finished: dict[int, float] = {}
        while responses := generator.next_generated():
            for r in responses:
                counts[r.uid] += 1
                if r.finish_reason != "stop":
                    tokens[r.uid].append(r.token)
                if r.finish_reason is not None:
                    finished[r.uid] = time.perf_counter() - started
    finally:
        generator.close()
    decode = student.tokenizer.decode
    return [_answer(student, decode(tokens[uid]), reasoning, counts[uid], finished[uid]) for uid in uids]


def generate_answers(
    student: LoadedStudent,
    prompts: Sequence[str],
    *,
    instruction: str,
    reasoning: ReasoningMode,
    max_tokens: int,
    temperature: float,
) -> list[Answer]:
    """One answer per prompt, in order; blocks the calling thread (run it off any event loop)."""
    if max_tokens < 1:
        raise NanodistillError(f"max_tokens must be at least 1; got {max_tokens}.")
    if temperature < 0:
        raise NanodistillError(f"temperature must be 0 (greedy) or more; got {temperature}.")
    encoded = encode_prompts(student, prompts, instruction)
    sampler = _sampler(float(temperature))
    with student.lock:
        if len(encoded) == 1:
            return [_generate_one(student, encoded[0], reasoning, max_tokens, sampler)]
        return _generate_batch(student, encoded, reasoning, max_tokens, sampler) if encoded else []
