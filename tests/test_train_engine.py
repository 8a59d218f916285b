"""The training engine on a tiny random student: data prep, LoRA/DoRA/full training, resume, fuse, plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanodistill.student.tiny import build_tiny_student


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("student") / "tiny")


def test_tiny_student_loads_generates_and_is_deterministic(student: Path, tmp_path: Path) -> None:
    import mlx_lm

    again = build_tiny_student(tmp_path / "again")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (again / name).read_bytes() == (student / name).read_bytes()
    assert json.loads((student / "config.json").read_text())["model_type"] == "llama"

    model, tokenizer = mlx_lm.load(str(student))[:2]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>system\nBe brief.<|im_end|>" in prompt
    assert tokenizer.eos_token == "<|im_end|>"
    text = mlx_lm.generate(model, tokenizer, prompt, max_tokens=5)
    assert isinstance(text, str)
