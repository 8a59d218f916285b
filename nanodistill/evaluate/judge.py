"""The `judge` metric: the teacher grades each answer against the gold answer and the instruction.

Every call goes through the job's `TeacherClient`, so the cache, the cost ledger and the
concurrency bound apply to grading as to amplifying. A reply must be one JSON object with a
score in [0, 1] and a one-line reason; a malformed or out-of-range reply is asked once more,
then the answer is left unjudged (score None, counted on the card) rather than given a made-up
score. An empty answer, or one identical to the gold answer, is decided without a call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from nanodistill.evaluate.metrics import normalize_text, parse_json_object
from nanodistill.teacher.budget import SpendCap
from nanodistill.teacher.client import TeacherClient

JUDGE_MARKER = "[nanodistill:judge]"
MAX_TEXT_CHARS = 4000
MAX_REASON_CHARS = 200
JUDGE_MAX_TOKENS = 200
OVER_BUDGET = "unjudged: max_cost_usd reached before this answer was graded"
_SECTION = r"<{0}>\n(.*?)\n</{0}>"

RUBRIC = (
    "Grade the candidate answer against the reference answer for this task.\n"
    "- 1.0: says what the reference says (same facts, same required format); wording may differ.\n"
    "- 0.5: partly right: some required content or format is missing or wrong.\n"
    "- 0.0: wrong, empty, off-task, or contradicts the reference.\n"
    "Use any score in between where it fits. Judge only against the reference and the task."
)
_REPLY_FORMAT = 'Reply with one JSON object and nothing else: {"score": <number from 0 to 1>, "reason": "<one line>"}'
_AGAIN = 'That reply was not one JSON object with a numeric "score" from 0 to 1 and a "reason". ' + _REPLY_FORMAT


@dataclass(frozen=True)
class JudgeItem:
    """One answer to grade: the task input, its gold answer, and the answer given."""

    input: str
    gold: str
    answer: str


@dataclass(frozen=True)
class Judgement:
    """A grade in [0, 1] with its reason, or `score=None` when the teacher never gave a usable one."""

    score: float | None
    reason: str
    calls: int = 0


def _clip(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return text[:MAX_TEXT_CHARS] + f"\n[... {len(text) - MAX_TEXT_CHARS} more characters not shown]"


def judge_messages(instruction: str, item: JudgeItem) -> list[dict[str, str]]:
    """The grading prompt; very long texts are cut so one rambling answer cannot blow the context."""
    system = (
        f"{JUDGE_MARKER}\nYou grade answers for this task:\n"
        f"{instruction.strip() or '(no instruction given: infer the task from the reference answer)'}"
    )
    user = (
        f"{RUBRIC}\n<input>\n{_clip(item.input)}\n</input>\n<reference>\n{_clip(item.gold)}\n</reference>\n"
        f"<candidate>\n{_clip(item.answer)}\n</candidate>\n{_REPLY_FORMAT}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def judge_request(messages: Sequence[dict[str, str]]) -> JudgeItem | None:
    """The item a grading prompt asks about (read by the local stand-in teacher), else None."""
    if not messages or JUDGE_MARKER not in (messages[0].get("content") or "") or len(messages) < 2:
        return None
    user = messages[1].get("content") or ""
    parts = [re.search(_SECTION.format(tag), user, re.DOTALL) for tag in ("input", "reference", "candidate")]
    if any(p is None for p in parts):
        return None
    found = [p.group(1) for p in parts if p is not None]
    return JudgeItem(input=found[0], gold=found[1], answer=found[2])


def parse_judge_reply(text: str) -> Judgement | None:
    """The grade in a reply, or None when it is not a JSON object with a finite score in [0, 1]."""
    reply = parse_json_object(text)
    if reply is None:
        return None
    value = reply.get("score")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if not 0 <= value <= 1:
        return None
    reason = reply.get("reason")
    line = " ".join(reason.split()) if isinstance(reason, str) else ""
    if len(line) > MAX_REASON_CHARS:
        line = line[: MAX_REASON_CHARS - 1] + "…"
    return Judgement(score=float(value), reason=line or "(no reason given)")


def decided_without_teacher(item: JudgeItem) -> Judgement | None:
    """An empty answer to a non-empty gold is wrong and a copy of the gold is right; no call needed."""
    if normalize_text(item.answer) == normalize_text(item.gold):
        return Judgement(score=1.0, reason="identical to the gold answer")
    if not item.answer.strip():
        return Judgement(score=0.0, reason="empty answer")
    return None


async def judge_one(
    teacher: TeacherClient, instruction: str, item: JudgeItem, cap: SpendCap | None = None
) -> Judgement:
    """Grade one answer: one call, one more if the reply is unusable, then unjudged. Under a `cap` the
    grading waits for budget and is left unjudged when none is left."""
    decided = decided_without_teacher(item)
    if decided is not None:
        return decided
    if cap is None:
        return await _grade(teacher, instruction, item, [])
    if not await cap.claim("judge"):
        return Judgement(score=None, reason=OVER_BUDGET)
    paid: list[float | None] = []
    try:
        return await _grade(teacher, instruction, item, paid)
    finally:
        cap.release("judge", sum(c or 0.0 for c in paid))


async def _grade(teacher: TeacherClient, instruction: str, item: JudgeItem, paid: list[float | None]) -> Judgement:
    messages = judge_messages(instruction, item)
    first = await teacher.complete(messages, temperature=0.0, max_tokens=JUDGE_MAX_TOKENS)
    paid.append(None if first.cached else first.cost_usd)
    grade = parse_judge_reply(first.text)
    if grade is not None:
        return Judgement(grade.score, grade.reason, calls=1)
    again = [*messages, {"role": "assistant", "content": first.text}, {"role": "user", "content": _AGAIN}]
    second = await teacher.complete(again, temperature=0.0, max_tokens=JUDGE_MAX_TOKENS)
    paid.append(None if second.cached else second.cost_usd)
    grade = parse_judge_reply(second.text)
    if grade is not None:
        return Judgement(grade.score, grade.reason, calls=2)
    shown = " ".join(second.text.split())[:80]
    return Judgement(score=None, reason=f"unjudged: two unusable replies (last: {shown!r})", calls=2)


async def judge_answers(
    teacher: TeacherClient, instruction: str, items: Sequence[JudgeItem], cap: SpendCap | None = None
) -> list[Judgement]:
    """Grade every item concurrently (the teacher client bounds how many calls are in flight)."""
    results: list[Judgement | None] = [None] * len(items)

    async def grade(index: int) -> None:
        results[index] = await judge_one(teacher, instruction, items[index], cap)

    async with anyio.create_task_group() as group:
        for index in range(len(items)):
            group.start_soon(grade, index)
    return [r for r in results if r is not None]
