"""Turn dataset rows into mlx-lm chat files: a seeded train/validation split, counted in student tokens.

Lengths are measured with the student's own chat template, the same tokens mlx-lm trains on, so
examples that will not fit `max_seq_length` are reported before training instead of being cut
silently by mlx-lm's batcher.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nanodistill.data.chat import ReasoningMode, chat_record
from nanodistill.errors import NanodistillError
from nanodistill.student.ref import loadable_source

TOO_LONG_SHOWN = 5


@dataclass(frozen=True)
class TrainRow:
    input: str
    output: str
    reasoning: str | None = None


@dataclass(frozen=True)
class DataSummary:
    n_train: int
    n_valid: int
    n_too_long: int
    too_long_examples: list[int] = field(default_factory=list)
    total_tokens: int = 0
    max_tokens: int = 0


def prepare_training_data(
    rows: Sequence[TrainRow],
    *,
    instruction: str,
    reasoning: ReasoningMode,
    tokenizer_path: str | Path,
    val_fraction: float,
    seed: int,
    batch_size: int,
    max_seq_length: int,
    out_dir: Path,
) -> DataSummary:
    """Write train.jsonl / valid.jsonl into out_dir; `too_long_examples` are indices into `rows`."""
    n_valid = split_sizes(len(rows), val_fraction=val_fraction, batch_size=batch_size)
    source = loadable_source(tokenizer_path, "tokenizer_path")
    if max_seq_length < 1:
        raise NanodistillError(f"max_seq_length must be at least 1, got {max_seq_length}.")
    for index, row in enumerate(rows):
        if not row.output.strip():
            raise NanodistillError(f"rows[{index}].output is empty; give every example an output.")

    records = [chat_record(instruction, r.input, r.output, r.reasoning, reasoning) for r in rows]
    lengths = _token_lengths(records, source)
    too_long = [i for i, n in enumerate(lengths) if n > max_seq_length]

    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out_dir / "valid.jsonl", [records[i] for i in order[:n_valid]])
    _write_jsonl(out_dir / "train.jsonl", [records[i] for i in order[n_valid:]])
    return DataSummary(
        n_train=len(rows) - n_valid,
        n_valid=n_valid,
        n_too_long=len(too_long),
        too_long_examples=too_long[:TOO_LONG_SHOWN],
        total_tokens=sum(lengths),
        max_tokens=max(lengths),
    )


def split_sizes(n_rows: int, *, val_fraction: float, batch_size: int) -> int:
    """The validation size for n_rows; raises where either split would be too small to batch."""
    if batch_size < 1:
        raise NanodistillError(f"batch_size must be at least 1, got {batch_size}.")
    if not 0.0 < val_fraction < 1.0:
        raise NanodistillError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}.")
    n_valid = math.ceil(n_rows * val_fraction)
    if n_valid < batch_size:
        needed = batch_size / n_rows if n_rows else 1.0
        raise NanodistillError(
            f"val_fraction={val_fraction} of {n_rows} rows gives {n_valid} validation rows, fewer than "
            f"batch_size={batch_size}: raise val_fraction to at least {needed:.2f}, lower batch_size, "
            "or add rows."
        )
    n_train = n_rows - n_valid
    if n_train < 2 * batch_size:
        raise NanodistillError(
            f"Only {n_train} of {n_rows} rows are left for training after the validation split, fewer "
            f"than two batches of batch_size={batch_size}: add rows, lower val_fraction, or lower "
            "batch_size."
        )
    return n_valid


def _token_lengths(records: list[dict[str, list[dict[str, str]]]], source: str) -> list[int]:
    """Token counts exactly as mlx-lm's ChatDataset will produce them."""
    from mlx_lm.utils import load_tokenizer

    tokenizer = load_tokenizer(source)
    return [len(tokenizer.apply_chat_template(r["messages"], return_dict=False)) for r in records]


def _write_jsonl(path: Path, records: list[dict[str, list[dict[str, str]]]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
