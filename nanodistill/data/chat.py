"""How one example becomes a chat: the single rendering used by training, export and queries.

The dataset instruction is the system message, the input the user message, and the assistant
message is either `<think>reasoning</think>` followed by the output (`reasoning="full"`) or the
output alone (`"none"`). Queries split the same markers back off.
"""

from __future__ import annotations

from typing import Literal

ReasoningMode = Literal["full", "none"]
REASONING_MODES: tuple[ReasoningMode, ...] = ("full", "none")
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def prompt_messages(instruction: str, user_input: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": instruction}] if instruction.strip() else []
    messages.append({"role": "user", "content": user_input})
    return messages


def assistant_text(output: str, reasoning: str | None, mode: ReasoningMode) -> str:
    if mode == "full" and reasoning and reasoning.strip():
        return f"{THINK_OPEN}{reasoning.strip()}{THINK_CLOSE}\n{output}"
    return output


def chat_record(
    instruction: str, user_input: str, output: str, reasoning: str | None, mode: ReasoningMode
) -> dict[str, list[dict[str, str]]]:
    """One training row in the mlx-lm / OpenAI `messages` format."""
    messages = prompt_messages(instruction, user_input)
    messages.append({"role": "assistant", "content": assistant_text(output, reasoning, mode)})
    return {"messages": messages}


def split_reasoning(text: str) -> tuple[str | None, str]:
    """Split generated text into (reasoning, answer); an unclosed think block is all reasoning."""
    stripped = text.strip()
    if not stripped.startswith(THINK_OPEN):
        return None, stripped
    body = stripped[len(THINK_OPEN) :]
    reasoning, sep, answer = body.partition(THINK_CLOSE)
    if not sep:
        return reasoning.strip(), ""
    return reasoning.strip(), answer.strip()
