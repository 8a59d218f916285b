"""Check a converted GGUF model against the original before anyone trains on it.

Two checks, both on a short English paragraph:

- logits: the converted folder, loaded by ``mlx_lm.load``, must give the same logits as an
  independent forward pass written here directly over the GGUF tensors as mlx reads them
  (quantized matmuls; K-quants as ``gguf_kquants`` decodes them), in llama.cpp's row order
  and with its RoPE convention. This catches wrong
  names, wrong Q/K un-permutation, wrong dequantization and wrong hyperparameters.
- perplexity: the converted model with its rebuilt tokenizer must find English predictable.
  A wrong tokenizer (or garbage weights) gives logits that agree but a perplexity in the
  hundreds or thousands.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from nanodistill.errors import NanodistillError
from nanodistill.gguf.reader import GgufHeader
from nanodistill.gguf.tensors import ARCHITECTURES, GROUP_SIZE, QUANT_BITS, dequantized

if TYPE_CHECKING:
    import mlx.core as mx

ENGLISH_PARAGRAPH = (
    "The history of the city begins with a small village on the bank of a river. Farmers grew wheat "
    "and barley in the fields, and fishermen sold their catch at the market every morning. Over the "
    "centuries, the village became a town, and the town became a city with schools, hospitals and a "
    "busy port. Today, more than a million people live there, and visitors come from all over the "
    "world to see its old churches, walk along the river and enjoy the local food."
)
# Relative to the largest reference logit: float32 reordering noise is ~1e-5 of it, a wrong
# permutation or hyperparameter is of the order of the logits themselves.
LOGIT_TOLERANCE = 1e-3


def reference_logits(arrays: dict[str, mx.array], header: GgufHeader, tokens: list[int]) -> mx.array:
    """Logits for ``tokens`` computed straight from the GGUF tensors, llama.cpp style."""
    import mlx.core as mx

    tensors = {t.name: t for t in header.tensors}
    types = {name: t.ggml_type for name, t in tensors.items()}
    _, _, permuted = ARCHITECTURES[header.architecture]
    heads = int(header.arch_value("attention.head_count"))
    kv_heads = int(header.arch_value("attention.head_count_kv", heads))
    hidden = int(header.arch_value("embedding_length"))
    head_dim = int(header.arch_value("attention.key_length", hidden // heads))
    eps = float(header.arch_value("attention.layer_norm_rms_epsilon", 1e-5))
    base = float(header.arch_value("rope.freq_base", 10000.0))
    scale = 1.0 / float(header.arch_value("rope.scaling.factor", 1.0))

    def linear(x: mx.array, name: str) -> mx.array:
        weight = arrays[f"{name}.weight"]
        kind = types[f"{name}.weight"]
        if kind in QUANT_BITS:
            y = mx.quantized_matmul(
                x,
                weight,
                arrays[f"{name}.scales"].astype(mx.float32),
                arrays[f"{name}.biases"].astype(mx.float32),
                transpose=True,
                group_size=GROUP_SIZE,
                bits=QUANT_BITS[kind],
            )
        else:
            y = x @ dequantized(arrays, header, tensors[f"{name}.weight"]).T
        bias = arrays.get(f"{name}.bias")
        return y if bias is None else y + bias.astype(mx.float32)

    def norm(x: mx.array, name: str) -> mx.array:
        return mx.fast.rms_norm(x, arrays[f"{name}.weight"].astype(mx.float32), eps)

    ids = mx.array(tokens)
    if types["token_embd.weight"] in QUANT_BITS:
        x = mx.dequantize(
            arrays["token_embd.weight"][ids],
            arrays["token_embd.scales"][ids].astype(mx.float32),
            arrays["token_embd.biases"][ids].astype(mx.float32),
            group_size=GROUP_SIZE,
            bits=QUANT_BITS[types["token_embd.weight"]],
        )[None]
    else:
        x = dequantized(arrays, header, tensors["token_embd.weight"])[ids][None]
    length = len(tokens)
    for layer in range(int(header.arch_value("block_count"))):
        p = f"blk.{layer}"
        h = norm(x, f"{p}.attn_norm")
        q = linear(h, f"{p}.attn_q").reshape(1, length, heads, head_dim).transpose(0, 2, 1, 3)
        k = linear(h, f"{p}.attn_k").reshape(1, length, kv_heads, head_dim).transpose(0, 2, 1, 3)
        v = linear(h, f"{p}.attn_v").reshape(1, length, kv_heads, head_dim).transpose(0, 2, 1, 3)
        q = mx.fast.rope(q, head_dim, traditional=permuted, base=base, scale=scale, offset=0)
        k = mx.fast.rope(k, head_dim, traditional=permuted, base=base, scale=scale, offset=0)
        att = mx.fast.scaled_dot_product_attention(q, k, v, scale=head_dim**-0.5, mask="causal")
        x = x + linear(att.transpose(0, 2, 1, 3).reshape(1, length, heads * head_dim), f"{p}.attn_output")
        h = norm(x, f"{p}.ffn_norm")
        gate = linear(h, f"{p}.ffn_gate")
        x = x + linear(gate * mx.sigmoid(gate) * linear(h, f"{p}.ffn_up"), f"{p}.ffn_down")
    x = norm(x, "output_norm")
    return linear(x, "output" if "output.weight" in arrays else "token_embd")[0]


def verify_conversion(
    arrays: dict[str, mx.array], header: GgufHeader, folder: Path, max_perplexity: float
) -> tuple[float, float]:
    """(max abs logit difference, perplexity); NanodistillError if either is out of bounds."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm import load

    loaded = load(str(folder))
    model, tokenizer = loaded[0], loaded[1]
    tokens = tokenizer.encode(ENGLISH_PARAGRAPH)  # with the BOS token where the model wants one
    if tokenizer.decode(tokens, skip_special_tokens=True) != ENGLISH_PARAGRAPH:
        raise NanodistillError(
            f"{header.path.name}: the rebuilt tokenizer does not decode its own encoding back to the text."
        )
    expected = reference_logits(arrays, header, tokens)
    got = model(mx.array(tokens)[None])[0].astype(mx.float32)
    diff = float(mx.abs(got - expected).max())
    bound = LOGIT_TOLERANCE * max(1.0, float(mx.abs(expected).max()))
    if not diff <= bound:
        raise NanodistillError(
            f"{header.path.name}: the converted model's logits differ from the GGUF's by {diff:.4g} "
            f"(allowed {bound:.3g}); the conversion is wrong for this model and was discarded."
        )
    loss = nn.losses.cross_entropy(got[:-1], mx.array(tokens[1:]), reduction="mean")
    perplexity = math.exp(float(loss))
    if not perplexity <= max_perplexity:
        raise NanodistillError(
            f"{header.path.name}: perplexity {perplexity:.1f} on a plain English paragraph is above "
            f"{max_perplexity:g}: the weights or the tokenizer are not a working language model; "
            "the conversion was discarded."
        )
    return diff, perplexity
