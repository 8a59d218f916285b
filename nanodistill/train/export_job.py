"""The `export` job: a trained student as a fused HF folder, a GGUF, or an Ollama Modelfile + GGUF."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import BaseModel, Field

from nanodistill.jobs.context import JobContext
from nanodistill.jobs.plan import Plan, Problems
from nanodistill.settings import Settings
from nanodistill.store import models as models_db
from nanodistill.store.db import Store
from nanodistill.student.files import check_model_files

ExportFormat = Literal["fused", "gguf", "ollama"]


class ExportRequest(BaseModel):
    """export_model's arguments."""

    model: str = Field(description="A model's id or name.")
    format: ExportFormat = Field(
        default="fused",
        description="fused (an HF-layout folder), gguf (llama-family models), or ollama (GGUF plus a Modelfile).",
    )


class ExportParams(BaseModel):
    model_id: str
    format: ExportFormat


async def plan_export(store: Store, settings: Settings, request: ExportRequest) -> Plan:
    problems = Problems()
    found = await problems.check_async(lambda: models_db.get_model(store, request.model))
    if found is not None:
        problems.check(lambda: check_model_files(found.base_model, found.adapter_path))
    problems.raise_if_any("export_model")
    assert found is not None
    return Plan("export", ExportParams(model_id=found.id, format=request.format))


async def run_export_job(ctx: JobContext) -> dict[str, Any]:
    from nanodistill.gguf.export import chat_template_of, export_gguf, write_modelfile
    from nanodistill.train.fuse import fuse_adapter

    p = ctx.params_as(ExportParams)
    model = await models_db.get_model(ctx.store, p.model_id)
    fmt = p.format
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
