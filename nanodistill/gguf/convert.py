"""Convert a GGUF model (llama.cpp / Ollama) into a folder that ``mlx_lm.load`` opens.

The tensors are read with ``mx.load`` (which unpacks Q4_0/Q4_1/Q8_0 into MLX's affine layout;
K-quants are decoded by ``nanodistill.gguf.kquants`` instead, as mlx gets Q4_K wrong), dequantized to
float32 (exactly the values llama.cpp computes with, and what LoRA on a CPU trains fastest on),
renamed to Hugging Face names, and the Q/K rows that llama.cpp permutes for its RoPE layout are
put back. The tokenizer is rebuilt from the GGUF vocabulary. Every
conversion is verified (see ``nanodistill.gguf.verify``) and removed again if it fails.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanodistill.gguf.reader import GgufHeader, read_gguf_header
from nanodistill.gguf.tensors import (
    ARCHITECTURES,
    check_supported,
    dequantized,
    hf_name,
    load_gguf_arrays,
    unpermute_rows,
)
from nanodistill.gguf.tokenizer import write_hf_tokenizer
from nanodistill.gguf.verify import verify_conversion

if TYPE_CHECKING:
    import mlx.core as mx


@dataclass(frozen=True)
class GgufConversion:
    """What a verified conversion produced."""

    path: Path
    name: str
    architecture: str
    quantization: str  # GGML types by share of parameters, e.g. "Q4_1+Q8_0+F32"
    max_logit_diff: float
    perplexity: float


def quantization_label(header: GgufHeader) -> str:
    counts: Counter[str] = Counter()
    for tensor in header.tensors:
        size = 1
        for dim in tensor.shape:
            size *= dim
        counts[tensor.ggml_type] += size
    return "+".join(name for name, _ in counts.most_common())


def model_name(header: GgufHeader) -> str:
    meta = header.metadata
    if meta.get("general.basename"):
        return "-".join(str(p) for p in (meta["general.basename"], meta.get("general.size_label")) if p)
    return str(meta.get("general.name") or header.path.stem)


def hf_config(header: GgufHeader, vocab_size: int, tied: bool, eos_ids: list[int]) -> dict[str, Any]:
    """config.json for the converted model, from the GGUF hyperparameters."""
    arch = header.architecture
    model_type, hf_class, _ = ARCHITECTURES[arch]
    hidden = int(header.arch_value("embedding_length"))
    heads = int(header.arch_value("attention.head_count"))
    config: dict[str, Any] = {
        "architectures": [hf_class],
        "model_type": model_type,
        "hidden_size": hidden,
        "intermediate_size": int(header.arch_value("feed_forward_length")),
        "num_hidden_layers": int(header.arch_value("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(header.arch_value("attention.head_count_kv", heads)),
        "head_dim": int(header.arch_value("attention.key_length", hidden // heads)),
        "rms_norm_eps": float(header.arch_value("attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(header.arch_value("rope.freq_base", 10000.0)),
        "max_position_embeddings": int(header.arch_value("context_length", 4096)),
        "vocab_size": vocab_size,
        "tie_word_embeddings": tied,
        "torch_dtype": "float32",
    }
    if header.arch_value("rope.scaling.type") == "linear":
        config["rope_scaling"] = {"type": "linear", "factor": float(header.arch_value("rope.scaling.factor"))}
    bos = header.metadata.get("tokenizer.ggml.bos_token_id")
    if isinstance(bos, int):
        config["bos_token_id"] = bos
    if eos_ids:
        config["eos_token_id"] = eos_ids[0] if len(eos_ids) == 1 else eos_ids
    return config


def hf_weights(arrays: dict[str, mx.array], header: GgufHeader) -> dict[str, mx.array]:
    """All parameters, float32, with Hugging Face names and row order."""
    _, _, permuted = ARCHITECTURES[header.architecture]
    heads = int(header.arch_value("attention.head_count"))
    kv_heads = int(header.arch_value("attention.head_count_kv", heads))
    weights = {}
    for tensor in header.tensors:
        value = dequantized(arrays, header, tensor)
        if permuted and ".attn_q." in tensor.name:
            value = unpermute_rows(value, heads)
        elif permuted and ".attn_k." in tensor.name:
            value = unpermute_rows(value, kv_heads)
        weights[str(hf_name(tensor.name))] = value
    return weights


def convert_gguf(gguf_path: Path, out_dir: Path, max_perplexity: float = 100.0) -> GgufConversion:
    """Convert and verify; on any failure the folder is removed and NanodistillError says why."""
    import mlx.core as mx

    header = read_gguf_header(gguf_path)
    check_supported(header)
    arrays = load_gguf_arrays(gguf_path)
    out_dir.mkdir(parents=True, exist_ok=False)
    try:
        weights = hf_weights(arrays, header)
        vocab_size = int(weights["model.embed_tokens.weight"].shape[0])
        context = int(header.arch_value("context_length", 4096))
        eos_ids = write_hf_tokenizer(header.metadata, out_dir, context)
        config = hf_config(header, vocab_size, "lm_head.weight" not in weights, eos_ids)
        (out_dir / "config.json").write_text(json.dumps(config, indent=2))
        mx.save_safetensors(str(out_dir / "model.safetensors"), weights, metadata={"format": "mlx"})
        del weights
        diff, perplexity = verify_conversion(arrays, header, out_dir, max_perplexity)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return GgufConversion(
        path=out_dir,
        name=model_name(header),
        architecture=header.architecture,
        quantization=quantization_label(header),
        max_logit_diff=diff,
        perplexity=perplexity,
    )
