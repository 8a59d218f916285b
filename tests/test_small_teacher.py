"""Small and local teachers: JSON mode, a tolerant reader, one repair, an early format verdict, honest quotes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from nanodistill.amplify.parse import parse_answer, parse_inputs
from nanodistill.amplify.pipeline import amplify
from nanodistill.amplify.quote import quote
from nanodistill.amplify.records import AmplifyConfig, AmplifyHooks, AmplifyResult, AmplifyState, Seed
from nanodistill.errors import NanodistillError
from nanodistill.teacher.client import TeacherClient
from nanodistill.testing import toy_sentiment
from nanodistill.testing.teacher_server import TeacherServer, start_teacher_server
from tests.mcp_helpers import call, wait_job


def _seeds() -> list[Seed]:
    return [Seed(id=i, input=text, output=label) for i, (text, label) in enumerate(toy_sentiment.SEEDS)]


def _teacher(server: TeacherServer, **kwargs: Any) -> TeacherClient:
    return TeacherClient(server.model, api_base=server.url, backoff_base_s=0.05, **kwargs)


async def _amplify(teacher: TeacherClient, **config: Any) -> AmplifyResult:
    return await amplify(
        _seeds(),
        instruction=toy_sentiment.INSTRUCTION,
        teacher=teacher,
        config=AmplifyConfig(**config),
        state=AmplifyState(),
        hooks=AmplifyHooks(),
    )


def test_replies_small_models_give_are_read() -> None:
    fenced = parse_answer('Sure!\n```json\n{"reasoning": "it says great", "answer": "positive"}\n```\nAnything else?')
    assert fenced is not None and fenced.answer == "positive"
    unclosed = parse_answer('```json\n{"reasoning": "r", "answer": "negative"}')
    assert unclosed is not None and unclosed.answer == "negative"
    amid = parse_answer('Note {this}. Here: {"reasoning": "r", "answer": "positive"} and {that}.')
    assert amid is not None and amid.answer == "positive"
    quoted = parse_answer("{'reasoning': \"it isn't good\", 'answer': 'negative',}")
    assert quoted is not None and quoted.reasoning == "it isn't good"
    trailing = parse_answer('{"reasoning": "r", "answer": "positive",\n}')
    assert trailing is not None and trailing.answer == "positive"
    line = parse_answer("The review praises the food and the staff.\n**Answer:** positive")
    assert line is not None and line.answer == "positive" and "praises" in line.reasoning
    assert parse_answer("answer: positive") is None  # no reasoning: nothing to teach with
    assert parse_answer("It is an interesting review.") is None
    assert parse_inputs("Here you go: {'inputs': ['one', 'two',]} Enjoy!") == ["one", "two"]


def test_json_mode_is_asked_where_litellm_says_the_provider_has_it(server: TeacherServer) -> None:
    teacher = _teacher(server)
    assert teacher._takes_json_mode()  # an OpenAI-compatible endpoint takes response_format


@pytest.mark.anyio
async def test_fenced_and_prose_wrapped_replies_are_accepted(server: TeacherServer) -> None:
    server.faults.wrapped = 30
    teacher = _teacher(server, concurrency=4)
    result = await _amplify(teacher, target_size=30, concurrency=4)
    assert server.faults.wrapped == 0  # all 30 were sent wrapped
    assert result.stopped_reason == "target" and result.total_examples == 30
    assert result.malformed_replies == 0 and teacher.totals.repairs == 0


@pytest.mark.anyio
async def test_one_repair_request_is_made_and_counted(server: TeacherServer) -> None:
    server.faults.malformed = 1  # the first reply only: its repair comes back readable
    teacher = _teacher(server, concurrency=1)
    result = await _amplify(teacher, target_size=14, concurrency=1)
    assert result.stopped_reason == "target" and result.malformed_replies == 0
    assert result.teacher["repairs"] == 1 and result.teacher["repaired"] == 1
    repair = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert len(repair) == teacher.totals.calls


@pytest.mark.anyio
async def test_a_reply_unreadable_after_its_repair_counts_as_malformed(server: TeacherServer) -> None:
    server.faults.malformed = 2  # the first reply and its repair
    teacher = _teacher(server, concurrency=1)
    result = await _amplify(teacher, target_size=14, concurrency=1)
    assert result.stopped_reason == "target" and result.malformed_replies == 1
    assert result.teacher["repairs"] == 1 and result.teacher["repaired"] == 0


@pytest.mark.anyio
async def test_a_teacher_that_never_follows_the_format_ends_early_with_a_verdict(server: TeacherServer) -> None:
    server.faults.never_json = True
    teacher = _teacher(server, concurrency=4)
    with pytest.raises(NanodistillError) as caught:
        await _amplify(teacher, target_size=100, concurrency=4)
    message = str(caught.value)
    assert f"teacher {server.model} at {server.url} followed the reply format in 0 of 10 replies" in message
    assert "pick a stronger teacher" in message
    assert server.calls < 40  # a target of 100 needs well over 100 calls


@pytest.mark.anyio
async def test_the_quote_reports_format_adherence_and_repairs(server: TeacherServer) -> None:
    server.faults.never_json = True
    estimate = await quote(
        _seeds(), instruction=toy_sentiment.INSTRUCTION, teacher=_teacher(server), config=AmplifyConfig()
    )
    assert estimate.format_adherence == {"replies": 6, "readable": 0, "repaired": 0, "rate": 0.0}
    assert any("followed the reply format in 0 of 6 sample replies" in note for note in estimate.notes)

    server.faults.never_json = False
    server.faults.malformed = 1
    repaired = await quote(
        _seeds()[1:], instruction=toy_sentiment.INSTRUCTION, teacher=_teacher(server), config=AmplifyConfig()
    )
    assert repaired.format_adherence == {"replies": 6, "readable": 6, "repaired": 1, "rate": 1.0}


@pytest.mark.anyio
@pytest.mark.parametrize("serial", [True, False])
async def test_the_quote_measures_the_teachers_parallelism(serial: bool) -> None:
    with start_teacher_server(latency_s=0.3, serial=serial) as server:
        teacher = _teacher(server)
        estimate = await quote(
            _seeds(), instruction=toy_sentiment.INSTRUCTION, teacher=teacher, config=AmplifyConfig(concurrency=32)
        )
    assert estimate.parallelism is not None
    if serial:
        assert round(estimate.parallelism) == 1
        assert any("duration assumes 1 calls in flight" in note for note in estimate.notes)
    else:
        assert estimate.parallelism > 1
    assert estimate.concurrency["ceiling"] == teacher.concurrency
    assert estimate.format_adherence["rate"] == 1.0


@pytest.mark.anyio
async def test_an_amplify_job_fails_with_the_format_verdict(client: Client, home: Path, server: TeacherServer) -> None:
    seeds = [{"input": text, "output": label} for text, label in toy_sentiment.SEEDS]
    await call(client, "create_dataset", name="seeds", examples=seeds, instruction=toy_sentiment.INSTRUCTION)
    server.faults.never_json = True
    started = await call(
        client, "amplify_dataset", dataset="seeds", teacher=server.model, api_base=server.url, target_size=60
    )
    view, _ = await wait_job(client, started["job"]["id"])
    assert view["status"] == "failed", view
    assert f"teacher {server.model}" in view["error"] and "followed the reply format in 0 of" in view["error"]
    assert "pick a stronger teacher" in view["error"]
    assert server.calls < 40
