"""Convert a GGUF model (llama.cpp / Ollama) into a folder that ``mlx_lm.load`` opens.

The tensors are read with ``mx.load`` (which unpacks Q4_0/Q4_1/Q8_0 into MLX's affine layout;
K-quants are decoded by ``gguf_kquants`` instead, as mlx gets Q4_K wrong), dequantized to
float32 (exactly the values llama.cpp computes with, and what LoRA on a CPU trains fastest on),
renamed to Hugging Face names, and the Q/K rows that llama.cpp permutes for its RoPE layout are
put back. The tokenizer is rebuilt from the GGUF vocabulary. Every
conversion is verified (see ``gguf_verify``) and removed again if it fails.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanodistill.errors import NanodistillError
from nanodistill.student.gguf_kquants import K_BYTES, dequantize_k
from nanodistill.student.gguf_reader import GgufHeader, GgufTensor, read_gguf_header
from nanodistill.student.gguf_tokenizer import write_hf_tokenizer

if TYPE_CHECKING:
    import mlx.core as mx

SUPPORTED_TYPES = ("F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K")
QUANT_BITS = {"Q8_0": 8, "Q4_0": 4, "Q4_1": 4}
GROUP_SIZE = 32

# GGUF architecture -> (mlx-lm model_type, HF class, Q/K rows permuted by llama.cpp's converter).
ARCHITECTURES = {
    "llama": ("llama", "LlamaForCausalLM", True),
    "qwen2": ("qwen2", "Qwen2ForCausalLM", False),
}
GLOBAL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_LAYER = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")


@dataclass(frozen=True)
class GgufConversion:
    """What a verified conversion produced."""

    path: Path
    name: str
    architecture: str
    quantization: str  # GGML types by share of parameters, e.g. "Q4_1+Q8_0+F32"
    max_logit_diff: float
    perplexity: float


def hf_name(gguf_name: str) -> str | None:
    """The Hugging Face parameter name for a GGUF tensor name, or None if it has none."""
    base, _, suffix = gguf_name.rpartition(".")
    if base in GLOBAL_NAMES and suffix == "weight":
        return f"{GLOBAL_NAMES[base]}.weight"
    match = _LAYER.fullmatch(gguf_name)
    if match and match.group(2) in LAYER_NAMES:
        return f"model.layers.{match.group(1)}.{LAYER_NAMES[match.group(2)]}.{match.group(3)}"
    return None


def check_supported(header: GgufHeader) -> None:
    """Refuse, with the reason, any GGUF this converter cannot turn into an equivalent model."""
    arch = header.architecture
    if arch not in ARCHITECTURES:
        raise NanodistillError(
            f"{header.path.name}: architecture {arch or '(missing)'!r} is not supported; supported: "
            "llama (Llama 3, SmolLM and other llama-family models) and qwen2 (Qwen2, Qwen2.5)."
        )
    bad = Counter(t.ggml_type for t in header.tensors if t.ggml_type not in SUPPORTED_TYPES)
    if bad:
        example = next(t.name for t in header.tensors if t.ggml_type in bad)
        raise NanodistillError(
            f"{header.path.name}: tensor type(s) {', '.join(sorted(bad))} (e.g. {example}) cannot be read; "
            f"supported: {', '.join(SUPPORTED_TYPES)}. Use a build of the model in one of those "
            "(e.g. an Ollama ':q4_K_M' or ':q8_0' tag, or llama.cpp's llama-quantize --allow-requantize ... Q8_0)."
        )
    unknown = [t.name for t in header.tensors if hf_name(t.name) is None]
    if unknown:
        raise NanodistillError(
            f"{header.path.name}: tensor(s) {', '.join(unknown[:3])} have no counterpart in a plain "
            f"{arch} model (rope scaling tables, mixtures of experts and extra norms are not supported)."
        )
    required = ("block_count", "embedding_length", "feed_forward_length", "attention.head_count")
    missing = [f"{arch}.{key}" for key in required if not isinstance(header.arch_value(key), int)]
    if not missing:
        names = {t.name for t in header.tensors}
        expected = ["token_embd.weight", "output_norm.weight"]
        expected += [f"blk.{i}.{part}.weight" for i in range(header.arch_value("block_count")) for part in LAYER_NAMES]
        missing = [name for name in expected if name not in names]
    if missing:
        raise NanodistillError(f"{header.path.name} is incomplete: {', '.join(missing[:4])} missing.")
    head_dim = header.arch_value(
        "attention.key_length", header.arch_value("embedding_length") // header.arch_value("attention.head_count")
    )
    if header.arch_value("rope.dimension_count", head_dim) != head_dim:
        raise NanodistillError(f"{header.path.name}: partial rotary embeddings are not supported.")
    scaling = header.arch_value("rope.scaling.type", "none")
    if scaling not in ("none", "linear"):
        raise NanodistillError(f"{header.path.name}: rope scaling {scaling!r} is not supported (none, linear).")


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


def load_gguf_arrays(path: Path) -> dict[str, mx.array]:
    """The tensors as mlx reads them (quantized ones as ``.weight``/``.scales``/``.biases``)."""
    import mlx.core as mx

    try:
        return mx.load(str(path), format="gguf")  # type: ignore[return-value]
    except (RuntimeError, ValueError) as exc:
        raise NanodistillError(f"{path} could not be read by mlx ({exc}); download or pull it again.") from exc


def dequantized(arrays: dict[str, mx.array], header: GgufHeader, tensor: GgufTensor) -> mx.array:
    """A GGUF tensor as float32, in GGUF (llama.cpp) row order."""
    import mlx.core as mx

    if tensor.ggml_type in K_BYTES:
        return mx.array(dequantize_k(header.path, tensor))
    if tensor.ggml_type in QUANT_BITS:
        prefix = tensor.name.removesuffix(".weight")
        return mx.dequantize(
            arrays[tensor.name],
            arrays[f"{prefix}.scales"].astype(mx.float32),
            arrays[f"{prefix}.biases"].astype(mx.float32),
            group_size=GROUP_SIZE,
            bits=QUANT_BITS[tensor.ggml_type],
        )
    return arrays[tensor.name].astype(mx.float32)


def unpermute_rows(weight: mx.array, n_head: int) -> mx.array:
    """Undo llama.cpp's Q/K row permutation (interleaved RoPE pairs -> Hugging Face halves)."""
    rows = weight.shape[0]
    shaped = weight.reshape(n_head, rows // n_head // 2, 2, *weight.shape[1:])
    return shaped.swapaxes(1, 2).reshape(weight.shape)


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

    from nanodistill.student.gguf_verify import verify_conversion

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
