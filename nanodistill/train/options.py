"""Training options as a user gives them, checked all at once before any job starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from nanodistill.errors import NanodistillError
from nanodistill.gguf.ollama import PREFIX as OLLAMA_PREFIX
from nanodistill.gguf.ollama import resolve_ollama
from nanodistill.student.imports import SMOLLM2_SHORTCUT
from nanodistill.train.source import HUB_ID
from nanodistill.train.trainer import METHODS


@dataclass(frozen=True)
class TrainOptions:
    method: str = "lora"
    iters: int | None = None
    epochs: float = 2
    batch_size: int = 4
    learning_rate: float = 1e-4
    lora_rank: int = 8
    lora_scale: float = 20.0
    num_layers: int = 16
    max_seq_length: int = 1024
    val_fraction: float = 0.1
    mask_prompt: bool = True
    reasoning: str = "full"
    seed: int = 0
    grad_checkpoint: bool = False
    steps_per_eval: int = 50
    save_every: int = 50
    early_stopping_patience: int | None = None

    def as_params(self) -> dict[str, Any]:
        return asdict(self)


def _ranges(opts: TrainOptions) -> list[str]:
    problems = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    need(opts.method in METHODS, f"method must be one of {', '.join(METHODS)}, got {opts.method!r}")
    need(opts.iters is None or 1 <= opts.iters <= 100_000, f"iters must be 1..100000 or null, got {opts.iters}")
    need(0 < opts.epochs <= 100, f"epochs must be > 0 and <= 100, got {opts.epochs}")
    need(1 <= opts.batch_size <= 256, f"batch_size must be 1..256, got {opts.batch_size}")
    need(0 < opts.learning_rate <= 1, f"learning_rate must be > 0 and <= 1 (e.g. 1e-4), got {opts.learning_rate}")
    need(1 <= opts.lora_rank <= 512, f"lora_rank must be 1..512, got {opts.lora_rank}")
    need(0 < opts.lora_scale <= 1000, f"lora_scale must be > 0 and <= 1000, got {opts.lora_scale}")
    need(
        opts.num_layers == -1 or 1 <= opts.num_layers <= 1000,
        f"num_layers must be -1 (all) or >= 1, got {opts.num_layers}",
    )
    need(16 <= opts.max_seq_length <= 32768, f"max_seq_length must be 16..32768, got {opts.max_seq_length}")
    need(0 < opts.val_fraction <= 0.5, f"val_fraction must be > 0 and <= 0.5, got {opts.val_fraction}")
    need(opts.reasoning in ("full", "none"), f"reasoning must be 'full' or 'none', got {opts.reasoning!r}")
    need(1 <= opts.steps_per_eval <= 100_000, f"steps_per_eval must be >= 1, got {opts.steps_per_eval}")
    need(1 <= opts.save_every <= 100_000, f"save_every must be >= 1, got {opts.save_every}")
    need(
        opts.early_stopping_patience is None or opts.early_stopping_patience >= 1,
        f"early_stopping_patience must be >= 1 or null, got {opts.early_stopping_patience}",
    )
    return problems


def base_model_problem(spec: str) -> str | None:
    """Why `spec` cannot be a base model, checked cheaply (no download, no conversion), or None."""
    text = spec.strip()
    if not text:
        return "base_model is empty: give a model folder, a .gguf file, ollama:NAME[:TAG] or 'smollm2-135m'"
    if text.lower() == SMOLLM2_SHORTCUT or text.startswith(OLLAMA_PREFIX):
        if text.startswith(OLLAMA_PREFIX):
            try:
                resolve_ollama(text)
            except NanodistillError as exc:
                return f"base_model: {exc}"
        return None
    path = Path(text).expanduser()
    if text.lower().endswith(".gguf"):
        return None if path.is_file() else f"base_model: no GGUF file at {text!r}; check the path"
    if path.exists():
        if not (path / "config.json").is_file():
            return (
                f"base_model {text!r} is not a model folder (no config.json); give a folder with config.json, "
                "weights and tokenizer files, or a .gguf file"
            )
        return None
    if HUB_ID.match(text):
        return None
    return (
        f"base_model {text!r} does not exist; give a model folder, a .gguf file, ollama:NAME[:TAG], "
        f"{SMOLLM2_SHORTCUT!r} or a Hugging Face id like 'mlx-community/Qwen2.5-0.5B-Instruct-4bit'"
    )


def training_options(values: dict[str, Any], field: str = "training") -> TrainOptions:
    """Build options from a dict (distill's `training`), naming any unknown key and its closest match."""
    import difflib

    known = {f.name for f in fields(TrainOptions)}
    unknown = [key for key in values if key not in known]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        valid = ", ".join(sorted(known))
        raise NanodistillError(f"'{field}' has unknown keys: {', '.join(hints)}. Valid keys: {valid}.")
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(TrainOptions).validate_python(values)
    except ValidationError as exc:
        wrong = "; ".join(f"{field}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise NanodistillError(f"'{field}' has values of the wrong type: {wrong}.") from None


def option_problems(opts: TrainOptions, base_model: str) -> list[str]:
    problems = _ranges(opts)
    base = base_model_problem(base_model)
    if base:
        problems.append(base)
    return problems


def check_options(opts: TrainOptions, base_model: str) -> None:
    problems = option_problems(opts, base_model)
    if problems:
        raise NanodistillError("Cannot start training: " + "; ".join(problems) + ".")
