"""Two more tasks the stand-in teacher knows, for the free-text and improvement benchmarks.

`FormalDates`: rewrite a message that names a day into one fixed formal line (free text, scored by
chrf or a judge). `TicketTeams`: route a support ticket to billing, shipping or account; the
stand-in's generator writes no account tickets unless the instruction it is given names the label
(as improve_student's failure hint does), so a first amplification misses that failure mode on purpose.
The teacher tells the tasks apart by their instruction, which every prompt carries.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection

YEAR = 2026
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_DAYS_IN = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_EVENTS = (
    "the budget review", "lunch", "the kickoff call", "the design sync", "coffee", "the quarterly planning",
    "the interview", "the site visit", "the workshop", "the dentist", "the team dinner", "the demo",
    "the hiring panel", "the retro", "the board meeting", "the training session",
)  # fmt: skip
_DATE_TEMPLATES = (
    "meet me on {d} {M}",
    "Can we catch up on {M} {d}?",
    "Let's do {event} on the {o} of {M}.",
    "How about {event} on {M} {o}?",
    "I'm free on {d} {M} for {event}.",
    "Please book {event} for {M} {d}, thanks.",
    "{Event} moved to {d} {M}.",
    "Could we push {event} to the {o} of {M}?",
)
_DATE = re.compile(
    r"(\d{1,2})(?:st|nd|rd|th)?(?: of)? (" + "|".join(MONTHS) + r")|(" + "|".join(MONTHS) + r") (\d{1,2})"
)


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


class FormalDates:
    """A message naming one day -> 'Meeting date: YYYY-MM-DD.' (the year is always 2026)."""

    INSTRUCTION = f"Rewrite the message as one formal line: 'Meeting date: YYYY-MM-DD.' (the year is {YEAR})."
    MARKER = "Meeting date: YYYY-MM-DD."

    @staticmethod
    def message(rng: random.Random) -> str:
        month = rng.randrange(12)
        day = rng.randint(1, _DAYS_IN[month])
        event = rng.choice(_EVENTS)
        return rng.choice(_DATE_TEMPLATES).format(
            d=day, o=_ordinal(day), M=MONTHS[month], event=event, Event=event[0].upper() + event[1:]
        )

    @staticmethod
    def label(text: str) -> str:
        found = _DATE.search(text)
        if found is None:
            return "Meeting date: unknown."
        day, month = (found.group(1), found.group(2)) if found.group(1) else (found.group(4), found.group(3))
        return f"Meeting date: {YEAR}-{MONTHS.index(month) + 1:02d}-{int(day):02d}."

    @classmethod
    def explain(cls, text: str, gold: str) -> str:
        return f"The message names a day; in {YEAR} that is written as: {gold}"

    @staticmethod
    def policy() -> str:
        return (
            "- Find the day and the month the message names.\n"
            f"- Write it as 'Meeting date: YYYY-MM-DD.' with the year {YEAR}, two-digit month and day.\n"
            "- Output only that line."
        )

    @classmethod
    def generate(cls, rng: random.Random, count: int, instruction: str) -> list[str]:
        return [cls.message(rng) for _ in range(count)]

    @classmethod
    def examples(cls, n: int, seed: int, exclude: Collection[str] = ()) -> list[dict[str, str]]:
        """`n` distinct date messages with their formal line, none of them in `exclude`."""
        rng = random.Random(seed)
        seen, rows = set(exclude), list[dict[str, str]]()
        while len(rows) < n:
            text = cls.message(rng)
            if text not in seen:
                seen.add(text)
                rows.append({"input": text, "output": cls.label(text)})
        return rows


TEAMS = ("billing", "shipping", "account")
_TOPICS = {
    "billing": ("my invoice", "a double charge", "the refund", "my card payment", "the subscription fee"),
    "shipping": ("my parcel", "the delivery", "the courier", "the tracking number", "my package"),
    "account": ("my password", "the login page", "my username", "the two-factor code", "my profile email"),
}
_PROBLEMS = (
    "is wrong", "does not work", "never arrived", "looks broken", "keeps failing", "is missing",
    "was changed without asking", "makes no sense", "is stuck", "shows an error",
)  # fmt: skip
_OPENERS = ("Hi,", "Hello team,", "Urgent:", "Quick question:", "Help!", "Good morning,", "Hey,", "Dear support,")
_TAILS = (
    "", " since Monday.", " again today.", " for the third time.", " after the update.",
    " and I need it fixed.", " on my phone.", " before my trip.", " since last week.",
)  # fmt: skip


class TicketTeams:
    """A support ticket -> the team that owns it; account tickets are generated only when asked for."""

    INSTRUCTION = "Route the support ticket to one team: billing, shipping or account. Answer with the team only."
    MARKER = "Route the support ticket to one team"

    @staticmethod
    def ticket(rng: random.Random, team: str) -> str:
        return f"{rng.choice(_OPENERS)} {rng.choice(_TOPICS[team])} {rng.choice(_PROBLEMS)}{rng.choice(_TAILS)}".strip()

    @staticmethod
    def label(text: str) -> str:
        lowered = text.lower()
        return next((t for t in TEAMS if any(topic in lowered for topic in _TOPICS[t])), "billing")

    @classmethod
    def explain(cls, text: str, gold: str) -> str:
        topic = next((t for t in _TOPICS[gold] if t in text.lower()), gold)
        return f"The ticket is about {topic}, which the {gold} team owns."

    @staticmethod
    def policy() -> str:
        return (
            "- Find what the ticket is about.\n- Answer billing, shipping or account, in lowercase, and nothing else."
        )

    @classmethod
    def generate(cls, rng: random.Random, count: int, instruction: str) -> list[str]:
        """Billing and shipping tickets only, unless the instruction names 'account' as a failure to work on:
        then mostly account ones."""
        asked = "'account'" in instruction
        teams = [rng.choice(("account", "account", "billing", "shipping")) if asked else rng.choice(TEAMS[:2])
                 for _ in range(count)]  # fmt: skip
        return [cls.ticket(rng, team) for team in teams]

    @classmethod
    def examples(cls, n: int, seed: int, exclude: Collection[str] = ()) -> list[dict[str, str]]:
        """`n` distinct tickets, the teams in turn, none of them in `exclude`."""
        rng = random.Random(seed)
        seen, rows = set(exclude), list[dict[str, str]]()
        while len(rows) < n:
            team = TEAMS[len(rows) % len(TEAMS)]
            text = cls.ticket(rng, team)
            if text not in seen:
                seen.add(text)
                rows.append({"input": text, "output": team})
        return rows


Task = type[FormalDates] | type[TicketTeams]
TASKS: tuple[Task, ...] = (FormalDates, TicketTeams)


def task_for(instruction: str) -> Task | None:
    """The task whose instruction this prompt carries, or None (the toy sentiment task)."""
    return next((t for t in TASKS if t.MARKER in instruction), None)
