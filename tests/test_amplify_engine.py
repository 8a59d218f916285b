"""Amplification end to end against the local stand-in teacher, reached through LiteLLM."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from nanodistill.amplify.parse import parse_answer, parse_inputs, parse_policy
from nanodistill.amplify.pipeline import amplify
from nanodistill.amplify.quote import quote
from nanodistill.amplify.records import (
    Accepted,
    AmplifyConfig,
    AmplifyHooks,
    AmplifyResult,
    AmplifyState,
    Seed,
)
from nanodistill.amplify.schedule import held_out_size, is_held_out
from nanodistill.data.similarity import NearDuplicateIndex
from nanodistill.errors import NanodistillError
from nanodistill.store.db import Store
from nanodistill.teacher.cache import SqliteTeacherCache
from nanodistill.teacher.client import TeacherClient
from nanodistill.testing import toy_sentiment
from nanodistill.testing.teacher_server import TeacherServer


def _seeds() -> list[Seed]:
    return [Seed(id=i, input=text, output=label) for i, (text, label) in enumerate(toy_sentiment.SEEDS)]


@dataclass
class Recorder:
    """Hooks that keep everything they are told, and can ask to stop after some acceptances."""

    stop_after: int | None = None
    accepted: list[Accepted] = field(default_factory=list)
    traces: dict[int, tuple[str, str, bool]] = field(default_factory=dict)
    policies: list[str] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)
    progress: list[tuple[int, int, str]] = field(default_factory=list)

    async def on_seed_trace(self, seed_id: int, reasoning: str, answer: str, agrees: bool) -> None:
        self.traces[seed_id] = (reasoning, answer, agrees)

    async def on_policy(self, policy: str) -> None:
        self.policies.append(policy)

    async def on_accept(self, example: Accepted) -> None:
        self.accepted.append(example)

    async def on_progress(self, done: int, total: int, stage: str) -> None:
        self.progress.append((done, total, stage))

    async def on_event(self, level: str, message: str, data: dict[str, Any]) -> None:
        self.events.append((level, message))

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.accepted) >= self.stop_after

    def hooks(self) -> AmplifyHooks:
        return AmplifyHooks(
            self.on_seed_trace, self.on_policy, self.on_accept, self.on_progress, self.on_event, self.should_stop
        )

    def state(self) -> AmplifyState:
        """What a job that recorded these calls would resume with."""
        return AmplifyState(
            traced={k: v[0] for k, v in self.traces.items()},
            policy=self.policies[-1] if self.policies else None,
            accepted_inputs=[e.input for e in self.accepted],
        )


def _teacher(server: TeacherServer, store: Store | None = None, **kwargs: Any) -> TeacherClient:
    kwargs.setdefault("backoff_base_s", 0.05)
    cache = SqliteTeacherCache(store, "job_test") if store is not None else None
    return TeacherClient(server.model, api_base=server.url, cache=cache, **kwargs)


async def _amplify(
    teacher: TeacherClient, recorder: Recorder, state: AmplifyState | None = None, **config: Any
) -> AmplifyResult:
    return await amplify(
        _seeds(),
        instruction=toy_sentiment.INSTRUCTION,
        teacher=teacher,
        config=AmplifyConfig(**config),
        state=state or AmplifyState(),
        hooks=recorder.hooks(),
    )


@pytest.mark.anyio
async def test_ten_seeds_become_sixty_distinct_labelled_examples(server: TeacherServer, store: Store) -> None:
    recorder = Recorder()
    teacher = _teacher(server, store, concurrency=8)
    result = await _amplify(teacher, recorder, target_size=60, concurrency=8)

    assert result.stopped_reason == "target" and result.total_examples == 60
    assert result.accepted_train + result.accepted_test == len(recorder.accepted) == 50
    assert result.accepted_test == held_out_size(50, 0.1) == sum(e.split == "test" for e in recorder.accepted)
    assert result.seeds_traced == 10 and result.agreement_rate == 1.0
    assert set(recorder.traces) == {s.id for s in _seeds()} and len(recorder.policies) == 1

    index = NearDuplicateIndex(0.9)
    assert all(index.add_if_new(text) for text in [s.input for s in _seeds()] + [e.input for e in recorder.accepted])
    assert all(e.output == toy_sentiment.label(e.input) for e in recorder.accepted)
    assert all(
        e.reasoning and e.provenance["generation_call"] and e.provenance["answer_calls"] for e in recorder.accepted
    )
    assert _seeds() == [Seed(id=i, input=t, output=o) for i, (t, o) in enumerate(toy_sentiment.SEEDS)]

    assert server.calls == teacher.totals.calls == result.teacher["calls"]
    assert server.calls_by_kind["trace"] == 10 and server.calls_by_kind["policy"] == 1
    assert recorder.progress[-1] == (60, 60, "amplifying")


@pytest.mark.anyio
async def test_a_resumed_job_continues_from_its_state_and_cache(server: TeacherServer, store: Store) -> None:
    first = Recorder(stop_after=20)
    stopped = await _amplify(_teacher(server, store), first, target_size=60)
    assert stopped.stopped_reason == "cancelled" and len(first.accepted) >= 20

    calls_before = dict(server.calls_by_kind)
    second = Recorder()
    teacher = _teacher(server, store)
    result = await _amplify(teacher, second, first.state(), target_size=60)

    assert result.stopped_reason == "target" and result.total_examples == 60
    assert len(first.accepted) + len(second.accepted) == 50
    assert not {e.input for e in first.accepted} & {e.input for e in second.accepted}
    assert server.calls_by_kind["trace"] == calls_before["trace"]
    assert server.calls_by_kind["policy"] == calls_before["policy"]
    assert teacher.totals.cached_calls > 0
    held_out = sum(e.split == "test" for e in first.accepted + second.accepted)
    assert held_out == sum(is_held_out(i, 50, held_out_size(50, 0.1)) for i in range(50))


@pytest.mark.anyio
async def test_malformed_and_empty_replies_are_skipped(server: TeacherServer) -> None:
    server.faults.malformed = 6
    server.faults.empty = 3
    recorder = Recorder()
    result = await _amplify(_teacher(server), recorder, target_size=40, concurrency=4)
    assert result.stopped_reason == "target" and len(recorder.accepted) == 30
    # every bad reply is an original (sent back once: a repair) or a repair that came back bad (malformed)
    repairs, repaired = result.teacher["repairs"], result.teacher["repaired"]
    assert repairs + result.malformed_replies == 9 and repaired == repairs - result.malformed_replies
    assert any(level == "warning" for level, _ in recorder.events)


@pytest.mark.anyio
async def test_rate_limits_server_errors_and_hangs_are_ridden_out(server: TeacherServer) -> None:
    server.faults.retry_after_s = 0.2
    server.faults.rate_limit = 3
    server.faults.server_error = 3
    server.faults.hang = 1
    teacher = _teacher(server, timeout_s=1)
    result = await _amplify(teacher, Recorder(), target_size=30, concurrency=4)
    assert result.stopped_reason == "target" and result.total_examples == 30
    assert teacher.totals.retries == 7


@pytest.mark.anyio
async def test_a_teacher_that_never_answers_readably_fails_clearly(server: TeacherServer) -> None:
    server.faults.malformed = 10_000
    with pytest.raises(NanodistillError, match="could not be read"):
        await _amplify(_teacher(server), Recorder(), target_size=40, concurrency=4)


@pytest.mark.anyio
async def test_seed_disagreements_are_explained_and_answer_disagreements_dropped(server: TeacherServer) -> None:
    server.faults.wrong_answers = 11
    recorder = Recorder()
    result = await _amplify(_teacher(server), recorder, target_size=20, concurrency=1, self_consistency=2)

    assert result.agreement_rate == 0.0 and server.calls_by_kind["explain"] == 10
    for seed in _seeds():
        reasoning, answer, agrees = recorder.traces[seed.id]
        assert not agrees and answer != seed.output and seed.output in reasoning
    assert result.disagreements_dropped == 1
    assert result.stopped_reason == "target" and len(recorder.accepted) == 10
    assert all(e.output == toy_sentiment.label(e.input) and e.provenance["votes"] == "2/2" for e in recorder.accepted)


@pytest.mark.anyio
async def test_budget_stops_the_job_cleanly(server: TeacherServer) -> None:
    teacher = _teacher(server, concurrency=4, input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    recorder = Recorder()
    result = await _amplify(teacher, recorder, target_size=300, concurrency=4, max_cost_usd=0.01)
    assert result.stopped_reason == "budget"
    assert 0.007 <= teacher.totals.cost_usd <= 0.01 and teacher.totals.priced  # within the cap
    assert result.accepted_train + result.accepted_test == len(recorder.accepted) < 290


@pytest.mark.anyio
async def test_an_unpriced_teacher_warns_that_the_budget_cannot_hold(server: TeacherServer) -> None:
    recorder = Recorder()
    await _amplify(_teacher(server), recorder, target_size=12, max_cost_usd=0.01)
    assert any("max_cost_usd cannot be enforced" in message for _, message in recorder.events)


@pytest.mark.anyio
async def test_should_stop_ends_the_run_as_cancelled(server: TeacherServer) -> None:
    server.faults.latency_s = 0.02
    recorder = Recorder(stop_after=5)
    result = await _amplify(_teacher(server), recorder, target_size=200, concurrency=4)
    assert result.stopped_reason == "cancelled"
    assert 5 <= len(recorder.accepted) == result.accepted_train + result.accepted_test < 190


@pytest.mark.anyio
async def test_a_teacher_that_only_repeats_itself_stops_after_max_rounds(server: TeacherServer) -> None:
    result = await _amplify(_teacher(server), Recorder(), target_size=60, similarity_threshold=0.05, max_rounds=2)
    assert result.stopped_reason == "max_rounds" and result.total_examples < 60
    assert result.duplicates_dropped > 0 and result.rounds == 2


@pytest.mark.anyio
async def test_a_quote_makes_six_calls_that_the_job_reuses(server: TeacherServer, store: Store) -> None:
    teacher = _teacher(server, store, input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    config = AmplifyConfig(target_size=60, concurrency=8)
    estimate = await quote(_seeds(), instruction=toy_sentiment.INSTRUCTION, teacher=teacher, config=config)

    # four traces (one alone, three at once: the parallelism probe), a generation and an answer
    assert estimate.sample_calls == 6 and server.calls == 6 and server.calls_by_kind["trace"] == 4
    assert estimate.format_adherence == {"replies": 6, "readable": 6, "repaired": 0, "rate": 1.0}
    assert estimate.projected_calls["trace"] == 10 and estimate.projected_calls["answer"] == 50
    assert estimate.projected_calls["generate"] >= 7
    assert estimate.priced and estimate.projected_cost_usd is not None and estimate.projected_cost_usd > 0
    assert estimate.projected_prompt_tokens > 0 and estimate.estimated_duration_s > 0
    assert len(estimate.sample_inputs) == 8 and estimate.sample_trace is not None

    job_teacher = _teacher(server, store)
    await _amplify(job_teacher, Recorder(), target_size=60, concurrency=8)
    assert job_teacher.totals.cached_calls >= 5


def test_generation_replies_are_read_in_every_common_shape() -> None:
    assert parse_inputs('{"inputs": ["one", {"input": "two\\nlines"}, " "]}') == ["one", "two\nlines"]
    assert parse_inputs('Sure:\n```json\n["a", "b"]\n```') == ["a", "b"]
    assert parse_inputs('1. "first"\n2. second\n   still second\n- third\n\nHope it helps!') == [
        "first",
        "second\nstill second",
        "third",
    ]
    assert parse_inputs('{"inputs": ["cut off') is None
    assert parse_inputs("") is None


def test_answer_and_policy_replies_are_read_in_every_common_shape() -> None:
    assert parse_answer('{"reasoning": "r", "answer": "positive"}') is not None
    structured = parse_answer('```json\n{"Reasoning": "r", "output": {"label": 1}}\n```')
    assert structured is not None and structured.answer == '{"label": 1}'
    broken = parse_answer('{"reasoning": "because \\"great\\"", "answer": "positive"} trailing')
    assert broken is not None and broken.reasoning == 'because "great"'
    labelled = parse_answer("Reasoning: it says great\nso it is good\nAnswer: positive")
    assert labelled is not None and labelled.answer == "positive"
    assert parse_answer('{"reasoning": "cut off') is None
    assert parse_answer('{"reasoning": "", "answer": "x"}') is None
    assert parse_policy("- rule one") == "- rule one"
    assert parse_policy('{"policy": "rule"}') == "rule"
    assert parse_policy('{"reasoning": "cut') is None


def test_the_held_out_slice_is_sized_and_spread_evenly() -> None:
    assert held_out_size(290, 0.1) == 50
    assert held_out_size(1000, 0.1) == 100
    assert held_out_size(50, 0.1) == 12
    assert held_out_size(19, 0.5) == 0
    assert held_out_size(290, 0.0) == 0
    marks = [is_held_out(i, 290, 50) for i in range(290)]
    assert sum(marks) == 50 and sum(marks[:145]) == 25
