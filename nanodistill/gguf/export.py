"""Export a fused student folder to GGUF (F16) for llama.cpp and Ollama, plus an Ollama Modelfile.

mlx-lm's own exporter labels every tokenizer SentencePiece and writes no merges, so llama.cpp
misreads byte-level BPE vocabularies (SmolLM, Llama 3, Qwen2). Here the vocabulary is written as
``gpt2`` with its merges, token types, pre-tokenizer name, special ids and chat template, and
the Q/K rows are permuted into llama.cpp's RoPE layout for the llama architecture.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanodistill.errors import NanodistillError
from nanodistill.gguf.reader import read_gguf_header
from nanodistill.gguf.tensors import ARCHITECTURES, GLOBAL_NAMES, LAYER_NAMES, check_supported
from nanodistill.gguf.tokenizer import gguf_tokenizer_metadata

if TYPE_CHECKING:
    import mlx.core as mx

_HF_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)")
_GGUF_PARTS = {hf: gguf for gguf, hf in LAYER_NAMES.items()}
_GGUF_GLOBALS = {f"{hf}.weight": f"{gguf}.weight" for gguf, hf in GLOBAL_NAMES.items()}
GGML_FILE_TYPE_F16 = 1

CHATML_TEMPLATE = """{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if ne .Role "system" }}<|im_start|>{{ .Role }}
{{ .Content }}{{ if not (and $last (eq .Role "assistant")) }}<|im_end|>
{{ end }}
{{- end }}
{{- if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ end }}
{{- end }}"""
LLAMA3_TEMPLATE = """{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}{{ if not (and $last (eq .Role "assistant")) }}<|eot_id|>{{ end }}
{{- end }}
{{- if and $last (ne .Role "assistant") }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}"""
# chat format -> (marker in the Jinja chat template, Ollama Go template, stop strings)
CHAT_FORMATS = {
    "chatml": ("<|im_start|>", CHATML_TEMPLATE, ("<|im_start|>", "<|im_end|>")),
    "llama3": ("<|start_header_id|>", LLAMA3_TEMPLATE, ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
}


def gguf_name(hf: str) -> str | None:
    """The GGUF tensor name for a Hugging Face parameter name, or None if llama.cpp has none."""
    if hf in _GGUF_GLOBALS:
        return _GGUF_GLOBALS[hf]
    match = _HF_LAYER.fullmatch(hf)
    if match and match.group(2) in _GGUF_PARTS:
        return f"blk.{match.group(1)}.{_GGUF_PARTS[match.group(2)]}.{match.group(3)}"
    return None


def permute_rows(weight: mx.array, n_head: int) -> mx.array:
    """Hugging Face Q/K rows (RoPE halves) -> llama.cpp's interleaved pairs."""
    rows = weight.shape[0]
    shaped = weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:])
    return shaped.swapaxes(1, 2).reshape(weight.shape)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NanodistillError(f"{path} is missing or not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise NanodistillError(f"{path} does not hold a JSON object.")
    return data


def _tokenizer_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "tokenizer_config.json"
    return _read_json(path) if path.is_file() else {}


def chat_template_of(model_dir: Path) -> str | None:
    """The folder's Jinja chat template (tokenizer_config.json or chat_template.jinja)."""
    template = _tokenizer_config(model_dir).get("chat_template")
    if isinstance(template, str):
        return template
    jinja = model_dir / "chat_template.jinja"
    return jinja.read_text(encoding="utf-8") if jinja.is_file() else None


def _gguf_weights(model_dir: Path, config: dict[str, Any], permuted: bool) -> dict[str, mx.array]:
    import mlx.core as mx

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise NanodistillError(f"{model_dir} has no *.safetensors weights; pass a fused model folder.")
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    tied = bool(config.get("tie_word_embeddings", False))
    out: dict[str, mx.array] = {}
    for file in files:
        for hf, value in mx.load(str(file)).items():  # type: ignore[union-attr]
            if hf.endswith("rotary_emb.inv_freq") or (tied and hf == "lm_head.weight"):
                continue
            name = gguf_name(hf)
            if name is None:
                raise NanodistillError(f"{file.name}: parameter {hf} has no GGUF counterpart for this architecture.")
            if permuted and ".attn_q." in name:
                value = permute_rows(value, heads)
            elif permuted and ".attn_k." in name:
                value = permute_rows(value, kv_heads)
            dtype = mx.float16 if value.ndim == 2 else mx.float32
            out[name] = value.astype(mx.float32).astype(dtype)
    if "token_embd.weight" not in out or (not tied and "output.weight" not in out):
        raise NanodistillError(f"{model_dir}: the embedding or lm_head weights are missing.")
    return out


def _model_metadata(config: dict[str, Any], arch: str, name: str) -> dict[str, Any]:
    import mlx.core as mx

    def u32(value: Any) -> mx.array:
        return mx.array(int(value), dtype=mx.uint32)

    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or hidden // heads)
    meta: dict[str, Any] = {
        "general.architecture": arch,
        "general.name": name,
        "general.file_type": u32(GGML_FILE_TYPE_F16),
        "general.quantization_version": u32(2),
        f"{arch}.context_length": u32(config.get("max_position_embeddings") or 4096),
        f"{arch}.embedding_length": u32(hidden),
        f"{arch}.block_count": u32(config["num_hidden_layers"]),
        f"{arch}.feed_forward_length": u32(config["intermediate_size"]),
        f"{arch}.attention.head_count": u32(heads),
        f"{arch}.attention.head_count_kv": u32(config.get("num_key_value_heads") or heads),
        f"{arch}.rope.dimension_count": u32(head_dim),
        f"{arch}.rope.freq_base": mx.array(float(config.get("rope_theta", 10000.0)), dtype=mx.float32),
        f"{arch}.attention.layer_norm_rms_epsilon": mx.array(float(config["rms_norm_eps"]), dtype=mx.float32),
    }
    if head_dim != hidden // heads:
        meta[f"{arch}.attention.key_length"] = u32(head_dim)
        meta[f"{arch}.attention.value_length"] = u32(head_dim)
    scaling = config.get("rope_scaling")
    if scaling:
        if scaling.get("type", scaling.get("rope_type")) != "linear":
            raise NanodistillError(f"rope_scaling {scaling} is not exported (only linear scaling).")
        meta[f"{arch}.rope.scaling.type"] = "linear"
        meta[f"{arch}.rope.scaling.factor"] = mx.array(float(scaling["factor"]), dtype=mx.float32)
    return meta


def _tokenizer_metadata(model_dir: Path, config: dict[str, Any], vocab_rows: int) -> dict[str, Any]:
    import mlx.core as mx

    meta = gguf_tokenizer_metadata(model_dir)
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    types: list[int] = meta["tokenizer.ggml.token_type"]
    if len(tokens) > vocab_rows:
        raise NanodistillError(f"{model_dir}: the tokenizer has {len(tokens)} tokens but the embedding {vocab_rows}.")
    padding = range(len(tokens), vocab_rows)
    tokens += [f"[PAD{i}]" for i in padding]
    types += [5] * len(padding)
    ids = {tok: i for i, tok in enumerate(tokens)}
    tok_config = _tokenizer_config(model_dir)

    def token_id(key: str, config_key: str) -> int | None:
        value = tok_config.get(key)
        text = value.get("content") if isinstance(value, dict) else value
        if isinstance(text, str) and text in ids:
            return ids[text]
        fallback = config.get(config_key)
        fallback = fallback[0] if isinstance(fallback, list) and fallback else fallback
        return fallback if isinstance(fallback, int) else None

    out: dict[str, Any] = {
        **meta,
        "tokenizer.ggml.token_type": mx.array(types, dtype=mx.int32),
        "tokenizer.ggml.add_bos_token": mx.array(bool(meta["tokenizer.ggml.add_bos_token"])),
    }
    for gguf_key, key, config_key in (
        ("bos", "bos_token", "bos_token_id"),
        ("eos", "eos_token", "eos_token_id"),
        ("unknown", "unk_token", "unk_token_id"),
        ("padding", "pad_token", "pad_token_id"),
    ):
        index = token_id(key, config_key)
        if index is not None:
            out[f"tokenizer.ggml.{gguf_key}_token_id"] = mx.array(index, dtype=mx.uint32)
    template = chat_template_of(model_dir)
    if template:
        out["tokenizer.chat_template"] = template
    return out


def export_gguf(model_dir: Path, out_path: Path, name: str | None = None) -> Path:
    """Write ``out_path`` (F16 GGUF) from a fused, unquantized llama/qwen2 folder; returns it."""
    import mlx.core as mx

    config = _read_json(model_dir / "config.json")
    model_type = config.get("model_type")
    arch = next((a for a, (mt, _, _) in ARCHITECTURES.items() if mt == model_type), None)
    if arch is None:
        raise NanodistillError(
            f"{model_dir}: model_type {model_type!r} is not exported to GGUF; supported: "
            f"{', '.join(mt for mt, _, _ in ARCHITECTURES.values())}."
        )
    if config.get("quantization") or config.get("quantization_config"):
        raise NanodistillError(
            f"{model_dir} holds a quantized MLX model; fuse it with dequantize=True "
            "(mlx_lm fuse --dequantize) before exporting to GGUF."
        )
    weights = _gguf_weights(model_dir, config, ARCHITECTURES[arch][2])
    metadata = {
        **_model_metadata(config, arch, name or model_dir.name),
        **_tokenizer_metadata(model_dir, config, int(weights["token_embd.weight"].shape[0])),
    }
    if out_path.suffix != ".gguf":
        raise NanodistillError(f"GGUF output path {out_path} must end in .gguf.")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(f".{out_path.stem}.{uuid.uuid4().hex[:8]}.gguf")
    try:
        mx.save_gguf(str(partial), weights, metadata)
        check_supported(read_gguf_header(partial))
        os.replace(partial, out_path)
    finally:
        partial.unlink(missing_ok=True)
    return out_path


def chat_format(chat_template: str) -> str:
    """Which chat format a Jinja chat template writes ("chatml" or "llama3")."""
    for kind, (marker, _, _) in CHAT_FORMATS.items():
        if marker in chat_template:
            return kind
    raise NanodistillError(
        "the model's chat template is neither ChatML (<|im_start|>) nor Llama 3 (<|start_header_id|>); "
        "no Ollama TEMPLATE is written for it."
    )


def write_modelfile(gguf_path: Path, chat_template: str, out_dir: Path, system: str | None = None) -> Path:
    """An Ollama Modelfile next to the GGUF (``ollama create NAME -f Modelfile``); returns its path."""
    _, template, stops = CHAT_FORMATS[chat_format(chat_template)]
    rel = Path(gguf_path).resolve()
    try:
        source = f"./{rel.relative_to(out_dir.resolve())}"
    except ValueError:
        source = str(rel)
    lines = [f"FROM {source}", f'TEMPLATE """{template}"""']
    if system:
        if '"""' in system:
            raise NanodistillError('the system prompt contains """, which a Modelfile cannot quote.')
        lines.append(f'SYSTEM """{system}"""')
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "Modelfile"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
