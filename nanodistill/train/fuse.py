"""Merge trained adapters into the base weights, so the student loads as a plain model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from nanodistill.errors import NanodistillError
from nanodistill.student.ref import loadable_source


def fuse_adapter(base_model: str, adapter_path: Path, out_dir: Path) -> Path:
    """Write base + adapter as one HF-layout folder that `mlx_lm.load(out_dir)` opens on its own."""
    source = loadable_source(base_model, "base_model")
    if not (adapter_path / "adapter_config.json").is_file():
        raise NanodistillError(
            f"adapter_path={str(adapter_path)!r} has no adapter_config.json; point it at a training output."
        )
    from mlx.utils import tree_unflatten
    from mlx_lm.utils import load, save

    model, tokenizer, config = cast(
        tuple[Any, Any, dict[str, Any]], load(source, adapter_path=str(adapter_path), return_config=True)
    )
    fused = [(name, module.fuse()) for name, module in model.named_modules() if hasattr(module, "fuse")]
    if fused:
        model.update_modules(tree_unflatten(fused))
    save(out_dir, source, model, tokenizer, config, donate_model=False)
    return out_dir
