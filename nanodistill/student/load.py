"""Open a student (a base model plus, optionally, its trained adapter) for generation.

Paths are checked before mlx-lm sees them, so a missing folder or file is reported by name
instead of surfacing as a stack trace from deep inside the loader.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from nanodistill.data.chat import THINK_CLOSE, THINK_OPEN
from nanodistill.errors import NanodistillError
from nanodistill.student.files import check_model_files


@dataclass
class LoadedStudent:
    """A model ready to answer. `lock` serialises generation: one mlx model, one generating thread."""

    model: Any
    tokenizer: Any
    base_model: str
    adapter_path: str | None
    context_length: int | None
    load_s: float
    special_tokens: tuple[str, ...]
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


def _special_strings(tokenizer: Any) -> tuple[str, ...]:
    """Special-token texts to strip from answers, longest first: the named ones (eos, pad...) and
    added tokens flagged special (chat markers); the think markers are kept for split_reasoning."""
    added = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    specials = (set(tokenizer.all_special_tokens) | added) - {THINK_OPEN, THINK_CLOSE}
    return tuple(sorted((s for s in specials if s), key=len, reverse=True))


def load_student(base_model: str, adapter_path: str | None) -> LoadedStudent:
    """Load weights, adapter and tokenizer; refuses a tokenizer without a chat template, since
    students are trained and queried as chats."""
    from mlx_lm.utils import load

    check_model_files(base_model, adapter_path)
    local = Path(base_model).expanduser()
    source = str(local) if local.is_dir() else base_model
    adapter = str(Path(adapter_path).expanduser()) if adapter_path is not None else None
    started = time.perf_counter()
    try:
        model, tokenizer, config = cast(
            tuple[Any, Any, dict[str, Any]], load(source, adapter_path=adapter, return_config=True)
        )
    except OSError as exc:
        raise NanodistillError(f"base_model {base_model!r} could not be loaded: {exc}") from exc
    load_s = time.perf_counter() - started
    if not tokenizer.has_chat_template:
        raise NanodistillError(
            f"base_model {base_model!r} has no chat template: pick an instruct/chat model as the student base."
        )
    context = config.get("max_position_embeddings")
    return LoadedStudent(
        model=model,
        tokenizer=tokenizer,
        base_model=base_model,
        adapter_path=adapter_path,
        context_length=int(context) if context else None,
        load_s=load_s,
        special_tokens=_special_strings(tokenizer),
    )
