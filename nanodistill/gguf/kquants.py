"""Dequantize llama.cpp's K-quants (Q4_K, Q6_K) with numpy, straight from the file's bytes.

These are the types of Ollama's default ``q4_K_M`` builds. mlx reads them by converting to
float16 through gguflib, whose Q4_K path applies each 64-value chunk's first scale and min to
both of its 32-value halves, so the second half of every chunk comes out wrong. The block
layouts below follow llama.cpp's ``dequantize_row_q4_K`` / ``dequantize_row_q6_K``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nanodistill.gguf.reader import GgufTensor

K_BLOCK = 256
K_BYTES = {"Q4_K": 144, "Q6_K": 210}


def _f16(column: np.ndarray) -> np.ndarray:
    return column.copy().view(np.float16).astype(np.float32)[:, 0]


def _q4_k(blocks: np.ndarray) -> np.ndarray:
    """|d f16|dmin f16|12 bytes of 6-bit (scale, min) x 8|128 bytes of nibbles|."""
    d, dmin = _f16(blocks[:, 0:2]), _f16(blocks[:, 2:4])
    packed = blocks[:, 4:16].astype(np.int32)
    nibbles = blocks[:, 16:144]
    out = np.empty((len(blocks), K_BLOCK), dtype=np.float32)
    for j in range(8):
        if j < 4:
            scale, low = packed[:, j] & 63, packed[:, j + 4] & 63
        else:
            scale = (packed[:, j + 4] & 0xF) | ((packed[:, j - 4] >> 6) << 4)
            low = (packed[:, j + 4] >> 4) | ((packed[:, j] >> 6) << 4)
        chunk = nibbles[:, (j // 2) * 32 : (j // 2) * 32 + 32]
        q = (chunk & 0xF) if j % 2 == 0 else (chunk >> 4)
        out[:, j * 32 : (j + 1) * 32] = (d * scale)[:, None] * q - (dmin * low)[:, None]
    return out


def _q6_k(blocks: np.ndarray) -> np.ndarray:
    """|128 bytes low 4 bits|64 bytes high 2 bits|16 int8 scales|d f16|, values stored +32."""
    low, high = blocks[:, :128].astype(np.int32), blocks[:, 128:192].astype(np.int32)
    scales = blocks[:, 192:208].copy().view(np.int8).astype(np.float32)
    d = _f16(blocks[:, 208:210])
    out = np.empty((len(blocks), K_BLOCK), dtype=np.float32)
    sub = np.arange(32) // 16
    for half in range(2):
        ql, qh = low[:, half * 64 : half * 64 + 64], high[:, half * 32 : half * 32 + 32]
        sc = scales[:, half * 8 : half * 8 + 8]
        quads = (
            (ql[:, :32] & 0xF) | ((qh & 3) << 4),
            (ql[:, 32:] & 0xF) | (((qh >> 2) & 3) << 4),
            (ql[:, :32] >> 4) | (((qh >> 4) & 3) << 4),
            (ql[:, 32:] >> 4) | (((qh >> 6) & 3) << 4),
        )
        for k, q in enumerate(quads):
            start = half * 128 + k * 32
            out[:, start : start + 32] = d[:, None] * sc[:, sub + 2 * k] * (q - 32)
    return out


def dequantize_k(path: Path, tensor: GgufTensor) -> np.ndarray:
    """A Q4_K or Q6_K tensor of ``path`` as float32, in its mlx-order shape."""
    count = 1
    for dim in tensor.shape:
        count *= dim
    n_blocks = count // K_BLOCK
    raw = np.fromfile(path, dtype=np.uint8, count=n_blocks * K_BYTES[tensor.ggml_type], offset=tensor.offset)
    blocks = raw.reshape(n_blocks, K_BYTES[tensor.ggml_type])
    values = _q4_k(blocks) if tensor.ggml_type == "Q4_K" else _q6_k(blocks)
    return values.reshape(tensor.shape)
