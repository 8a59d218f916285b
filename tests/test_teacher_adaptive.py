"""Adaptive concurrency and hedging: the limiter's arithmetic on its own, the gate's served clock, and
the client and amplify job against stand-in teachers that serve one call at a time or lose calls.

Nothing here asserts a timing: only counts and outcomes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client

from nanodistill.teacher.adaptive import AdaptiveLimit, EndpointGate, Outcome, Slot, TailTracker, endpoint_gate
from nanodistill.teacher.client import TeacherClient
from nanodistill.testing import toy_sentiment
from nanodistill.testing.teacher_server import TeacherServer, start_teacher_server
from tests.mcp_helpers import call, wait_job

HELLO = [{"role": "user", "content": "hello teacher"}]
SEEDS = [{"input": text, "output": label} for text, label in toy_sentiment.SEEDS]


def _serve(limit: AdaptiveLimit, in_flight: int, latency: float) -> None:
    """One reply from an endpoint where `in_flight` calls were out and each took `latency`."""
    limit.on_success(latency, delivered=in_flight, span_s=latency, in_flight=in_flight, epoch=limit.epoch)


# -- the limiter's arithmetic -------------------------------------------------------------------------


def test_the_first_burst_goes_out_at_once_and_the_fastest_reply_is_the_baseline() -> None:
    limit = AdaptiveLimit(32)
    assert limit.slots == 32 and limit.parallelism == 1 and limit.baseline_s is None
    assert AdaptiveLimit(32, burst=8).slots == 8 and AdaptiveLimit(4).slots == 4
    _serve(limit, 1, 0.9)  # the first reply also paid for connecting
    _serve(limit, 2, 0.5)
    assert limit.baseline_s == 0.5 and limit.slots == 32 and limit.decreases == 0


def test_a_serial_server_answering_the_first_burst_one_by_one_gets_a_lone_call_then_settles() -> None:
    limit = AdaptiveLimit(32)
    setup, service = 0.5, 0.3  # every reply of the burst also waited for the client's first-request setup
    for k in range(1, 33):  # all 32 sent at once; the k-th reply waited for the k - 1 before it
        latency = setup + k * service
        limit.on_success(latency, delivered=k, span_s=latency, in_flight=32, epoch=limit.epoch)
        if k == 3:
            assert limit.decreases == 1 and limit.remeasure and limit.slots == 1
    assert limit.baseline_s == setup + service and limit.parallelism > 1  # measured against the setup
    # the burst drained, one call went alone: the endpoint's own latency
    limit.on_success(service, delivered=1, span_s=service, in_flight=1, epoch=limit.epoch, alone=True)
    assert not limit.remeasure and limit.baseline_s == service and limit.parallelism == 1
    for _ in range(10):
        n = limit.slots  # n calls out at a serial server: each waits for the others
        limit.on_success(n * service, delivered=n, span_s=n * service, in_flight=n, epoch=limit.epoch)
    assert limit.slots == 2 and limit.parallelism == 1 and not limit.remeasure


def test_a_lone_call_measured_before_needs_no_remeasure() -> None:
    limit = AdaptiveLimit(8)
    limit.on_success(0.2, delivered=1, span_s=0.2, in_flight=1, epoch=0, alone=True)
    limit.on_success(0.8, delivered=2, span_s=0.8, in_flight=8, epoch=0)  # queued behind ours
    assert limit.decreases == 1 and not limit.remeasure and limit.slots == 4


def test_a_parallel_server_answering_the_first_burst_together_keeps_the_limit() -> None:
    limit = AdaptiveLimit(16)
    for k in range(1, 17):  # replies late by the same setup delay, in one clump
        limit.on_success(0.9, delivered=k, span_s=0.9, in_flight=16, epoch=limit.epoch)
    assert limit.slots == 16 and limit.parallelism == 16 and limit.decreases == 0 and not limit.remeasure


def test_additive_increase_up_to_the_ceiling_while_latency_holds() -> None:
    limit = AdaptiveLimit(32, burst=4)
    for _ in range(200):
        _serve(limit, limit.slots, 0.2)
    assert limit.slots == 32 and limit.decreases == 0
    assert limit.parallelism == 32


def test_no_increase_without_demand() -> None:
    limit = AdaptiveLimit(32, burst=8)
    _serve(limit, 1, 0.2)
    for _ in range(50):
        _serve(limit, 1, 0.2)  # one call at a time says nothing about a higher limit
    assert limit.slots == 8


def test_rising_latency_brings_the_limit_down_to_what_a_serial_server_serves() -> None:
    limit = AdaptiveLimit(32)
    limit.on_success(0.3, delivered=1, span_s=0.3, in_flight=1, epoch=0, alone=True)  # the baseline
    assert limit.slots == 32
    for _ in range(20):
        n = limit.slots  # a serial server: n calls out, each waits for the others
        limit.on_success(n * 0.3, delivered=n, span_s=n * 0.3, in_flight=n, epoch=limit.epoch)
    assert limit.slots == 2 and limit.parallelism == 1 and limit.decreases >= 1


def test_a_drop_halves_the_limit_once_per_epoch_and_never_below_one() -> None:
    limit = AdaptiveLimit(32, limit=16.0)
    sent_before = limit.epoch
    limit.on_drop(epoch=sent_before)
    assert limit.slots == 8 and not limit.slow_start
    limit.on_drop(epoch=sent_before)  # sent under the old limit: no second decrease
    assert limit.slots == 8
    for _ in range(10):
        limit.on_drop(epoch=limit.epoch)
    assert limit.slots == 1 and limit.limit >= 1.0


def test_after_a_drop_the_limit_grows_by_one_per_round_trip() -> None:
    limit = AdaptiveLimit(64)
    for _ in range(100):
        _serve(limit, limit.slots, 0.2)
    limit.on_drop(epoch=limit.epoch)
    assert limit.slots == 32
    for _ in range(33):  # about one limit's worth of replies
        _serve(limit, limit.slots, 0.2)
    assert limit.slots == 33


def test_the_ceiling_holds_and_a_bad_ceiling_is_refused() -> None:
    limit = AdaptiveLimit(4)
    for _ in range(100):
        _serve(limit, limit.slots, 0.1)
    assert limit.slots == 4
    with pytest.raises(ValueError):
        AdaptiveLimit(0)


def test_stale_replies_do_not_raise_the_limit() -> None:
    limit = AdaptiveLimit(32, limit=16.0, baseline_s=0.2)
    old = limit.epoch
    limit.on_drop(epoch=old)
    for _ in range(20):
        limit.on_success(0.2, delivered=8, span_s=0.2, in_flight=8, epoch=old)
    assert limit.slots == 8


def test_hedging_waits_for_peers_then_uses_three_times_their_p95_with_a_floor() -> None:
    tail = TailTracker()
    tail.add(0.1)
    tail.add(0.1)
    assert tail.hedge_after_s() is None
    tail.add(0.1)
    assert tail.hedge_after_s() == 0.5  # the floor
    for _ in range(100):
        tail.add(2.0)
    assert tail.hedge_after_s() == 6.0


# -- the gate -----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_served_clock_waits_for_our_own_calls_ahead() -> None:
    gate = EndpointGate(8, same_time_s=0)  # every call sent at its own moment
    gate.limit.limit = 4.0  # allowed 4, but the endpoint has shown it serves 1 at once
    first, second = await gate.acquire(), await gate.acquire()
    assert first.served_at is not None and second.served_at is None
    gate.release(first, Outcome.IGNORE)
    assert second.served_at is not None
    gate.release(second, Outcome.IGNORE)


@pytest.mark.anyio
async def test_calls_sent_at_the_same_moment_wait_until_one_is_left() -> None:
    gate = EndpointGate(8, same_time_s=math.inf)  # every call counts as sent with the others
    first = await gate.acquire()
    deadlines: list[float] = []
    first.watch_clock(deadlines.append)
    assert first.served_at is not None  # alone so far
    second, third = await gate.acquire(), await gate.acquire()
    # the first of a burst may reach a serial server last: its clock stops again
    assert first.served_at is None and second.served_at is None and third.served_at is None
    assert deadlines[-1] == math.inf
    gate.release(second, Outcome.IGNORE)
    assert first.served_at is None and third.served_at is None
    gate.release(third, Outcome.IGNORE)
    assert first.served_at is not None and deadlines[-1] == first.served_at
    gate.release(first, Outcome.IGNORE)


@pytest.mark.anyio
async def test_the_gate_admits_in_order_up_to_the_limit() -> None:
    gate = EndpointGate(8)
    gate.limit.limit = 1.0  # as after backing off to one call at a time
    order: list[int] = []
    first = await gate.acquire()

    async def caller(i: int) -> None:
        slot = await gate.acquire()
        order.append(i)
        gate.release(slot, Outcome.IGNORE)

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(caller, i)
        await anyio.wait_all_tasks_blocked()
        assert gate.in_flight == 1 and not order
        gate.release(first, Outcome.IGNORE)
    assert order == [0, 1, 2, 3, 4]


@pytest.mark.anyio
async def test_a_remeasure_drains_our_calls_then_sends_one_alone() -> None:
    gate = EndpointGate(8)
    out = [await gate.acquire() for _ in range(3)]
    gate.limit.remeasure = True  # as after the first burst showed a queue
    admitted: list[Slot] = []

    async def caller() -> None:
        admitted.append(await gate.acquire())

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        tg.start_soon(caller)
        for slot in out:
            await anyio.wait_all_tasks_blocked()
            assert not admitted
            gate.release(slot, Outcome.IGNORE)
        await anyio.wait_all_tasks_blocked()
        assert len(admitted) == 1 and admitted[0].alone and gate.in_flight == 1
        gate.release(admitted[0], Outcome.SUCCESS)  # timed alone: the baseline
    assert not gate.limit.remeasure and gate.limit.measured_alone and gate.limit.slots == 8
    assert len(admitted) == 2 and gate.in_flight == 1
    gate.release(admitted[1], Outcome.IGNORE)


@pytest.mark.anyio
async def test_clients_of_one_endpoint_share_its_gate() -> None:
    a = endpoint_gate("openai/m", "http://127.0.0.1:9/v1", 4)
    b = endpoint_gate("openai/m", "http://127.0.0.1:9/v1/", 16)
    assert a is b and a.limit.ceiling == 16
    assert endpoint_gate("openai/other", "http://127.0.0.1:9/v1", 4) is not a


# -- the client against stand-ins ---------------------------------------------------------------------


@pytest.fixture
def serial_teacher() -> Iterator[TeacherServer]:
    with start_teacher_server(latency_s=0.2, serial=True) as server:
        yield server


@pytest.mark.anyio
async def test_a_serial_server_gets_no_timeouts_and_the_limit_settles_low(serial_teacher: TeacherServer) -> None:
    # timeout_s is below what the eighth of eight queued calls waits: only the served clock saves it
    client = TeacherClient(serial_teacher.model, api_base=serial_teacher.url, concurrency=8, timeout_s=1.0)
    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(client.complete, [{"role": "user", "content": f"call {i}"}])
    assert client.totals.timeouts == 0 and client.totals.retries == 0
    assert client.totals.calls == serial_teacher.calls == 20
    report = client.concurrency_report()
    assert 1 <= report["limit"] <= 2 and report["parallelism"] == 1


@pytest.mark.anyio
async def test_a_429_halves_the_limit(server: TeacherServer) -> None:
    client = TeacherClient(server.model, api_base=server.url, concurrency=8, backoff_base_s=0.05)
    await client.complete(HELLO)
    assert client.concurrency_report()["limit"] == 8
    server.faults.retry_after_s = 0.05
    server.faults.rate_limit = 1
    await client.complete([{"role": "user", "content": "again"}])
    assert client.totals.retries == 1 and client.concurrency_report()["limit"] == 4


@pytest.mark.anyio
async def test_a_stalled_call_is_hedged_and_the_copy_answers(server: TeacherServer) -> None:
    client = TeacherClient(server.model, api_base=server.url, concurrency=8, timeout_s=120)
    for i in range(5):  # peers, so that "far longer than its peers" means something
        await client.complete([{"role": "user", "content": f"peer {i}"}])
    server.faults.stall_every = server.calls + 1  # the very next request never answers
    reply = await client.complete(HELLO)
    assert reply.text == "echo: hello teacher"
    assert server.stalled == 1 and max(server.bodies.values()) == 2  # the same request, twice
    assert client.totals.hedges == 1 and client.totals.hedge_wins == 1 and client.totals.timeouts == 0
    assert client.totals.calls == 7  # both copies are paid for


# -- amplify jobs -------------------------------------------------------------------------------------


async def _amplify_job(client: Client, teacher: TeacherServer, **args: object) -> dict[str, object]:
    await call(client, "create_dataset", name="reviews", examples=SEEDS, instruction=toy_sentiment.INSTRUCTION)
    started = await call(
        client, "amplify_dataset", dataset="reviews", teacher=teacher.model, api_base=teacher.url, **args
    )
    view, events = await wait_job(client, started["job"]["id"])
    assert view["status"] == "succeeded", view
    return {"view": view, "events": events}


@pytest.mark.anyio
async def test_an_amplify_job_against_a_serial_teacher_settles_on_one_or_two(
    client: Client, home: Path, serial_teacher: TeacherServer
) -> None:
    ran = await _amplify_job(client, serial_teacher, target_size=24, concurrency=8)
    view = ran["view"]
    assert isinstance(view, dict)
    result = view["result"]
    assert result["total_examples"] == 24
    assert result["teacher"]["timeouts"] == 0 and result["teacher"]["retries"] == 0
    assert 1 <= result["teacher_concurrency"]["limit"] <= 2
    assert result["teacher_concurrency"]["ceiling"] == 8
    assert serial_teacher.max_in_flight <= 8
    events = ran["events"]
    assert isinstance(events, list)
    assert any("settled on" in e["message"] and e["data"]["limit"] <= 2 for e in events)


@pytest.mark.anyio
async def test_an_amplify_job_with_a_lost_call_hedges_it_and_finishes(
    client: Client, home: Path, server: TeacherServer
) -> None:
    server.faults.stall_every = 20
    ran = await _amplify_job(client, server, target_size=40)
    view = ran["view"]
    assert isinstance(view, dict)
    result = view["result"]
    assert result["total_examples"] == 40
    assert server.stalled >= 1 and max(server.bodies.values()) >= 2
    assert result["teacher"]["hedges"] >= server.stalled and result["teacher"]["timeouts"] == 0
    assert result["teacher_concurrency"]["ceiling"] == 32  # the default ceiling
