"""The training options table: every option a user can set, once, with its type, default, bounds and help.

Like mlx-lm's CONFIG_DEFAULTS with TrainingArgs' field metadata, this one class feeds everything
that speaks of training options: the `train_student` tool's schema, `distill`'s `training`
check, the CLI help, and the trainer's config (which adds only engine-internal knobs).
Bounds are checked by `option_problems`, which names every option that is off at once.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nanodistill.errors import NanodistillError

Method = Literal["lora", "dora", "full"]
Backend = Literal["ring", "mpi"]


def _option(
    default: Any, help: str, *, low: float | None = None, high: float | None = None, open_low: bool = False
) -> Any:
    """A table row: default, help, and bounds (advertised in the schema, checked by option_problems)."""
    bounds: dict[str, Any] = {}
    if low is not None:
        bounds["exclusiveMinimum" if open_low else "minimum"] = low
    if high is not None:
        bounds["maximum"] = high
    return Field(default, description=help, json_schema_extra=bounds or None)


class TrainOptions(BaseModel):
    """Training options as a user gives them (train_student arguments, distill's `training`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Method = _option("lora", "lora (default), dora, or full fine-tuning")
    iters: int | None = _option(None, "training steps; overrides epochs", low=1, high=100_000)
    epochs: float = _option(
        2, "passes over the training rows (when iters is not given)", low=0, high=100, open_low=True
    )
    batch_size: int = _option(4, "examples per step", low=1, high=256)
    learning_rate: float = _option(1e-4, "Adam learning rate (e.g. 1e-4)", low=0, high=1, open_low=True)
    lora_rank: int = _option(8, "LoRA/DoRA rank", low=1, high=512)
    lora_scale: float = _option(20.0, "LoRA/DoRA scale", low=0, high=1000, open_low=True)
    num_layers: int = _option(
        16, "layers to adapt from the top; -1 for all (more than the model has: all)", low=-1, high=1000
    )
    max_seq_length: int = _option(1024, "tokens per example; longer ones are truncated", low=16, high=32_768)
    val_fraction: float = _option(0.1, "share of training rows kept for validation", low=0, high=0.5, open_low=True)
    mask_prompt: bool = _option(True, "train on the answer only, not the prompt")
    reasoning: Literal["full", "none"] = _option(
        "full", "full: the student thinks in <think>...</think> before answering; none: output only"
    )
    seed: int = _option(0, "seed for the split, shuffling and initialisation")
    grad_checkpoint: bool = _option(False, "trade compute for memory on long sequences")
    steps_per_eval: int = _option(50, "steps between validation reports", low=1, high=100_000)
    save_every: int = _option(50, "steps between checkpoints (resume starts from the last one)", low=1, high=100_000)
    early_stopping_patience: int | None = _option(
        None, "stop after this many validation reports without improvement", low=1, high=100_000
    )
    hosts: list[str] | str | None = _option(
        None,
        "train data-parallel over mlx.distributed: a list of hosts, one rank each ('127.0.0.1' repeated for "
        "local ranks, or ssh-reachable names), or the path of a hostfile in mlx.launch's JSON format; the first "
        "host must be this machine (rank 0 writes the job's checkpoints); batch_size is split across the ranks",
    )
    backend: Backend = _option("ring", "mlx.distributed backend for hosts: ring (default) or mpi")
    shared_folder: str | None = _option(
        None, "a folder every host sees at the same path: remote hosts read their inputs there instead of staging"
    )


def option_problems(opts: TrainOptions, prefix: str = "") -> list[str]:
    """Every option outside its bounds, as "'name' must be ..., got value" lines."""
    problems = []
    for name, field in TrainOptions.model_fields.items():
        value = getattr(opts, name)
        bounds = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if value is None or isinstance(value, bool) or not bounds:
            continue
        low = bounds.get("minimum", bounds.get("exclusiveMinimum"))
        high = bounds.get("maximum")
        too_low = low is not None and (value <= low if "exclusiveMinimum" in bounds else value < low)
        if name == "num_layers" and value == 0:
            too_low = True
        if too_low or (high is not None and value > high):
            low_text = f"> {low:g}" if "exclusiveMinimum" in bounds else f">= {low:g}"
            if name == "num_layers":
                low_text = "-1 (all) or >= 1"
            problems.append(f"'{prefix}{name}' must be {low_text} and <= {high:g}, got {value}")
    return problems


def training_options(values: dict[str, Any], field: str = "training") -> TrainOptions:
    """Build options from a dict (distill's `training`), naming any unknown key and its closest match."""
    known = list(TrainOptions.model_fields)
    unknown = [key for key in values if key not in known]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise NanodistillError(
            f"'{field}' has unknown keys: {', '.join(hints)}. Valid keys: {', '.join(sorted(known))}."
        )
    try:
        return TrainOptions.model_validate(values)
    except ValidationError as exc:
        wrong = "; ".join(f"{field}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise NanodistillError(f"'{field}' has values of the wrong type: {wrong}.") from None


def options_help() -> list[tuple[str, str]]:
    """(name, "help (default X)") per option, for the CLI and the docs."""
    return [
        (name, f"{field.description} (default {field.default!r})") for name, field in TrainOptions.model_fields.items()
    ]
