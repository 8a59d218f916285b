"""The training engine on a tiny random student: data prep, LoRA/DoRA/full training, resume, fuse, plot."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from nanodistill.data.chat import chat_record
from nanodistill.errors import NanodistillError
from nanodistill.testing.tiny_student import build_tiny_student
from nanodistill.train.data import TrainRow, prepare_training_data
from nanodistill.train.fuse import fuse_adapter
from nanodistill.train.plot import loss_plot_png
from nanodistill.train.trainer import TrainConfig, TrainResult, check_config, iters_for_epochs, run_training

INSTRUCTION = "Classify the sentiment as positive or negative."
POSITIVE = ("great", "good", "lovely", "nice", "superb")
NEGATIVE = ("bad", "awful", "poor", "dull", "broken")
REPORT_KEYS = {
    "kind",
    "iteration",
    "learning_rate",
    "iterations_per_second",
    "tokens_per_second",
    "trained_tokens",
    "peak_memory_gb",
    "eta_s",
}


def toy_rows(n: int, seed: int = 0) -> list[TrainRow]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        word = rng.choice(POSITIVE if positive else NEGATIVE)
        rows.append(TrainRow(input=f"the film was {word}", output="positive" if positive else "negative"))
    return rows


def prepare(student: Path, out_dir: Path, rows: list[TrainRow], **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "instruction": INSTRUCTION,
        "reasoning": "none",
        "tokenizer_path": student,
        "val_fraction": 0.2,
        "seed": 0,
        "batch_size": 4,
        "max_seq_length": 64,
        "out_dir": out_dir,
    }
    return prepare_training_data(rows, **{**options, **overrides})


def config(student: Path, **overrides: Any) -> TrainConfig:
    options: dict[str, Any] = {
        "base_model": str(student),
        "iters": 24,
        "batch_size": 4,
        "learning_rate": 3e-4,
        "steps_per_report": 4,
        "steps_per_eval": 8,
        "save_every": 8,
        "max_seq_length": 64,
    }
    return TrainConfig(**{**options, **overrides})


def train(cfg: TrainConfig, data_dir: Path, out_dir: Path, stop_after: int | None = None) -> TrainResult:
    polls = 0

    def should_stop() -> bool:
        nonlocal polls
        polls += 1
        return stop_after is not None and polls > stop_after

    return run_training(cfg, data_dir, out_dir, on_report=lambda report: None, should_stop=should_stop)


def val_losses(reports: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(r["iteration"], r["val_loss"]) for r in reports if r["kind"] == "val"]


def generate(model_dir: Path, adapter_path: Path | None = None) -> str:
    import mlx_lm

    model, tokenizer = mlx_lm.load(str(model_dir), adapter_path=str(adapter_path) if adapter_path else None)[:2]
    messages = [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": "the film was great"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return str(mlx_lm.generate(model, tokenizer, prompt, max_tokens=4))


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("student") / "tiny")


@pytest.fixture(scope="module")
def data_dir(student: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    prepare(student, out, toy_rows(60))
    return out


@pytest.fixture(scope="module")
def lora_run(student: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(config(student), data_dir, tmp_path_factory.mktemp("lora"))


def test_tiny_student_loads_generates_and_is_deterministic(student: Path, tmp_path: Path) -> None:
    import mlx_lm

    again = build_tiny_student(tmp_path / "again")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (again / name).read_bytes() == (student / name).read_bytes()
    assert json.loads((student / "config.json").read_text())["model_type"] == "llama"
    custom = build_tiny_student(tmp_path / "custom", corpus=["zebra quokka axolotl " * 5])
    assert (custom / "tokenizer.json").read_bytes() != (student / "tokenizer.json").read_bytes()

    model, tokenizer = mlx_lm.load(str(student))[:2]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>system\nBe brief.<|im_end|>" in prompt
    assert tokenizer.eos_token == "<|im_end|>"
    text = mlx_lm.generate(model, tokenizer, prompt, max_tokens=5)
    assert isinstance(text, str)


def test_prepare_training_data_splits_seeded_and_reports_long_rows(student: Path, tmp_path: Path) -> None:
    rows = toy_rows(30)
    rows[3] = TrainRow(input="a very long review " * 20, output="negative", reasoning="long words")
    rows[7] = TrainRow(input="another long one " * 20, output="positive")
    summary = prepare(student, tmp_path / "a", rows, reasoning="full")
    assert (summary.n_train, summary.n_valid) == (24, 6)
    assert (summary.n_too_long, summary.too_long_examples) == (2, [3, 7])
    assert summary.max_tokens > 64 and summary.total_tokens > summary.max_tokens

    train_lines = (tmp_path / "a" / "train.jsonl").read_text().splitlines()
    valid_lines = (tmp_path / "a" / "valid.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in train_lines + valid_lines]
    expected = [chat_record(INSTRUCTION, r.input, r.output, r.reasoning, "full") for r in rows]
    assert sorted(map(json.dumps, records)) == sorted(map(json.dumps, expected))
    assert any("<think>long words</think>" in json.dumps(r) for r in records)

    prepare(student, tmp_path / "b", rows, reasoning="full")
    assert (tmp_path / "b" / "valid.jsonl").read_text() == (tmp_path / "a" / "valid.jsonl").read_text()
    prepare(student, tmp_path / "c", rows, reasoning="full", seed=1)
    assert (tmp_path / "c" / "valid.jsonl").read_text() != (tmp_path / "a" / "valid.jsonl").read_text()


@pytest.mark.parametrize(
    ("n_rows", "overrides", "field"),
    [
        (60, {"val_fraction": 0.05}, "val_fraction"),
        (10, {"val_fraction": 0.4}, "batch_size"),
        (60, {"val_fraction": 1.0}, "val_fraction"),
        (60, {"max_seq_length": 0}, "max_seq_length"),
        (60, {"tokenizer_path": Path("/nonexistent/student")}, "tokenizer_path"),
    ],
)
def test_prepare_training_data_rejects_bad_input(
    student: Path, tmp_path: Path, n_rows: int, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(NanodistillError, match=field):
        prepare(student, tmp_path, toy_rows(n_rows), **overrides)


def test_lora_training_lowers_loss_and_keeps_best_adapter(student: Path, lora_run: TrainResult) -> None:
    reports = lora_run.reports
    assert not lora_run.stopped and not lora_run.early_stopped
    assert lora_run.iterations_done == 24
    assert [r["iteration"] for r in reports if r["kind"] == "train"] == [4, 8, 12, 16, 20, 24]
    assert [i for i, _ in val_losses(reports)] == [0, 8, 16, 24]
    for report in reports:
        assert set(report) >= REPORT_KEYS
        assert ("train_loss" if report["kind"] == "train" else "val_loss") in report
    losses = [loss for _, loss in val_losses(reports)]
    assert losses[-1] < losses[0] / 2
    assert lora_run.best_val_loss == min(losses)
    assert lora_run.trained_tokens == reports[-2]["trained_tokens"] > 0
    assert lora_run.final_train_loss == reports[-2]["train_loss"]

    out = lora_run.adapter_path
    assert json.loads((out / "adapter_config.json").read_text())["fine_tune_type"] == "lora"
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-0000016", "step-0000024"]
    assert isinstance(generate(student, out), str)


def test_fuse_lora_adapter_loads_without_adapter(student: Path, lora_run: TrainResult, tmp_path: Path) -> None:
    fused = fuse_adapter(str(student), lora_run.adapter_path, tmp_path / "fused")
    assert (fused / "config.json").is_file()
    assert generate(fused) == generate(student, lora_run.adapter_path)


def test_stop_then_resume_continues_from_checkpoint(student: Path, data_dir: Path, tmp_path: Path) -> None:
    cfg = config(student, iters=20, steps_per_report=2, steps_per_eval=4, save_every=4)
    first = train(cfg, data_dir, tmp_path, stop_after=10)
    assert first.stopped and first.iterations_done == 10
    assert (tmp_path / "checkpoints" / "step-0000010" / "state.json").is_file()
    initial_loss = first.reports[0]["val_loss"]
    checkpoint_loss = first.reports[-1]["train_loss"]

    seen: list[dict[str, Any]] = []
    resumed = run_training(cfg, data_dir, tmp_path, on_report=seen.append, should_stop=lambda: False)
    assert not resumed.stopped and resumed.iterations_done == 20
    assert seen[0]["iteration"] > 10
    first_loss = next(r["train_loss"] for r in seen if r["kind"] == "train")
    assert abs(first_loss - checkpoint_loss) < abs(first_loss - initial_loss)
    assert resumed.reports == first.reports + seen
    assert resumed.best_val_loss is not None and first.best_val_loss is not None
    assert resumed.best_val_loss <= first.best_val_loss

    again = run_training(cfg, data_dir, tmp_path, on_report=seen.append, should_stop=lambda: False)
    assert again.iterations_done == 20 and again.reports == resumed.reports


def test_early_stopping_on_validation_loss(student: Path, data_dir: Path, tmp_path: Path) -> None:
    cfg = config(student, iters=40, learning_rate=3e-3, steps_per_report=2, steps_per_eval=2, early_stopping_patience=2)
    result = train(cfg, data_dir, tmp_path)
    assert result.early_stopped and result.iterations_done < 40
    losses = val_losses(result.reports)
    assert result.best_val_loss == min(loss for _, loss in losses)
    assert losses[-3][0] == result.best_iteration
    assert all(loss >= result.best_val_loss for _, loss in losses[-2:])


@pytest.mark.parametrize("method", ["dora", "full"])
def test_dora_and_full_train_load_and_fuse(student: Path, data_dir: Path, tmp_path: Path, method: str) -> None:
    cfg = config(student, method=method, iters=4, learning_rate=1e-3, steps_per_report=2, steps_per_eval=2)
    result = train(cfg, data_dir, tmp_path / "out")
    losses = [loss for _, loss in val_losses(result.reports)]
    assert result.iterations_done == 4 and losses[-1] < losses[0]
    adapter_config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert adapter_config["fine_tune_type"] == method
    fused = fuse_adapter(str(student), tmp_path / "out", tmp_path / "fused")
    assert generate(fused) == generate(student, tmp_path / "out")


def test_training_rejects_bad_input(student: Path, data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(NanodistillError, match="base_model"):
        train(config(tmp_path / "missing"), data_dir, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NanodistillError, match="base_model"):
        train(config(tmp_path / "empty"), data_dir, tmp_path / "out")
    with pytest.raises(NanodistillError, match="data_dir"):
        train(config(student), tmp_path / "no-data", tmp_path / "out")
    with pytest.raises(NanodistillError, match="batch_size"):
        train(config(student, batch_size=13), data_dir, tmp_path / "out")
    with pytest.raises(NanodistillError, match="iters"):
        check_config(config(student, iters=0))
    with pytest.raises(ValidationError, match="method"):  # a method outside the table is a type error
        config(student, method="qlora")


def test_iters_for_epochs() -> None:
    assert iters_for_epochs(48, 4, 2) == 24
    assert iters_for_epochs(50, 4, 1.5) == 18
    with pytest.raises(NanodistillError, match="batch_size"):
        iters_for_epochs(3, 4, 1)


@pytest.mark.parametrize("n_points", [0, 1, 6])
def test_loss_plot_png(n_points: int) -> None:
    reports: list[dict[str, Any]] = [
        {"kind": "train" if i % 2 else "val", "iteration": i, ("train_loss" if i % 2 else "val_loss"): 3.0 - i / 3}
        for i in range(n_points)
    ]
    png = loss_plot_png(reports)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def test_num_layers_beyond_the_model_adapts_every_layer(student: Path, data_dir: Path, tmp_path: Path) -> None:
    result = train(config(student, num_layers=16, iters=2), data_dir, tmp_path / "out")
    assert result.iterations_done == 2
    assert generate(student, tmp_path / "out")


def test_init_adapter_starts_from_those_weights(
    student: Path, data_dir: Path, lora_run: TrainResult, tmp_path: Path
) -> None:
    """improve's next round: training starts where the given adapter ended, not from fresh weights."""
    continued = train(config(student, iters=8, init_adapter=str(lora_run.adapter_path)), data_dir, tmp_path / "more")
    start = val_losses(continued.reports)[0]
    assert start[0] == 0 and start[1] == pytest.approx(lora_run.best_val_loss, rel=1e-4)
    assert start[1] < val_losses(lora_run.reports)[0][1] / 2  # a fresh run starts far higher
