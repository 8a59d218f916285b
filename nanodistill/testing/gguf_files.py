"""Write GGUF files byte by byte, for tests: quantized (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K), odd headers.

``mx.save_gguf`` writes float tensors only; llama.cpp quantizes with its own tools. This is an
independent numpy implementation of the GGUF container and of the three block formats, so the
converter's reading of quantized files is checked against bytes mlx did not produce.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nanodistill.gguf.reader import GGML_TYPE_NAMES, read_gguf_header
from nanodistill.gguf.tensors import load_gguf_arrays

TYPE_IDS = {name: type_id for type_id, name in GGML_TYPE_NAMES.items()}
ALIGNMENT = 32


def quantize(values: np.ndarray, ggml_type: str) -> bytes:
    """Rows of float32 -> GGML blocks (32 values; 256 for the K-quants), simple round-to-nearest."""
    blocks = np.asarray(values, dtype=np.float32).reshape(-1, 32)
    if ggml_type == "Q8_0":
        d = np.abs(blocks).max(axis=1) / 127.0
        q = np.round(blocks / np.where(d == 0, 1, d)[:, None]).astype(np.int8)
        return b"".join(s.tobytes() + row.tobytes() for s, row in zip(d.astype(np.float16), q, strict=True))
    if ggml_type == "Q4_0":
        signed_max = blocks[np.arange(len(blocks)), np.abs(blocks).argmax(axis=1)]
        d = signed_max / -8.0
        inv = np.where(d == 0, 0, 1 / np.where(d == 0, 1, d))
        q = np.clip(blocks * inv[:, None] + 8.5, 0, 15).astype(np.uint8)
        return b"".join(s.tobytes() + _nibbles(row) for s, row in zip(d.astype(np.float16), q, strict=True))
    if ggml_type == "Q4_1":
        low, high = blocks.min(axis=1), blocks.max(axis=1)
        d = (high - low) / 15.0
        inv = np.where(d == 0, 0, 1 / np.where(d == 0, 1, d))
        q = np.clip(np.round((blocks - low[:, None]) * inv[:, None]), 0, 15).astype(np.uint8)
        scales = zip(d.astype(np.float16), low.astype(np.float16), q, strict=True)
        return b"".join(s.tobytes() + m.tobytes() + _nibbles(row) for s, m, row in scales)
    if ggml_type == "Q4_K":
        return b"".join(_q4_k_block(block) for block in blocks.reshape(-1, 256))
    if ggml_type == "Q6_K":
        return b"".join(_q6_k_block(block) for block in blocks.reshape(-1, 256))
    raise ValueError(f"no quantizer for {ggml_type}")


def _q4_k_block(values: np.ndarray) -> bytes:
    """256 values: 8 sub-blocks of 32, each x = d*sc*q - dmin*m with 6-bit sc, m and 4-bit q."""
    sub = values.reshape(8, 32)
    lows = np.minimum(sub.min(axis=1), 0.0)
    scales = (sub.max(axis=1) - lows) / 15.0
    d, dmin = np.float16(scales.max() / 63.0), np.float16(-lows.min() / 63.0)
    sc = np.clip(np.round(scales / (float(d) or 1.0)), 0, 63).astype(np.uint8)
    m = np.clip(np.round(-lows / (float(dmin) or 1.0)), 0, 63).astype(np.uint8)
    step = np.where(sc == 0, 1.0, float(d) * sc)
    q = np.clip(np.round((sub + float(dmin) * m[:, None]) / step[:, None]), 0, 15).astype(np.uint8)
    packed = np.zeros(12, dtype=np.uint8)
    packed[:4] = sc[:4] | ((sc[4:] >> 4) << 6)
    packed[4:8] = m[:4] | ((m[4:] >> 4) << 6)
    packed[8:] = (sc[4:] & 0xF) | ((m[4:] & 0xF) << 4)
    nibbles = np.concatenate([q[2 * c] | (q[2 * c + 1] << 4) for c in range(4)]).astype(np.uint8)
    return d.tobytes() + dmin.tobytes() + packed.tobytes() + nibbles.tobytes()


def _q6_k_block(values: np.ndarray) -> bytes:
    """256 values: 16 sub-blocks of 16 with int8 scales, 6-bit q stored as 4 low + 2 high bits."""
    sub = values.reshape(16, 16)
    scales = np.abs(sub).max(axis=1) / 31.0
    d = np.float16(scales.max() / 127.0)
    sc = np.clip(np.round(scales / (float(d) or 1.0)), -128, 127).astype(np.int8)
    step = np.where(sc == 0, 1.0, float(d) * sc.astype(np.float32))
    q = (np.clip(np.round(sub / step[:, None]), -32, 31) + 32).astype(np.uint8).reshape(2, 4, 32)
    low = np.concatenate([np.concatenate([h[0] & 0xF | (h[2] & 0xF) << 4, h[1] & 0xF | (h[3] & 0xF) << 4]) for h in q])
    high = np.concatenate([h[0] >> 4 | (h[1] >> 4) << 2 | (h[2] >> 4) << 4 | (h[3] >> 4) << 6 for h in q])
    return low.astype(np.uint8).tobytes() + high.astype(np.uint8).tobytes() + sc.tobytes() + d.tobytes()


def _nibbles(q: np.ndarray) -> bytes:
    """Byte j holds value j (low nibble) and value j + 16 (high nibble)."""
    return (q[:16] | (q[16:] << 4)).astype(np.uint8).tobytes()


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _value(value: Any) -> tuple[int, bytes]:
    """GGUF (type id, payload) for a Python value: bool, int (uint32), float (float32), str, list."""
    if isinstance(value, bool):
        return 7, struct.pack("<?", value)
    if isinstance(value, int):
        return 4, struct.pack("<I", value)
    if isinstance(value, float):
        return 6, struct.pack("<f", value)
    if isinstance(value, str):
        return 8, _string(value)
    if isinstance(value, list):
        if value and isinstance(value[0], str):
            return 9, struct.pack("<IQ", 8, len(value)) + b"".join(_string(v) for v in value)
        if value and isinstance(value[0], float):
            return 9, struct.pack("<IQ", 6, len(value)) + struct.pack(f"<{len(value)}f", *value)
        return 9, struct.pack("<IQ", 5, len(value)) + struct.pack(f"<{len(value)}i", *value)
    raise TypeError(f"cannot write metadata value {value!r}")


def write_gguf(
    path: Path, metadata: Mapping[str, Any], tensors: Mapping[str, tuple[str, tuple[int, ...], bytes]]
) -> Path:
    """Write a GGUF v3 file; ``tensors`` maps name -> (GGML type, mlx-order shape, raw bytes)."""
    header = struct.pack("<4sIQQ", b"GGUF", 3, len(tensors), len(metadata))
    for key, value in metadata.items():
        type_id, payload = _value(value)
        header += _string(key) + struct.pack("<I", type_id) + payload
    data = b""
    for name, (ggml_type, shape, raw) in tensors.items():
        data += b"\0" * (-len(data) % ALIGNMENT)
        dims = tuple(reversed(shape))
        header += _string(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, TYPE_IDS[ggml_type], len(data))
        data += raw
    header += b"\0" * (-len(header) % ALIGNMENT)
    path.write_bytes(header + data)
    return path


def requantize_gguf(src: Path, dst: Path, ggml_type: str) -> Path:
    """Copy a float GGUF with every 2-D tensor quantized to ``ggml_type`` (1-D ones stay F32)."""
    import mlx.core as mx

    header = read_gguf_header(src)
    arrays = load_gguf_arrays(src)
    tensors = {}
    for tensor in header.tensors:
        values = np.array(arrays[tensor.name].astype(mx.float32))
        if values.ndim == 2:
            tensors[tensor.name] = (ggml_type, tensor.shape, quantize(values, ggml_type))
        else:
            tensors[tensor.name] = ("F32", tensor.shape, values.astype(np.float32).tobytes())
    return write_gguf(dst, header.metadata, tensors)


DAMAGES = ("magic", "header-cut", "data-cut", "huge-length", "empty")


def damaged_gguf(gguf: Path, out: Path, how: str) -> Path:
    """A copy of ``gguf`` broken one way (one of DAMAGES): wrong magic, cut header or data, a
    metadata key claiming a terabyte, or no bytes at all."""
    data = bytearray(gguf.read_bytes())
    if how == "magic":
        data[:4] = b"GGML"
    elif how == "header-cut":
        data = data[:300]
    elif how == "data-cut":
        data = data[: len(data) - 1000]
    elif how == "huge-length":
        data[24:32] = (2**40).to_bytes(8, "little")  # length of the first metadata key
    elif how == "empty":
        data = bytearray()
    out.write_bytes(bytes(data))
    return out


def tiny_llama_metadata(**changes: object) -> dict[str, object]:
    """The least metadata a llama GGUF header needs to be read, with `changes` on top."""
    meta: dict[str, object] = {
        "general.architecture": "llama",
        "llama.block_count": 1,
        "llama.embedding_length": 256,
        "llama.attention.head_count": 4,
        "tokenizer.ggml.model": "gpt2",
    }
    meta.update(changes)
    return meta
