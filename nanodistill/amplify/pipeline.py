"""Dataset amplification: seeds in, teacher-labelled synthetic examples out, one at a time.

The steps (seed traces, one task policy, new inputs, answers with reasoning, dedup) run as one
pipeline of `concurrency` workers that each take the most useful call available next, so the
teacher always has that many calls in flight: traces first, then the policy, generation ahead
of need to keep a buffer of inputs, answers as soon as the policy exists. Every accepted example
is handed to `hooks.on_accept` the moment it exists, so the caller commits it before going on.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio

from nanodistill.amplify.parse import AnswerReply, closed_labels, parse_answer, parse_inputs, parse_policy
from nanodistill.amplify.records import (
    Accepted,
    AmplifyConfig,
    AmplifyHooks,
    AmplifyResult,
    AmplifyState,
    Seed,
    Split,
    StopReason,
)
from nanodistill.amplify.schedule import held_out_size, is_held_out
from nanodistill.data.similarity import NearDuplicateIndex, normalize
from nanodistill.errors import NanodistillError
from nanodistill.teacher import prompts
from nanodistill.teacher.budget import Verdict, spend_verdict
from nanodistill.teacher.client import Readable, TeacherClient, TeacherReply

REPLY_ATTEMPTS = 4
# A teacher whose JSON replies (after one repair each) were readable in under ADHERENCE_FLOOR of the last
# ADHERENCE_WINDOW, once at least ADHERENCE_MIN_REPLIES are in, cannot give a dataset: the job ends with that
# verdict instead of minutes of retries.
ADHERENCE_WINDOW = 40
ADHERENCE_MIN_REPLIES = 10
ADHERENCE_FLOOR = 0.2
# Nor can one whose answers, readable or not, were kept for under YIELD_FLOOR of the first YIELD_MIN_ANSWERS
# inputs or more (unreadable, outside the seeds' labels, self-contradicting): a small local teacher can
# follow the format often enough and still need hours for a handful of examples.
YIELD_MIN_ANSWERS = 40
YIELD_FLOOR = 0.05
PROMPT_EXAMPLES = 3
STOP_POLL_S = 0.2


def generation_messages(
    seeds: list[Seed], instruction: str, batch_size: int, batch_no: int
) -> tuple[list[dict[str, str]], int]:
    """The prompt for generation call `batch_no` and its diversity hint: seeds shown and hint
    rotate with the call number, and the same call number always gives the same prompt."""
    hint = batch_no % len(prompts.DIVERSITY_HINTS)
    start = batch_no * PROMPT_EXAMPLES % len(seeds)
    shown = [(s.input, s.output) for s in (seeds[start:] + seeds[:start])[:PROMPT_EXAMPLES]]
    return prompts.generate_messages(instruction, shown, batch_size, prompts.DIVERSITY_HINTS[hint], batch_no), hint


@dataclass(frozen=True)
class _Candidate:
    text: str
    generation_key: str
    hint: int


class _Amplification:
    """The mutable state of one run; workers read and update it between awaits only."""

    def __init__(
        self,
        seeds: list[Seed],
        instruction: str,
        teacher: TeacherClient,
        config: AmplifyConfig,
        state: AmplifyState,
        hooks: AmplifyHooks,
    ) -> None:
        self.seeds = seeds
        self.instruction = instruction
        self.teacher = teacher
        self.config = config
        self.hooks = hooks
        self.traced: dict[int, str] = {s.id: s.reasoning for s in seeds if s.reasoning and s.reasoning.strip()}
        ids = {s.id for s in seeds}
        self.traced.update({k: v for k, v in state.traced.items() if k in ids})
        self.agreements = {k: v for k, v in state.agreements.items() if k in ids}
        self.to_trace = deque(s for s in seeds if s.id not in self.traced)
        self.policy = state.policy
        self.index = NearDuplicateIndex(config.similarity_threshold)
        for text in [s.input for s in seeds] + state.accepted_inputs:
            self.index.add(text)
        self.earlier = {normalize(text) for text in state.accepted_inputs}
        self.prior = len(state.accepted_inputs)
        self.synthetic_target = max(config.target_size - len(seeds), 0)
        self.needed = max(self.synthetic_target - self.prior, 0)
        self.held_out = held_out_size(self.synthetic_target, config.test_fraction)
        self.per_round = max(math.ceil(self.needed / config.batch_size), 1)
        self.pending: deque[_Candidate] = deque()
        self.in_flight: Counter[str] = Counter()
        self.call_cost: dict[str, float] = {}  # the dearest network call of each kind so far (USD)
        self.accepted = {"train": 0, "test": 0}
        self.answered = 0
        self.requested_inputs = 0
        self.kept_inputs = 0
        self.generation_calls = 0
        self.replayed_calls = 0
        self.duplicates = 0
        self.disagreements = 0
        self.malformed = 0
        self.readable: deque[bool] = deque(maxlen=ADHERENCE_WINDOW)  # recent JSON replies: read or not
        self.labels = None if config.open_labels else closed_labels([s.output for s in seeds])
        self.rejected: Counter[str] = Counter()
        self.stopped: StopReason | None = None
        self.error: BaseException | None = None
        self.warned_unpriced = False
        self._changed = anyio.Event()
        self._scope = anyio.CancelScope()

    @property
    def accepted_total(self) -> int:
        return self.accepted["train"] + self.accepted["test"]

    async def run(self) -> AmplifyResult:
        await self.hooks.on_event(
            "info",
            f"amplifying {len(self.seeds)} seeds towards {self.config.target_size} examples",
            {"needed": self.needed, "already_accepted": self.prior, "held_out": self.held_out},
        )
        if self.labels is not None:
            await self.hooks.on_event(
                "info",
                f"the seeds define a closed label set ({', '.join(self.labels.values())}); answers outside it "
                "are rejected (open_labels=True keeps them)",
                {"labels": list(self.labels.values())},
            )
        with self._scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_stop)
                async with anyio.create_task_group() as workers:
                    for _ in range(self.config.concurrency):
                        workers.start_soon(self._worker)
                tg.cancel_scope.cancel()
        if self.error is not None:
            raise self.error
        result = self._result()
        await self.hooks.on_event(
            "info", f"amplification stopped: {result.stopped_reason}", result.model_dump(exclude={"teacher"})
        )
        return result

    # -- scheduling -------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _watch_stop(self) -> None:
        """Cancel promptly on request, even while every worker waits on a slow teacher."""
        while True:
            if self.hooks.should_stop():
                self.stopped = "cancelled"
                self._scope.cancel()
                return
            await anyio.sleep(STOP_POLL_S)

    async def _worker(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                if self._finished():
                    self._notify()
                    return
                async with self.teacher.caller_idle():
                    await self._changed.wait()
                continue
            try:
                await job()
            except Exception as exc:
                if self.error is None:
                    self.error = exc
                self._scope.cancel()
                return
            finally:
                self._notify()

    def _budget(self) -> Verdict:
        """Keep the spend within max_cost_usd (`teacher.budget.spend_verdict`: each kind of call priced at
        the dearest of its kind so far)."""
        totals = self.teacher.totals
        if not totals.priced:
            return None  # an unpriced teacher cannot be held to a budget: _warn_unpriced says so
        return spend_verdict(self.config.max_cost_usd, totals.cost_usd, self.call_cost, self.in_flight)

    def _priced(self, kind: str, reply: TeacherReply) -> None:
        if not reply.cached:
            self.call_cost[kind] = max(self.call_cost.get(kind, 0.0), reply.cost_usd or 0.0)

    def _gen_yield(self) -> float:
        return self.kept_inputs / self.requested_inputs if self.requested_inputs else 1.0

    def _accept_rate(self) -> float:
        return self.accepted_total / self.answered if self.answered else 1.0

    def _wants_inputs(self) -> bool:
        """Whether expected acceptances from inputs pending and on their way fall short of need
        (plus one batch of slack, so dropped answers are replaced without waiting)."""
        if self._answered_calls() >= self.config.max_rounds * self.per_round:
            return False
        generating = self.in_flight["generate"] * self.config.batch_size * self._gen_yield()
        coming = len(self.pending) + self.in_flight["answer"] + generating
        return self.accepted_total + coming * self._accept_rate() < self.needed + self.config.batch_size

    def _next_job(self) -> Callable[[], Awaitable[None]] | None:
        if self.stopped is not None:
            return None
        if self.hooks.should_stop():
            self.stopped = "cancelled"
            return None
        budget = self._budget()
        if budget == "stop":
            self.stopped = "budget"
        if budget is not None:
            return None
        if self.to_trace:
            return self._start("trace", partial(self._trace, self.to_trace.popleft()))
        if self.policy is None and not self.in_flight["trace"] and not self.in_flight["policy"]:
            return self._start("policy", self._extract_policy)
        if self.accepted_total >= self.needed:
            return None
        buffered = len(self.pending) + self.in_flight["generate"] * self.config.batch_size
        if buffered < 2 * self.config.concurrency and self._wants_inputs():
            return self._start("generate", self._generate)
        if self.policy is not None and self.pending and self.accepted_total + self.in_flight["answer"] < self.needed:
            return self._start("answer", partial(self._answer, self.pending.popleft()))
        if self._wants_inputs():
            return self._start("generate", self._generate)
        return None

    def _start(self, kind: str, job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        self.in_flight[kind] += 1

        async def tracked() -> None:
            try:
                await job()
            finally:
                self.in_flight[kind] -= 1

        return tracked

    def _finished(self) -> bool:
        if self.stopped is not None:
            return True
        if sum(self.in_flight.values()):
            return False
        if self.accepted_total >= self.needed:
            self.stopped = "target"
            return True
        if not self.pending and not self._wants_inputs():
            self.stopped = "max_rounds"
            return True
        return False

    # -- teacher calls --------------------------------------------------------------------------

    async def _ask(
        self, kind: str, messages: list[dict[str, str]], parse: Callable[[str], Any], tag: str = ""
    ) -> tuple[Any, list[str]]:
        """Ask until the reply parses (up to REPLY_ATTEMPTS, each a distinct cache key)."""
        keys: list[str] = []
        for attempt in range(REPLY_ATTEMPTS):
            read = await self._read(kind, messages, parse, f"{tag}-retry{attempt}" if attempt else tag)
            keys += [reply.key for reply in read.replies]
            if read.value is not None:
                return read.value, keys
        return None, keys

    async def _read(
        self, kind: str, messages: list[dict[str, str]], parse: Callable[[str], Any], seed_tag: str
    ) -> Readable[Any]:
        """One reply, read: the policy is plain text; the other steps ask for JSON, with one repair request
        when the reply cannot be read. Each JSON reply counts towards the teacher's format adherence."""
        temperature = self.config.temperature
        if kind == "policy":
            reply = await self.teacher.complete(messages, temperature=temperature, seed_tag=seed_tag)
            read: Readable[Any] = Readable(parse(reply.text), [reply])
        else:
            read = await self.teacher.complete_readable(messages, parse, temperature=temperature, seed_tag=seed_tag)
            self.readable.append(read.value is not None)
        for reply in read.replies:
            self._priced(kind, reply)
        await self._check_pricing()
        if read.value is None:
            await self._malformed(kind, read.replies[-1].key)
        return read

    async def _malformed(self, kind: str, key: str) -> None:
        self.malformed += 1
        verdict = self._format_verdict()
        if verdict is not None:
            raise NanodistillError(verdict)
        await self.hooks.on_event("warning", f"unreadable teacher reply to one {kind} prompt; skipped", {"key": key})

    def _format_verdict(self) -> str | None:
        """Why the job should stop, once the teacher's recent JSON replies are mostly unreadable."""
        seen, followed = len(self.readable), sum(self.readable)
        if seen < ADHERENCE_MIN_REPLIES or followed >= ADHERENCE_FLOOR * seen:
            return None
        where = f" at {self.teacher.api_base}" if self.teacher.api_base else ""
        return (
            f"teacher {self.teacher.model}{where} followed the reply format in {followed} of {seen} replies "
            f"({followed / seen:.0%}; the other replies could not be read, even when asked again for just the JSON "
            '{"reasoning": ..., "answer": ...} or {"inputs": [...]}): pick a stronger teacher, one that follows '
            "instructions"
        )

    async def _check_pricing(self) -> None:
        """Say once that a budget cannot hold when the teacher's model has no price."""
        if self.config.max_cost_usd is not None and not self.teacher.totals.priced and not self.warned_unpriced:
            self.warned_unpriced = True
            await self.hooks.on_event(
                "warning",
                "max_cost_usd cannot be enforced: LiteLLM has no price for this teacher model "
                "(give the teacher input_cost_per_token / output_cost_per_token)",
                {"model": self.teacher.model},
            )

    # -- steps ----------------------------------------------------------------------------------

    async def _trace(self, seed: Seed) -> None:
        """Solve a seed blind and compare with its gold output; explain the gold when they differ."""
        messages = prompts.trace_messages(self.instruction, seed.input)
        parsed, _ = await self._ask("trace", messages, parse_answer)
        if parsed is None:
            await self.hooks.on_event("warning", f"seed {seed.id} could not be traced", {"seed_id": seed.id})
            return
        agrees = normalize(parsed.answer) == normalize(seed.output)
        reasoning = parsed.reasoning
        if not agrees:
            explained, _ = await self._ask(
                "explain", prompts.explain_messages(self.instruction, seed.input, seed.output), parse_answer
            )
            if explained is None:
                await self.hooks.on_event("warning", f"seed {seed.id} could not be traced", {"seed_id": seed.id})
                return
            reasoning = explained.reasoning
        self.traced[seed.id] = reasoning
        self.agreements[seed.id] = agrees
        with anyio.CancelScope(shield=True):
            await self.hooks.on_seed_trace(seed.id, reasoning, parsed.answer, agrees)
        await self.hooks.on_progress(len(self.traced), self.config.target_size, "tracing seeds")

    def _traced_examples(self) -> list[tuple[str, str, str]]:
        return [(s.input, self.traced.get(s.id, ""), s.output) for s in self.seeds]

    async def _extract_policy(self) -> None:
        messages = prompts.policy_messages(self.instruction, self._traced_examples())
        policy, _ = await self._ask("policy", messages, parse_policy)
        if policy is None:
            raise NanodistillError(
                f"the teacher gave no readable task policy in {REPLY_ATTEMPTS} tries: check that the model "
                "follows instructions, or choose a stronger teacher"
            )
        self.policy = policy
        with anyio.CancelScope(shield=True):
            await self.hooks.on_policy(policy)
        agreed = sum(self.agreements.values())
        await self.hooks.on_event(
            "info",
            f"task policy extracted; the teacher agreed with {agreed} of {len(self.agreements)} seed outputs",
            {"policy_chars": len(policy), "agreement_rate": self._agreement_rate()},
        )

    async def _generate(self) -> None:
        messages, hint = generation_messages(
            self.seeds, self.instruction, self.config.batch_size, self.generation_calls
        )
        self.generation_calls += 1
        read = await self._read("generate", messages, parse_inputs, "")
        if read.replies[0].cached:
            self.replayed_calls += 1
        inputs: list[str] | None = read.value
        batch = [] if inputs is None else inputs[: self.config.batch_size]
        fresh = [text for text in batch if normalize(text) not in self.earlier]
        self.requested_inputs += self.config.batch_size - (len(batch) - len(fresh))
        if inputs is None:
            return
        reply = read.replies[-1]
        for text in fresh:
            if self.index.find(text) is not None:
                self.duplicates += 1
                continue
            self.index.add(text)
            self.kept_inputs += 1
            self.pending.append(_Candidate(text, reply.key, hint))

    async def _answer(self, candidate: _Candidate) -> None:
        """Answer one new input (k times for self-consistency) and accept the majority answer."""
        k = self.config.self_consistency
        samples: list[AnswerReply] = []
        keys: list[str] = []
        messages = prompts.answer_messages(
            self.instruction, self.policy or "", self._traced_examples()[:PROMPT_EXAMPLES], candidate.text
        )
        for i in range(k):
            parsed, call_keys = await self._ask("answer", messages, parse_answer, tag=f"sc{i}" if k > 1 else "")
            keys += call_keys
            if parsed is not None:
                samples.append(parsed)
        self.answered += 1
        samples = await self._on_label(samples)
        self._check_yield(kept=bool(samples))
        if not samples:
            return
        votes = Counter(normalize(s.answer) for s in samples)
        top, count = votes.most_common(1)[0]
        if k > 1 and count * 2 <= k:
            self.disagreements += 1
            return
        chosen = next(s for s in samples if normalize(s.answer) == top)
        if self.labels is not None:  # stored as the seeds spell it, so 'Positive.' and 'positive' are one label
            chosen = AnswerReply(reasoning=chosen.reasoning, answer=self.labels[top])
        await self._accept(candidate, chosen, keys, f"{count}/{k}")

    def _check_yield(self, kept: bool) -> None:
        """End the job with a verdict once the teacher's answers are almost never usable."""
        if kept or self.answered < YIELD_MIN_ANSWERS or self.accepted_total >= YIELD_FLOOR * self.answered:
            return
        where = f" at {self.teacher.api_base}" if self.teacher.api_base else ""
        lost = {"unreadable replies": self.malformed, **self.rejected, "teacher disagreed with itself": self.disagreements}
        why = ", ".join(f"{reason} {n}" for reason, n in lost.items() if n)
        raise NanodistillError(
            f"teacher {self.teacher.model}{where} gave a usable answer for {self.accepted_total} of {self.answered} "
            f"inputs ({why}): pick a stronger teacher, one that follows instructions"
        )

    async def _on_label(self, samples: list[AnswerReply]) -> list[AnswerReply]:
        """The answers inside the seeds' closed label set (all of them when there is none); the others
        are counted as rejected, and the first one is reported."""
        if self.labels is None:
            return samples
        kept = []
        for sample in samples:
            if normalize(sample.answer) in self.labels:
                kept.append(sample)
                continue
            if not self.rejected["off_label"]:
                await self.hooks.on_event(
                    "warning",
                    f"the teacher answered {sample.answer[:80]!r}, outside the seeds' labels; rejected "
                    "(such answers are counted in the result's rejected.off_label)",
                    {"answer": sample.answer[:200]},
                )
            self.rejected["off_label"] += 1
        return kept

    async def _accept(self, candidate: _Candidate, chosen: AnswerReply, keys: list[str], votes: str) -> None:
        if self.accepted_total >= self.needed:
            return
        index = self.prior + self.accepted_total
        split: Split = "test" if is_held_out(index, self.synthetic_target, self.held_out) else "train"
        self.accepted[split] += 1
        example = Accepted(
            input=candidate.text,
            output=chosen.answer,
            reasoning=chosen.reasoning,
            split=split,
            provenance={
                "source": "synthetic",
                "generation_call": candidate.generation_key,
                "answer_calls": keys,
                "diversity_hint": prompts.DIVERSITY_HINTS[candidate.hint],
                "votes": votes,
            },
        )
        with anyio.CancelScope(shield=True):
            await self.hooks.on_accept(example)
        done = len(self.seeds) + self.prior + self.accepted_total
        await self.hooks.on_progress(done, self.config.target_size, "amplifying")
        await self.hooks.on_tally(self._tally())

    # -- result ---------------------------------------------------------------------------------

    def _agreement_rate(self) -> float | None:
        return sum(self.agreements.values()) / len(self.agreements) if self.agreements else None

    def _answered_calls(self) -> int:
        """Generation calls the teacher answered, the ones rounds count. Calls the cache replays (a resumed
        job asks its earlier attempts' prompts again) are not: their inputs are mostly stored already, and
        counting them stopped resumed jobs as if the teacher kept repeating itself."""
        return self.generation_calls - self.replayed_calls

    def _tally(self) -> dict[str, Any]:
        """Examples accepted and dropped (and why) so far, under the result's names."""
        return {
            "accepted_train": self.accepted["train"],
            "accepted_test": self.accepted["test"],
            "duplicates_dropped": self.duplicates,
            "disagreements_dropped": self.disagreements,
            "malformed_replies": self.malformed,
            "rejected": dict(self.rejected),
        }

    def _result(self) -> AmplifyResult:
        return AmplifyResult(
            **self._tally(),
            total_examples=len(self.seeds) + self.prior + self.accepted_total,
            seeds_traced=len(self.agreements),
            agreement_rate=self._agreement_rate(),
            generation_calls=self.generation_calls,
            rounds=math.ceil(self._answered_calls() / self.per_round),
            stopped_reason=self.stopped or "target",
            teacher=self.teacher.totals.as_dict(),
        )


async def amplify(
    seeds: list[Seed],
    *,
    instruction: str,
    teacher: TeacherClient,
    config: AmplifyConfig,
    state: AmplifyState,
    hooks: AmplifyHooks,
) -> AmplifyResult:
    """Amplify `seeds` towards `config.target_size` examples; stops on target, rounds, budget or
    cancel. Raises NanodistillError when the teacher's replies cannot be read at all, and
    TeacherError when the teacher cannot be reached after retries."""
    if not seeds:
        raise NanodistillError("amplify needs seed examples: add at least one input/output pair to the dataset")
    return await _Amplification(seeds, instruction, teacher, config, state, hooks).run()
