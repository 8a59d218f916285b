"""Dataset export: the formats (plain rows, mlx-lm/OpenAI chat, prompt/completion pairs) and writing a
new file that never overwrites, never follows a symlink and is never seen half-written."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Any, Literal

from nanodistill.data.chat import assistant_text, chat_record
from nanodistill.errors import NanodistillError
from nanodistill.store.disk import disk_error, is_disk_error

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


def exists_error(target: Path) -> NanodistillError:
    return NanodistillError(
        f"'path' {str(target)!r} already exists; export never overwrites a file. Give a new file name."
    )


async def write_new_file(target: Path, lines: AsyncIterable[str]) -> int:
    """Write `lines` to `target`, which must not exist yet; return how many were written.

    The lines go to a temp file of a unique name in the target's folder, created exclusively and never
    through a symlink, and are then linked into place: a link fails rather than replace what is there,
    so concurrent writers of one path get one winner and readable errors, and a planted symlink or a
    stranger's file is never touched. A failed write leaves nothing behind.
    """
    folder = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    temp = f".{target.name}.{secrets.token_hex(8)}.partial"
    try:
        count = await _write_temp(folder, temp, lines)
        os.link(temp, target.name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
    except FileExistsError:
        raise exists_error(target) from None
    except OSError as exc:
        if is_disk_error(exc):
            raise disk_error(exc, target.parent) from None
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=folder)
        os.close(folder)
    return count


async def _write_temp(folder: int, name: str, lines: AsyncIterable[str]) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    count = 0
    with open(os.open(name, flags, 0o644, dir_fd=folder), "w", encoding="utf-8") as handle:
        async for line in lines:
            handle.write(line)
            handle.write("\n")
            count += 1
        handle.flush()
        os.fsync(handle.fileno())
    return count
