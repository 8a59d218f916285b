"""Read a GGUF file's header (metadata and tensor table) in pure Python, with bounds checks.

mlx reads the tensors, but it does not say which GGML type each one had (Q4_1 and Q4_K both
come back as packed uint32) and a damaged header should be refused with a message, not
handed to C code. So the header is parsed here first; every length is checked against the
file size, and every tensor must lie inside the data section.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanodistill.errors import NanodistillError

GGML_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
    23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16",
    34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}  # fmt: skip

# (elements per block, bytes per block) for the types whose size is checked against the file.
GGML_BLOCKS = {
    "F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "F64": (1, 8), "I8": (1, 1), "I16": (1, 2),
    "I32": (1, 4), "I64": (1, 8), "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22),
    "Q5_1": (32, 24), "Q8_0": (32, 34), "Q2_K": (256, 84), "Q3_K": (256, 110),
    "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210),
}  # fmt: skip

# GGUF metadata value types: id -> struct format (scalars) ; 8 = string, 9 = array.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_COUNT = 1 << 24


@dataclass(frozen=True)
class GgufTensor:
    name: str
    shape: tuple[int, ...]  # mlx order: rows first (GGUF stores the fastest dimension first)
    ggml_type: str
    offset: int  # absolute byte offset in the file
    nbytes: int | None  # None for types whose block size is not known here


@dataclass(frozen=True)
class GgufHeader:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[GgufTensor]
    file_size: int

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def arch_value(self, key: str, default: Any = None) -> Any:
        """An architecture-scoped hyperparameter, e.g. ``llama.block_count``."""
        return self.metadata.get(f"{self.architecture}.{key}", default)


class _Cursor:
    """Position in the mapped file; every read checks that the bytes exist."""

    def __init__(self, buf: mmap.mmap, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path

    def fail(self, what: str) -> NanodistillError:
        return NanodistillError(
            f"{self.path} is not a readable GGUF file: {what} (at byte {self.pos} of {len(self.buf)}). "
            "It may be truncated (an incomplete download) or corrupt; download or pull it again."
        )

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise self.fail(f"{what} runs past the end of the file")
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return data

    def unpack(self, fmt: str, what: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def count(self, what: str) -> int:
        n = int(self.unpack("<Q", what))
        if n > _MAX_COUNT:
            raise self.fail(f"{what} is {n}, which is not plausible")
        return n

    def string(self, what: str) -> str:
        n = int(self.unpack("<Q", f"{what} length"))
        try:
            return self.take(n, what).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what} is not UTF-8") from exc

    def value(self, vtype: int, key: str) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype], f"value of {key}")
        if vtype == _STRING:
            return self.string(f"value of {key}")
        if vtype == _ARRAY:
            item_type = int(self.unpack("<I", f"array type of {key}"))
            n = self.count(f"array length of {key}")
            if item_type in _SCALARS:
                fmt = _SCALARS[item_type]
                size = struct.calcsize(fmt)
                raw = self.take(n * size, f"array {key}")
                return list(struct.unpack(f"<{n}{fmt[1]}", raw))
            if item_type == _STRING:
                return [self.string(f"item of {key}") for _ in range(n)]
            raise self.fail(f"array {key} has item type {item_type}, which GGUF does not define")
        raise self.fail(f"metadata {key} has value type {vtype}, which GGUF does not define")


def _align(offset: int, alignment: int) -> int:
    return offset + (-offset) % alignment


def read_gguf_header(path: Path) -> GgufHeader:
    """Parse and bounds-check a GGUF header; NanodistillError if it is not a sound GGUF file."""
    path = Path(path)
    if not path.is_file():
        raise NanodistillError(f"GGUF file {path} does not exist (or is not a file); check the path.")
    with path.open("rb") as fh:
        size = path.stat().st_size
        if size < 24:
            raise NanodistillError(f"{path} is only {size} bytes: not a GGUF file (truncated or empty).")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            cur = _Cursor(buf, path)
            magic = cur.take(4, "magic")
            if magic != b"GGUF":
                raise NanodistillError(
                    f"{path} is not a GGUF file: it starts with {magic!r}, not b'GGUF'. "
                    "Pass a .gguf model file (llama.cpp / Ollama format)."
                )
            version = int(cur.unpack("<I", "version"))
            if version not in (2, 3):
                raise NanodistillError(
                    f"{path} is GGUF version {version}; only versions 2 and 3 (little-endian) are read. "
                    "Re-convert it with a current llama.cpp."
                )
            n_tensors = cur.count("tensor count")
            n_kv = cur.count("metadata count")
            metadata: dict[str, Any] = {}
            for _ in range(n_kv):
                key = cur.string("metadata key")
                metadata[key] = cur.value(int(cur.unpack("<I", f"type of {key}")), key)
            infos = []
            for _ in range(n_tensors):
                name = cur.string("tensor name")
                n_dims = int(cur.unpack("<I", f"dimensions of {name}"))
                if not 1 <= n_dims <= 4:
                    raise cur.fail(f"tensor {name} has {n_dims} dimensions")
                dims = [int(cur.unpack("<Q", f"shape of {name}")) for _ in range(n_dims)]
                type_id = int(cur.unpack("<I", f"type of {name}"))
                offset = int(cur.unpack("<Q", f"offset of {name}"))
                infos.append((name, dims, type_id, offset))
            alignment = metadata.get("general.alignment", 32)
            if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
                raise cur.fail(f"general.alignment is {alignment!r}, not a power of two")
            data_start = _align(cur.pos, alignment)
    tensors = [_tensor(path, size, data_start, alignment, *info) for info in infos]
    return GgufHeader(path=path, version=version, metadata=metadata, tensors=tensors, file_size=size)


def _tensor(
    path: Path, size: int, data_start: int, alignment: int, name: str, dims: list[int], type_id: int, offset: int
) -> GgufTensor:
    ggml_type = GGML_TYPE_NAMES.get(type_id, f"type {type_id}")
    if offset % alignment:
        raise NanodistillError(f"{path} is corrupt: tensor {name} is not aligned to {alignment} bytes.")
    nbytes = None
    if ggml_type in GGML_BLOCKS:
        per_block, block_bytes = GGML_BLOCKS[ggml_type]
        n = 1
        for d in dims:
            n *= d
        if dims[0] % per_block:
            raise NanodistillError(
                f"{path} is corrupt: tensor {name} ({ggml_type}) has a row of {dims[0]} values, "
                f"not a multiple of its block size {per_block}."
            )
        nbytes = n // per_block * block_bytes
        if data_start + offset + nbytes > size:
            raise NanodistillError(
                f"{path} is truncated or corrupt: tensor {name} ends at byte {data_start + offset + nbytes} "
                f"but the file has {size} bytes. Download or pull it again."
            )
    return GgufTensor(
        name=name, shape=tuple(reversed(dims)), ggml_type=ggml_type, offset=data_start + offset, nbytes=nbytes
    )
