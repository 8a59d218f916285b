"""A base model reference as a user writes it, parsed once.

Every argument that names a model to start from (`base_model`, `student`, `source`, `model`) is
one of: the shortcut ``smollm2-135m``, ``ollama:NAME[:TAG]``, a ``.gguf`` file, a local model
folder, a Hugging Face id, or the name or id of a base registered by import_model. Parsing,
the cheap checks and the error texts live here, so every tool says the same thing the same way.
Given the request's allowed folders, a local path outside them is kind "outside" whether or not
it exists: nothing about it is looked at, so no error can tell a client what is there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nanodistill.errors import NanodistillError
from nanodistill.gguf.ollama import PREFIX as OLLAMA_PREFIX
from nanodistill.gguf.ollama import resolve_ollama
from nanodistill.reach import is_inside, local_path, outside_error
from nanodistill.store import models as models_db
from nanodistill.store.db import Store

SMOLLM2_SHORTCUT = "smollm2-135m"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
RefKind = Literal["shortcut", "ollama", "gguf", "folder", "hub", "missing", "empty", "outside"]
KINDS_HELP = (
    f"a model folder, a .gguf file, ollama:NAME[:TAG], {SMOLLM2_SHORTCUT!r} or a Hugging Face id like "
    "'mlx-community/Qwen2.5-0.5B-Instruct-4bit'"
)


@dataclass(frozen=True)
class ModelRef:
    text: str
    kind: RefKind

    @property
    def path(self) -> Path:
        return Path(self.text).expanduser()

    @property
    def needs_import(self) -> bool:
        """GGUF-backed sources are converted once into an MLX folder before mlx-lm can load them."""
        return self.kind in ("shortcut", "ollama", "gguf")


def parse_model_ref(text: str, roots: Sequence[Path] | None = None) -> ModelRef:
    """The kind of reference `text` is. With `roots` (a request's allowed folders), nothing outside them
    is looked at: a path there is "outside", a Hub-shaped id a Hub id and a bare word "missing", whether
    or not a relative folder of that name exists."""
    spec = text.strip()
    if not spec:
        return ModelRef(spec, "empty")
    if spec.lower() == SMOLLM2_SHORTCUT:
        return ModelRef(spec, "shortcut")
    if spec.startswith(OLLAMA_PREFIX):
        return ModelRef(spec, "ollama")
    if roots is not None and not is_inside(local_path(spec), roots):
        gguf = spec.lower().endswith(".gguf")
        if HUB_ID.match(spec) and not gguf:
            return ModelRef(spec, "hub")
        path_shaped = gguf or "/" in spec or os.sep in spec or spec.startswith(("~", "."))
        return ModelRef(spec, "outside" if path_shaped else "missing")
    if spec.lower().endswith(".gguf"):
        return ModelRef(spec, "gguf")
    if Path(spec).expanduser().exists():
        return ModelRef(spec, "folder")
    if HUB_ID.match(spec):
        return ModelRef(spec, "hub")
    return ModelRef(spec, "missing")


def ref_problem(ref: ModelRef, field: str, roots: Sequence[Path] = ()) -> str | None:
    """Why `ref` cannot be a base model, checked cheaply (no download, no conversion), or None; `roots`
    are the allowed folders an "outside" reference is told about."""
    if ref.kind == "outside":
        return str(outside_error(field, ref.text, roots)).rstrip(".")
    if ref.kind == "empty":
        return f"'{field}' is empty: give {KINDS_HELP}"
    if ref.kind == "ollama":
        try:
            resolve_ollama(ref.text)
        except NanodistillError as exc:
            return f"'{field}': {exc}"
    if ref.kind == "gguf" and not ref.path.is_file():
        return f"'{field}': no GGUF file at {ref.text!r}; check the path"
    if ref.kind == "folder" and not (ref.path / "config.json").is_file():
        return (
            f"'{field}' {ref.text!r} is not a model folder (no config.json); give a folder with config.json, "
            "weights and tokenizer files, or a .gguf file"
        )
    if ref.kind == "missing":
        return f"'{field}' {ref.text!r} does not exist; give {KINDS_HELP}"
    return None


def gguf_problem(ref: ModelRef) -> str | None:
    """Why the GGUF behind a .gguf path or an ollama name cannot be converted, from its header alone
    (architecture, tensor types, truncation: no weights are read), or None. Blocking: file reads."""
    if ref.kind == "ollama":
        try:
            path = resolve_ollama(ref.text).gguf_path
        except NanodistillError:
            return None  # ref_problem names what is missing
    elif ref.kind == "gguf" and ref.path.is_file():
        path = ref.path
    else:
        return None
    from nanodistill.gguf.reader import read_gguf_header
    from nanodistill.gguf.tensors import check_supported

    try:
        check_supported(read_gguf_header(path))
    except NanodistillError as exc:
        return str(exc)
    return None


def loadable_source(value: str | Path, field: str, roots: Sequence[Path] | None = None) -> str:
    """What mlx_lm.load should open for an already converted model: a folder, or a Hub id to fetch
    (a Path is always a folder); with `roots`, a folder must be inside them."""
    ref = parse_model_ref(str(value), roots)
    if ref.kind == "outside":
        raise outside_error(field, ref.text, roots or ())
    if ref.kind == "folder":
        if not (ref.path / "config.json").is_file():
            raise NanodistillError(
                f"{field}={ref.text!r} is not a model folder (no config.json); point it at a folder with "
                "config.json, *.safetensors and tokenizer files."
            )
        return str(ref.path.resolve())
    if ref.kind == "hub" and not isinstance(value, Path):
        return ref.text
    raise NanodistillError(
        f"{field}={ref.text!r} does not exist; give an existing model folder or a Hugging Face id like 'org/name'."
    )


async def registered_base(store: Store, text: str, field: str) -> str:
    """`text` itself, or the folder of the registered base model it names (by name or id).

    Bases registered by import_model are referred to by name afterwards; a trained student is not a
    base (train from its fused export instead), and a base whose folder is gone must be imported again.
    """
    found = await models_db.find_model(store, text.strip()) if text.strip() else None
    if found is None:
        return text
    if found.kind != "base":
        raise NanodistillError(
            f"'{field}': {found.name!r} is a trained student, not a base model. Train from its base "
            f"({found.base_model}), or export it with export_model(format='fused') and pass that folder."
        )
    folder = found.path or found.base_model
    if not Path(folder).is_dir():
        raise NanodistillError(
            f"'{field}': the folder of base model {found.name!r} ({folder}) is gone; import it again with "
            f"import_model(source={found.params.get('source', folder)!r})."
        )
    return folder


async def base_problems(store: Store, text: str, field: str, roots: Sequence[Path]) -> tuple[str, list[str]]:
    """The base model a request names, resolved through the registry, and every problem with it
    (the GGUF header check runs in a worker thread: it reads the file). A path the user gives must
    be inside `roots`, the request's allowed folders; a registered base's folder is the server's own."""
    import anyio

    try:
        resolved = await registered_base(store, text, field)
    except NanodistillError as exc:
        return text, [str(exc).rstrip(".")]
    ref = parse_model_ref(resolved, None if resolved != text else roots)
    problem = ref_problem(ref, field, roots)
    if problem is None:
        problem = await anyio.to_thread.run_sync(gguf_problem, ref)
        if problem is not None:
            problem = f"'{field}': {problem.rstrip('.')}"
    return resolved, [problem] if problem else []
