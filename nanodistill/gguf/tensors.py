"""What nanodistill knows of GGUF tensors: supported types and architectures, Hugging Face names,
and reading a tensor back as float32 in llama.cpp's row order (shared by conversion, verification
and export)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from nanodistill.errors import NanodistillError
from nanodistill.gguf.kquants import K_BYTES, dequantize_k
from nanodistill.gguf.reader import GgufHeader, GgufTensor

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
