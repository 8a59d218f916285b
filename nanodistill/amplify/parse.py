"""Reading teacher replies tolerantly: JSON first, then the shapes models drift into.

Small and local teachers get the content right and the wrapping wrong: a code fence (closed or not),
prose before or after the object, trailing commas, single quotes, `answer:` lines instead of JSON.
Each parser returns None for a reply it cannot read, and the pipeline counts it as malformed.
Nothing is guessed: a reply counts only when it has the asked-for fields or list items.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError, field_validator

from nanodistill.data.similarity import normalize

_FENCE = re.compile(r"```[\w-]*\s*\n(.*?)(?:```|\Z)", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_ANSWER_LINE = re.compile(
    r"^[\W_]*(?:final\s+)?answer[\W_]*:[ \t]*(?P<answer>\S.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE
)
_REASONING_LABEL = re.compile(r"^[\W_]*(?:reasoning|rationale)[\W_]*:\s*", re.IGNORECASE)
MAX_EMBEDDED = 20  # object openings tried in a reply that holds one amid other text
MAX_LITERAL_CHARS = 20_000
_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(.*\S)\s*$")
_JSON_FIELD = r'"{name}"\s*:\s*"((?:[^"\\]|\\.)*)"'
_LABELLED = re.compile(
    r"^\W*(?:reasoning|rationale)\W*:\s*(?P<reasoning>.+?)^\W*(?:final\s+)?answer\W*:\s*(?P<answer>.+?)\s*\Z",
    re.IGNORECASE | re.MULTILINE | re.DOTALL,
)
_REASONING_KEYS = ("reasoning", "rationale", "thinking", "explanation")
MAX_LABELS = 20
MAX_LABEL_CHARS = 40
_ANSWER_KEYS = ("answer", "output", "final_answer", "label")


class GeneratedInputs(BaseModel):
    inputs: list[str]

    @field_validator("inputs", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        """Items may be strings or {"input": ...} objects; blanks are dropped."""
        if not isinstance(value, list):
            return value
        texts = [item.get("input") if isinstance(item, dict) else item for item in value]
        return [text.strip() for text in texts if isinstance(text, str) and text.strip()]


class AnswerReply(BaseModel):
    reasoning: str
    answer: str

    @field_validator("reasoning", "answer", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        """Structured answers (objects, lists, numbers) are kept as compact JSON text."""
        if value is None:
            return value
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if not text.strip():
            raise ValueError("empty")
        return text.strip()


def _loads(candidate: str) -> Any:
    """Strict JSON, then the near misses: trailing commas, then Python-style literals (single quotes)."""
    try:
        return json.loads(candidate, strict=False)
    except ValueError:
        pass
    relaxed = _TRAILING_COMMA.sub(r"\1", candidate)
    try:
        return json.loads(relaxed, strict=False)
    except ValueError:
        pass
    if len(candidate) > MAX_LITERAL_CHARS or not candidate.lstrip().startswith(("{", "[")):
        raise ValueError("not a literal")
    try:
        return ast.literal_eval(candidate)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError) as exc:
        raise ValueError("not a literal") from exc


def _embedded(text: str) -> Iterator[Any]:
    """JSON values that start inside the text and end before its end (prose after the object)."""
    decoder = json.JSONDecoder(strict=False)
    starts = [i for i, char in enumerate(text) if char in "{["][:MAX_EMBEDDED]
    for start in starts:
        try:
            yield decoder.raw_decode(text, start)[0]
        except ValueError:
            continue


def _json_values(text: str) -> Iterator[Any]:
    """Every JSON value the reply plausibly holds: all of it, fenced blocks, the outermost braces, and
    each object or list embedded in prose."""
    candidates = [text.strip(), *(block.strip() for block in _FENCE.findall(text))]
    for opening, closing in (("{", "}"), ("[", "]")):
        start, end = text.find(opening), text.rfind(closing)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            yield _loads(candidate)
        except ValueError:
            continue
    yield from _embedded(text)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].strip()
    return text


def _listed_items(text: str) -> list[str]:
    """Numbered or bulleted items; indented lines continue the item above (multi-line inputs)."""
    items: list[str] = []
    in_list = False
    for line in text.splitlines():
        indented = line[:1].isspace()
        found = _ITEM.match(line)
        if found and not (in_list and indented):
            items.append(_unquote(found.group(1).strip()))
            in_list = True
        elif in_list and indented and line.strip():
            items[-1] += "\n" + line.strip()
        elif line.strip():
            in_list = False
    return [item for item in items if item]


def parse_inputs(text: str) -> list[str] | None:
    """New inputs from a generation reply: {"inputs": [...]}, a bare list, or a numbered list."""
    for value in _json_values(text):
        if isinstance(value, dict):
            value = value.get("inputs")
        if isinstance(value, list):
            try:
                inputs = GeneratedInputs(inputs=value).inputs
            except ValidationError:
                continue
            if inputs:
                return inputs
    return _listed_items(text) or None


def _first(mapping: dict[str, Any], keys: tuple[str, ...]) -> Any:
    lowered = {str(k).lower(): v for k, v in mapping.items()}
    return next((lowered[k] for k in keys if k in lowered), None)


def _json_field(text: str, name: str) -> str | None:
    found = re.search(_JSON_FIELD.format(name=name), text)
    if not found:
        return None
    try:
        decoded: str = json.loads(f'"{found.group(1)}"')
    except ValueError:
        return None
    return decoded


def parse_answer(text: str) -> AnswerReply | None:
    """Reasoning and answer from a reply: JSON, JSON fields in a broken object, or labelled lines."""
    for value in _json_values(text):
        if isinstance(value, dict):
            try:
                return AnswerReply(reasoning=_first(value, _REASONING_KEYS), answer=_first(value, _ANSWER_KEYS))
            except ValidationError:
                continue
    attempts = [(_json_field(text, "reasoning"), _json_field(text, "answer"))]
    labelled = _LABELLED.search(text)
    if labelled:
        attempts.append((labelled["reasoning"], labelled["answer"]))
    lines = list(_ANSWER_LINE.finditer(text))
    if lines:  # prose reasoning, then an `answer: ...` line (the last one counts)
        last = lines[-1]
        before = _REASONING_LABEL.sub("", text[: last.start()].strip())
        attempts.append((before or None, _unquote(last["answer"].strip("*_` ").strip())))
    for reasoning, answer in attempts:
        try:
            return AnswerReply.model_validate({"reasoning": reasoning, "answer": answer})
        except ValidationError:
            continue
    return None


def closed_labels(outputs: list[str]) -> dict[str, str] | None:
    """The label set the seed outputs define, normalized form to the seeds' spelling, or None.

    Outputs are labels when there are 2 to MAX_LABELS distinct ones, each a short single line, and the
    seeds repeat them (at least twice as many seeds as labels): a classification task, whose answers
    can only be one of them. Free-text outputs (summaries, rewrites) are never a closed set.
    """
    labels: dict[str, str] = {}
    for output in outputs:
        text = output.strip()
        if len(text) > MAX_LABEL_CHARS or "\n" in text or not normalize(text):
            return None
        labels.setdefault(normalize(text), text)
    if not 2 <= len(labels) <= MAX_LABELS or len(outputs) < 2 * len(labels):
        return None
    return labels


def parse_policy(text: str) -> str | None:
    """The policy text; a reply that opens like JSON must be a {"policy": ...} object."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return stripped or None
    for value in _json_values(stripped):
        if isinstance(value, dict) and isinstance(value.get("policy"), str) and value["policy"].strip():
            return str(value["policy"]).strip()
    return None
