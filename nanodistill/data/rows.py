"""Validation of one example row: the rules every way of adding examples shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nanodistill.errors import NanodistillError

MAX_TEXT_CHARS = 100_000
MAX_ROWS_PER_CALL = 100_000


@dataclass(frozen=True)
class Row:
    input: str
    output: str
    reasoning: str | None = None


def validate_row(raw: Any, where: str) -> Row:
    """Turn one raw row into a Row, or say exactly what is wrong with it and where.

    `where` names the row for the message, e.g. "examples[3]" or "data.jsonl line 12".
    """
    if not isinstance(raw, dict):
        raise NanodistillError(
            f'{where}: expected an object like {{"input": "...", "output": "..."}}, got {type(raw).__name__}.'
        )
    fields: dict[str, str | None] = {}
    for key in ("input", "output"):
        value = raw.get(key)
        if value is None:
            raise NanodistillError(f"{where}: missing '{key}'. Every example needs 'input' and 'output'.")
        if not isinstance(value, str):
            raise NanodistillError(f"{where}: '{key}' must be a string, got {type(value).__name__}. Quote it as text.")
        if not value.strip():
            raise NanodistillError(f"{where}: '{key}' is empty. Give it some text or drop the row.")
        if len(value) > MAX_TEXT_CHARS:
            raise NanodistillError(
                f"{where}: '{key}' has {len(value):,} characters; the limit is {MAX_TEXT_CHARS:,}. "
                "Shorten it or split it into several examples."
            )
        fields[key] = value
    reasoning = raw.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, str):
        raise NanodistillError(f"{where}: 'reasoning' must be a string when given, got {type(reasoning).__name__}.")
    if reasoning is not None and len(reasoning) > MAX_TEXT_CHARS:
        raise NanodistillError(f"{where}: 'reasoning' is over {MAX_TEXT_CHARS:,} characters. Shorten it.")
    return Row(input=str(fields["input"]), output=str(fields["output"]), reasoning=reasoning or None)
