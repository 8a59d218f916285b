"""Dataset export formats: plain rows, mlx-lm/OpenAI chat, and prompt/completion pairs."""

from __future__ import annotations

import json
from typing import Any, Literal

from nanodistill.data.chat import assistant_text, chat_record

ExportFormat = Literal["jsonl", "chat", "completions"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("jsonl", "chat", "completions")


def export_line(
    fmt: ExportFormat, instruction: str, user_input: str, output: str, reasoning: str | None, split: str
) -> str:
    """One JSONL line; `jsonl` keeps the split so held-out rows stay recognisable."""
    record: dict[str, Any]
    if fmt == "jsonl":
        record = {"input": user_input, "output": output}
        if reasoning:
            record["reasoning"] = reasoning
        record["split"] = split
    elif fmt == "chat":
        record = chat_record(instruction, user_input, output, reasoning, "full")
    else:
        record = {"prompt": user_input, "completion": assistant_text(output, reasoning, "full")}
    return json.dumps(record, ensure_ascii=False)
