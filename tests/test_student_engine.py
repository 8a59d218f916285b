"""Loading, querying and caching a student, on the tiny random-weight model."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from nanodistill.data.chat import prompt_messages
from nanodistill.errors import NanodistillError
from nanodistill.student.cache import ModelCache, generate_off_loop
from nanodistill.student.generate import generate_answers
from nanodistill.student.load import LoadedStudent, load_student
from nanodistill.testing.tiny_student import SPECIAL_TOKENS, build_tiny_student

INSTRUCTION = "Answer briefly."


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("student") / "tiny")


@pytest.fixture(scope="module")
def student(base_dir: Path) -> LoadedStudent:
    return load_student(str(base_dir), None)


def _write_adapter(base_dir: Path, out: Path) -> Path:
    """A LoRA adapter in mlx-lm's on-disk format, as the trainer saves it."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load

    lora = {"rank": 4, "scale": 10.0, "dropout": 0.0}
    config = {"fine_tune_type": "lora", "num_layers": 2, "lora_parameters": lora}
    model = load(str(base_dir))[0]
    model.freeze()
    linear_to_lora_layers(model, 2, lora)
    out.mkdir(parents=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), dict(tree_flatten(model.trainable_parameters())))
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out


def test_load_reads_context_and_adapter(base_dir: Path, tmp_path: Path) -> None:
    adapter = _write_adapter(base_dir, tmp_path / "adapter")
    loaded = load_student(str(base_dir), str(adapter))
    assert loaded.context_length == 2048
    assert loaded.adapter_path == str(adapter)
    assert loaded.base_model == str(base_dir)
    assert set(loaded.special_tokens) == set(SPECIAL_TOKENS)
    assert any("lora" in type(m).__name__.lower() for m in loaded.model.modules())


def test_missing_paths_are_named(base_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(NanodistillError, match=r"nowhere.* does not exist"):
        load_student(str(tmp_path / "nowhere"), None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NanodistillError, match=r"empty.*no config\.json"):
        load_student(str(tmp_path / "empty"), None)
    with pytest.raises(NanodistillError, match=r"no-adapter/adapter_config\.json is missing"):
        load_student(str(base_dir), str(tmp_path / "no-adapter"))
    half = tmp_path / "half"
    half.mkdir()
    (half / "adapter_config.json").write_text("{}")
    with pytest.raises(NanodistillError, match=r"half/adapters\.safetensors is missing"):
        load_student(str(base_dir), str(half))


def test_batch_generation_matches_one_by_one(student: LoadedStudent) -> None:
    prompts = ["hello there", "What is the capital of France?", "Classify: the food was terrible"]
    batch = generate_answers(student, prompts, instruction=INSTRUCTION, reasoning="none", max_tokens=8, temperature=0.0)
    single = [
        generate_answers(student, [p], instruction=INSTRUCTION, reasoning="none", max_tokens=8, temperature=0.0)[0]
        for p in prompts
    ]
    assert [a.text for a in batch] == [a.text for a in single]
    for answer in batch:
        assert 1 <= answer.tokens_generated <= 8
        assert answer.elapsed_s > 0 and answer.tokens_per_s > 0
        assert answer.reasoning is None
    assert generate_answers(student, [], instruction="", reasoning="none", max_tokens=4, temperature=0.0) == []


def test_special_tokens_never_reach_answers(student: LoadedStudent) -> None:
    """Sampling hot makes the random model emit chat markers; mlx-lm's own text shows them, ours not."""
    import mlx.core as mx
    from mlx_lm import generate
    from mlx_lm.sample_utils import make_sampler

    ids = student.tokenizer.apply_chat_template(prompt_messages(INSTRUCTION, "hi"), add_generation_prompt=True)
    leaked_seed = None
    for seed in range(20):
        mx.random.seed(seed)
        raw = generate(student.model, student.tokenizer, ids, max_tokens=64, sampler=make_sampler(temp=2.0))
        if any(tok in raw for tok in SPECIAL_TOKENS):
            leaked_seed, leaked_raw = seed, raw
            break
    assert leaked_seed is not None, "the tiny model never sampled a special token; raise max_tokens"
    mx.random.seed(leaked_seed)
    (answer,) = generate_answers(
        student, ["hi"], instruction=INSTRUCTION, reasoning="none", max_tokens=64, temperature=2.0
    )
    for tok in SPECIAL_TOKENS:
        leaked_raw = leaked_raw.replace(tok, "")
    assert answer.text == leaked_raw.strip()
    batch = generate_answers(
        student, ["hi", "hello", "hey"] * 3, instruction=INSTRUCTION, reasoning="full", max_tokens=64, temperature=2.0
    )
    for answer in batch:
        assert not any(tok in answer.text or tok in (answer.reasoning or "") for tok in SPECIAL_TOKENS)


def test_over_context_prompt_is_refused_with_its_index(student: LoadedStudent) -> None:
    long_prompt = "word " * 3000
    with pytest.raises(NanodistillError, match=r"prompts\[1\] is \d+ tokens .* context is 2048 tokens"):
        generate_answers(
            student, ["short", long_prompt], instruction="", reasoning="none", max_tokens=4, temperature=0.0
        )
    with pytest.raises(NanodistillError, match="max_tokens"):
        generate_answers(student, ["x"], instruction="", reasoning="none", max_tokens=0, temperature=0.0)


def test_cache_loads_once_for_concurrent_gets_and_evicts_lru(base_dir: Path, tmp_path: Path) -> None:
    other = build_tiny_student(tmp_path / "other", seed=1)

    async def scenario() -> None:
        cache = ModelCache(size=1)
        got: list[tuple[LoadedStudent, bool]] = []

        async def fetch() -> None:
            got.append(await cache.get(str(base_dir), None))

        async with anyio.create_task_group() as tg:
            tg.start_soon(fetch)
            tg.start_soon(fetch)
        assert cache.loads == 1
        assert got[0][0] is got[1][0]
        assert [warm for _, warm in got] == [False, False]
        again, warm = await cache.get(str(base_dir), None)
        assert warm and again is got[0][0] and cache.loads == 1

        await cache.get(str(other), None)
        assert cache.keys() == [(str(other), None)] and cache.loads == 2
        with pytest.raises(NanodistillError, match="nowhere"):
            await cache.get(str(tmp_path / "nowhere"), None)
        assert cache.evict((str(other), None)) and not cache.evict((str(other), None))
        await cache.get(str(base_dir), None)
        cache.clear()
        assert cache.keys() == [] and cache.loads == 3

    anyio.run(scenario)


def test_concurrent_generation_on_one_model_is_serialised(student: LoadedStudent) -> None:
    prompts = ["hello", "What is the capital of France?"]
    expected = generate_answers(
        student, prompts, instruction=INSTRUCTION, reasoning="none", max_tokens=6, temperature=0.0
    )
    results: list[list[str]] = []

    async def ask() -> None:
        answers = await generate_off_loop(
            student, prompts, instruction=INSTRUCTION, reasoning="none", max_tokens=6, temperature=0.0
        )
        results.append([a.text for a in answers])

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(ask)

    anyio.run(scenario)
    assert results == [[a.text for a in expected]] * 3


def test_cache_size_must_be_positive() -> None:
    with pytest.raises(NanodistillError, match="NANODISTILL_MODEL_CACHE"):
        ModelCache(0)
