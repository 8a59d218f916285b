"""The amplifier's prompts to the teacher, one builder per step.

Each prompt carries a marker line (`[nanodistill:<kind>]`) so logs and the local stand-in
teacher can tell the steps apart, and puts the text to work on between `<input>` tags, apart
from the worked examples, which use `<example_input>` tags.
"""

from __future__ import annotations

import re
from typing import Literal, cast

PromptKind = Literal["trace", "explain", "policy", "generate", "answer"]
PROMPT_KINDS: tuple[PromptKind, ...] = ("trace", "explain", "policy", "generate", "answer")

_MARKER = re.compile(r"\[nanodistill:(trace|explain|policy|generate|answer)\]")
_INPUT = re.compile(r"<input>\n(.*?)\n</input>", re.DOTALL)
_GOLD = re.compile(r"<expected_output>\n(.*?)\n</expected_output>", re.DOTALL)
_COUNT = re.compile(r"exactly (\d+) new inputs")

DIVERSITY_HINTS: tuple[str, ...] = (
    "Make them harder than the examples: subtle, borderline or tricky cases.",
    "Make them clear-cut, typical cases, but about different things than the examples.",
    "Vary the length: some much shorter and some much longer than the examples.",
    "Include edge cases: unusual phrasing, typos, mixed signals, odd formatting.",
    "Cover sub-topics, settings and vocabulary that the examples do not mention.",
    "Use different tones and voices: formal, casual, terse, rambling.",
    "Write them the way real, hurried users would.",
    "Include rare but valid cases that a careless model would get wrong.",
)

_ANSWER_FORMAT = (
    "Reply with one JSON object and nothing else: "
    '{"reasoning": "<your step-by-step reasoning>", "answer": "<the output exactly as it should appear>"}'
)


def _system(kind: PromptKind, instruction: str) -> dict[str, str]:
    return {
        "role": "system",
        "content": f"[nanodistill:{kind}]\nYou are an expert helping to build a training set for this task:\n"
        f"{instruction.strip() or '(no instruction given: infer the task from the examples)'}",
    }


def _example(user_input: str, output: str, reasoning: str | None = None) -> str:
    parts = [f"<example_input>\n{user_input}\n</example_input>"]
    if reasoning:
        parts.append(f"<example_reasoning>\n{reasoning}\n</example_reasoning>")
    parts.append(f"<example_output>\n{output}\n</example_output>")
    return "<example>\n" + "\n".join(parts) + "\n</example>"


def trace_messages(instruction: str, user_input: str) -> list[dict[str, str]]:
    """Solve a seed blind, so the teacher's answer can be checked against the gold output."""
    user = f"Solve the task for this input. Think step by step.\n<input>\n{user_input}\n</input>\n{_ANSWER_FORMAT}"
    return [_system("trace", instruction), {"role": "user", "content": user}]


def explain_messages(instruction: str, user_input: str, gold_output: str) -> list[dict[str, str]]:
    """Reasoning that leads to the gold output, for a seed the teacher got wrong on its own."""
    user = (
        "The correct output for this input is given. Write the step-by-step reasoning that leads "
        "to it, and repeat it as the answer.\n"
        f"<input>\n{user_input}\n</input>\n<expected_output>\n{gold_output}\n</expected_output>\n{_ANSWER_FORMAT}"
    )
    return [_system("explain", instruction), {"role": "user", "content": user}]


def policy_messages(instruction: str, traced: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    """One task policy from the traced seeds: (input, reasoning, output) triples."""
    examples = "\n".join(_example(i, o, r) for i, r, o in traced)
    user = (
        "Here are solved examples of the task.\n"
        f"{examples}\n"
        "Write the task policy: the rules, decision criteria and output format these examples follow, "
        "as a short list of imperative rules someone could apply to a new input. "
        "Reply with the policy text only."
    )
    return [_system("policy", instruction), {"role": "user", "content": user}]


def generate_messages(
    instruction: str, examples: list[tuple[str, str]], count: int, hint: str, batch_no: int
) -> list[dict[str, str]]:
    """`count` new task inputs steered by a diversity hint; `batch_no` makes every request distinct."""
    shown = "\n".join(_example(i, o) for i, o in examples)
    user = (
        f"Here are examples of the task.\n{shown}\n"
        f"Write exactly {count} new inputs for this task (inputs only, not outputs). "
        "Each must be realistic, self-contained and clearly different from the examples and from each other. "
        f"{hint}\n"
        f"(Request {batch_no}: do not repeat inputs you may have written for other requests.)\n"
        'Reply with one JSON object and nothing else: {"inputs": ["<input 1>", "<input 2>", ...]}'
    )
    return [_system("generate", instruction), {"role": "user", "content": user}]


def answer_messages(
    instruction: str, policy: str, examples: list[tuple[str, str, str]], user_input: str
) -> list[dict[str, str]]:
    """A new input answered with reasoning, following the policy and the traced seeds."""
    shown = "\n".join(_example(i, o, r) for i, r, o in examples)
    user = (
        f"Task policy:\n{policy.strip()}\n\nSolved examples:\n{shown}\n"
        f"Solve the task for this input, following the policy. Think step by step.\n"
        f"<input>\n{user_input}\n</input>\n{_ANSWER_FORMAT}"
    )
    return [_system("answer", instruction), {"role": "user", "content": user}]


REPAIR_MARKER = "[nanodistill:repair]"


def repair_messages(messages: list[dict[str, str]], reply: str) -> list[dict[str, str]]:
    """The conversation so far plus its unreadable reply, asking once for just the JSON: small models often
    get the content right and the wrapping wrong (prose around it, a code fence, a missing brace)."""
    ask = (
        f"{REPAIR_MARKER}\nYour reply could not be read. Reply again with only the JSON object the instructions "
        "above ask for: no prose, no code fence, nothing before or after it."
    )
    return [*messages, {"role": "assistant", "content": reply[:4000]}, {"role": "user", "content": ask}]


def repaired_prompt(messages: list[dict[str, str]]) -> list[dict[str, str]] | None:
    """The original prompt of a repair request (read by the local stand-in teacher), or None."""
    if len(messages) >= 3 and REPAIR_MARKER in (messages[-1].get("content") or ""):
        return messages[:-2]
    return None


def prompt_kind(messages: list[dict[str, str]]) -> PromptKind | None:
    """Which amplifier step wrote these messages (read by the local stand-in teacher)."""
    for message in messages:
        found = _MARKER.search(message.get("content") or "")
        if found:
            return cast(PromptKind, found.group(1))
    return None


def prompt_input(messages: list[dict[str, str]]) -> str | None:
    """The input a trace, explain or answer prompt asks about."""
    found = _INPUT.search(messages[-1].get("content") or "")
    return found.group(1) if found else None


def prompt_gold(messages: list[dict[str, str]]) -> str | None:
    found = _GOLD.search(messages[-1].get("content") or "")
    return found.group(1) if found else None


def prompt_count(messages: list[dict[str, str]]) -> int | None:
    """How many inputs a generate prompt asks for."""
    found = _COUNT.search(messages[-1].get("content") or "")
    return int(found.group(1)) if found else None
