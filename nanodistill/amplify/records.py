"""What goes into and comes out of an amplification: seeds, settings, resume state, hooks, results."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

Split = Literal["train", "test"]
StopReason = Literal["target", "max_rounds", "budget", "cancelled"]


class Seed(BaseModel):
    id: int
    input: str
    output: str
    reasoning: str | None = None


class AmplifyConfig(BaseModel):
    """How far and how to amplify.

    `target_size` counts every accepted example, seeds included. `test_fraction` of the
    synthetic examples is marked `test` for a held-out slice (see `schedule.held_out_size`).
    A round is as many generation calls as cover the remaining target once; `max_rounds`
    bounds them, so a teacher that keeps repeating itself cannot loop forever. When the seed
    outputs form a closed label set (see `parse.closed_labels`), answers outside it are rejected
    unless `open_labels` says the task may have labels the seeds do not show.
    """

    target_size: int = Field(default=100, ge=1)
    test_fraction: float = Field(default=0.1, ge=0, lt=1)
    concurrency: int = Field(default=8, ge=1)
    temperature: float = Field(default=0.7, ge=0, le=2)
    batch_size: int = Field(default=8, ge=1, le=50)
    self_consistency: int = Field(default=1, ge=1, le=9)
    max_rounds: int = Field(default=5, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)
    similarity_threshold: float = Field(default=0.9, gt=0, le=1)
    open_labels: bool = False


class AmplifyState(BaseModel):
    """What a resumed job already has, so nothing is traced, extracted or accepted twice, and its result
    covers every attempt (`agreements`: whether the teacher agreed with the gold output of each seed it
    traced, by seed id)."""

    traced: dict[int, str] = Field(default_factory=dict)
    agreements: dict[int, bool] = Field(default_factory=dict)
    policy: str | None = None
    accepted_inputs: list[str] = Field(default_factory=list)


class Accepted(BaseModel):
    input: str
    output: str
    reasoning: str
    split: Split
    provenance: dict[str, Any]


class AmplifyResult(BaseModel):
    accepted_train: int
    accepted_test: int
    total_examples: int
    seeds_traced: int
    agreement_rate: float | None
    duplicates_dropped: int
    disagreements_dropped: int
    malformed_replies: int
    rejected: dict[str, int] = Field(
        default_factory=dict, description="Answers dropped by reason, e.g. off_label: outside the seeds' labels."
    )
    generation_calls: int
    rounds: int
    stopped_reason: StopReason
    teacher: dict[str, Any]


async def _ignore_trace(seed_id: int, reasoning: str, teacher_answer: str, agrees: bool) -> None:
    return None


async def _ignore_policy(policy: str) -> None:
    return None


async def _ignore_accept(example: Accepted) -> None:
    return None


async def _ignore_progress(done: int, total: int, stage: str) -> None:
    return None


async def _ignore_event(level: str, message: str, data: dict[str, Any]) -> None:
    return None


async def _ignore_tally(tally: dict[str, Any]) -> None:
    return None


def _never_stop() -> bool:
    return False


@dataclass
class AmplifyHooks:
    """How the caller hears about results as they happen; each hook is awaited before going on,
    so an example the caller has committed is never lost to a later crash. `should_stop` is
    polled between calls and several times a second: keep it to reading a flag."""

    on_seed_trace: Callable[[int, str, str, bool], Awaitable[None]] = _ignore_trace
    on_policy: Callable[[str], Awaitable[None]] = _ignore_policy
    on_accept: Callable[[Accepted], Awaitable[None]] = _ignore_accept
    on_progress: Callable[[int, int, str], Awaitable[None]] = _ignore_progress
    on_event: Callable[[str, str, dict[str, Any]], Awaitable[None]] = _ignore_event
    should_stop: Callable[[], bool] = _never_stop
    on_tally: Callable[[dict[str, Any]], Awaitable[None]] = _ignore_tally  # accepted and dropped so far
