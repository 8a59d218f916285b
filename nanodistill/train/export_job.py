"""The `export` job: a trained student as a fused HF folder, a GGUF, or an Ollama Modelfile + GGUF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from nanodistill.jobs.context import JobContext
from nanodistill.store import models as models_db
from nanodistill.student.files import check_model_files

EXPORT_FORMATS = ("fused", "gguf", "ollama")


async def run_export_job(ctx: JobContext) -> dict[str, Any]:
    from nanodistill.gguf.export import chat_template_of, export_gguf, write_modelfile
    from nanodistill.train.fuse import fuse_adapter

    model = await models_db.get_model(ctx.store, ctx.params["model_id"])
    fmt = ctx.params["format"]
    check_model_files(model.base_model, model.adapter_path)
    out = ctx.artifacts
    fused = out / "fused"
    await ctx.stage("fusing adapter")
    if model.adapter_path:
        adapter = Path(model.adapter_path)
        await anyio.to_thread.run_sync(fuse_adapter, model.base_model, adapter, fused)
    else:
        fused = Path(model.base_model)
    result: dict[str, Any] = {"format": fmt, "model_id": model.id, "fused_path": str(fused)}
    if fmt in ("gguf", "ollama"):
        await ctx.stage("writing gguf")
        gguf = await anyio.to_thread.run_sync(export_gguf, fused, out / "model.gguf", model.name)
        result["gguf_path"] = str(gguf)
        if fmt == "ollama":
            template = chat_template_of(fused) or ""
            modelfile = write_modelfile(gguf, template, out, system=model.instruction or None)
            result["modelfile_path"] = str(modelfile)
            result["note"] = f"run: ollama create {model.name} -f {modelfile}"
    result["path"] = result.get("modelfile_path") or result.get("gguf_path") or result["fused_path"]
    await ctx.event("info", f"exported {model.name} as {fmt}: {result['path']}", result)
    return result
