"""Find the GGUF file behind an Ollama model name, in the local Ollama models folder.

Ollama stores each pulled model as a manifest (``manifests/<host>/<namespace>/<name>/<tag>``,
OCI-style JSON) whose layers point at content-addressed blobs (``blobs/sha256-<hex>``); the layer
with media type ``application/vnd.ollama.image.model`` is the GGUF. Nothing here talks to the
Ollama server: a pulled model is just files.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from nanodistill.errors import NanodistillError

PREFIX = "ollama:"
DEFAULT_HOST = "registry.ollama.ai"
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
ADAPTER_MEDIA_TYPE = "application/vnd.ollama.image.adapter"
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_DIGEST = re.compile(r"sha256[:-]([0-9a-f]{64})")


@dataclass(frozen=True)
class OllamaModel:
    reference: str  # canonical "name:tag" (with namespace when not "library")
    gguf_path: Path
    digest: str  # sha256 hex of the GGUF blob (Ollama checks it on pull)


def models_dirs() -> list[Path]:
    """Where to look: ``OLLAMA_MODELS`` when set, else the per-user and the Linux service defaults."""
    configured = os.environ.get("OLLAMA_MODELS")
    if configured:
        return [Path(configured).expanduser()]
    dirs = [Path.home() / ".ollama" / "models"]
    if sys.platform.startswith("linux"):
        dirs.append(Path("/usr/share/ollama/.ollama/models"))
    return dirs


def parse_reference(spec: str) -> tuple[str, str, str, str]:
    """``ollama:[host/][namespace/]name[:tag]`` -> (host, namespace, name, tag)."""
    body = spec.removeprefix(PREFIX).strip()
    name_part, tag = body.rsplit(":", 1) if ":" in body.rsplit("/", 1)[-1] else (body, "latest")
    parts = name_part.split("/")
    if len(parts) > 3 or not all(_PART.fullmatch(p) for p in [*parts, tag]):
        raise NanodistillError(
            f"{spec!r} is not an Ollama model name; use ollama:NAME[:TAG], e.g. ollama:llama3.2:1b "
            "or ollama:smollm2:135m (letters, digits, '.', '_' and '-')."
        )
    host = parts[0] if len(parts) == 3 else DEFAULT_HOST
    namespace = parts[-2] if len(parts) >= 2 else "library"
    return host, namespace, parts[-1], tag


def resolve_ollama(spec: str) -> OllamaModel:
    """The GGUF blob of a pulled Ollama model; NanodistillError naming what is missing."""
    host, namespace, name, tag = parse_reference(spec)
    reference = f"{name}:{tag}" if namespace == "library" else f"{namespace}/{name}:{tag}"
    roots = [d for d in models_dirs() if d.is_dir()]
    if not roots:
        raise NanodistillError(
            f"no Ollama models folder found (looked in {', '.join(str(d) for d in models_dirs())}); "
            "install Ollama and pull the model, or set OLLAMA_MODELS to the folder holding manifests/ and blobs/."
        )
    for root in roots:
        manifest = root / "manifests" / host / namespace / name / tag
        if manifest.is_file():
            digest = _model_digest(manifest)
            blob = root / "blobs" / f"sha256-{digest}"
            if not blob.is_file():
                raise NanodistillError(
                    f"Ollama blob {blob} (the GGUF of {reference}) is missing; run `ollama pull {reference}` again."
                )
            return OllamaModel(reference=reference, gguf_path=blob, digest=digest)
    tags = sorted(p.name for root in roots for p in (root / "manifests" / host / namespace / name).glob("*"))
    known = f" Tags pulled for {name}: {', '.join(tags)}." if tags else ""
    raise NanodistillError(
        f"Ollama model {reference} is not pulled here (no manifest under "
        f"{', '.join(str(r / 'manifests') for r in roots)}). Run `ollama pull {reference}`.{known}"
    )


def _model_digest(manifest: Path) -> str:
    try:
        layers = json.loads(manifest.read_text(encoding="utf-8"))["layers"]
        media = {layer["mediaType"]: layer["digest"] for layer in layers}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NanodistillError(f"Ollama manifest {manifest} is unreadable ({exc}); pull the model again.") from exc
    if ADAPTER_MEDIA_TYPE in media:
        raise NanodistillError(
            f"Ollama model at {manifest} applies a LoRA adapter on top of its GGUF; only plain models import."
        )
    if MODEL_MEDIA_TYPE not in media:
        raise NanodistillError(f"Ollama manifest {manifest} has no {MODEL_MEDIA_TYPE} layer (no GGUF weights).")
    digest = _DIGEST.fullmatch(str(media[MODEL_MEDIA_TYPE]))
    if digest is None:
        raise NanodistillError(f"Ollama manifest {manifest} names its model blob {media[MODEL_MEDIA_TYPE]!r}.")
    return digest.group(1)
