"""Whether a registered model's files are still on disk, named precisely when they are not."""

from __future__ import annotations

from pathlib import Path

from nanodistill.errors import NanodistillError
from nanodistill.student.ref import loadable_source

ADAPTER_FILES = ("adapter_config.json", "adapters.safetensors")


def check_model_files(base_model: str, adapter_path: str | None) -> None:
    loadable_source(base_model, "base_model")
    if adapter_path is None:
        return
    folder = Path(adapter_path)
    for name in ADAPTER_FILES:
        if not (folder / name).is_file():
            raise NanodistillError(
                f"the model's adapter file {folder / name} is missing (removed from disk?); retrain the model "
                "or delete it with delete_model."
            )
