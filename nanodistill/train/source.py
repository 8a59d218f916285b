"""Check a base model reference before loading it: a local model folder, or a Hub id for mlx-lm."""

from __future__ import annotations

import re
from pathlib import Path

from nanodistill.errors import NanodistillError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def model_source(value: str | Path, field: str) -> str:
    """The string mlx_lm.load should get; raises NanodistillError naming `field` when it cannot work."""
    text = str(value).strip()
    path = Path(text).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise NanodistillError(
                f"{field}={text!r} is not a model folder (no config.json); point it at a folder with "
                "config.json, *.safetensors and tokenizer files."
            )
        return str(path.resolve())
    if isinstance(value, Path) or not HUB_ID.match(text):
        raise NanodistillError(
            f"{field}={text!r} does not exist; give an existing model folder or a Hugging Face id like 'org/name'."
        )
    return text
