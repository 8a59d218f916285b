"""Model tools: list, inspect, delete, export, and import base models from GGUF / Ollama."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel

from nanodistill.bases.job import ImportRequest, plan_import
from nanodistill.errors import NanodistillError
from nanodistill.jobs.start import start_job
from nanodistill.runtime import Runtime
from nanodistill.store import models as models_db
from nanodistill.store.models import ModelKind
from nanodistill.train.export_job import ExportRequest, plan_export
from nanodistill.views import JobView, ModelList, ModelView, job_view, model_view
from tools._common import DESTRUCTIVE, READ_ONLY, STARTS_JOB, register_tools, runtime
from tools._request import takes
from tools._roots import ClientRoots, request_settings


class DeletedModel(BaseModel):
    deleted: str
    files_removed: list[str]


async def list_models(
    ctx: Context, kind: ModelKind | None = None, limit: int = 50, cursor: str | None = None
) -> ModelList:
    """List registered models (trained students and imported bases), newest first."""
    if not 1 <= limit <= 200:
        raise NanodistillError(f"'limit' must be between 1 and 200, got {limit}.")
    rt = runtime(ctx)
    try:
        before = float(cursor) if cursor else None
    except ValueError:
        raise NanodistillError("'cursor' is not one this server returned; pass next_cursor as given.") from None
    found = await models_db.list_models(rt.store, kind, limit + 1, before)
    views = [await model_view(rt.store, m, full=False) for m in found[:limit]]
    return ModelList(models=views, next_cursor=repr(found[limit - 1].created_at) if len(found) > limit else None)


async def get_model(model: str, ctx: Context) -> ModelView:
    """One model by id or name: base, method, dataset, job, hyperparameters, losses, tokens trained, wall
    time, paths, and the report card summary once evaluated (full card: the models/{id}/card resource)."""
    rt = runtime(ctx)
    return await model_view(rt.store, await models_db.get_model(rt.store, model))


def _owned_paths(rt: Runtime, model: models_db.Model) -> list[Path]:
    """Files the model owns: only folders under artifacts, never a user's own base model folder."""
    root = rt.settings.artifacts.resolve()
    owned = []
    for raw in (model.adapter_path, model.path):
        if raw and Path(raw).resolve().is_relative_to(root):
            owned.append(Path(raw).resolve())
    return owned


async def delete_model(model: str, ctx: Context) -> DeletedModel:
    """Delete a model and its files under the artifacts folder (adapters, fused copies)."""
    rt = runtime(ctx)
    found = await models_db.get_model(rt.store, model)
    paths = _owned_paths(rt, found)
    async with rt.store.write() as db:
        await models_db.delete_model(db, found.id)
    rt.models.evict((found.base_model, found.adapter_path))
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    return DeletedModel(deleted=found.id, files_removed=[str(p) for p in paths])


@takes(ExportRequest)
async def export_model(ctx: Context, **arguments: Any) -> JobView:
    """Export a trained model as a background `export` job: `fused` (an HF-layout folder that
    mlx_lm.load opens with no adapter), `gguf` (llama-family models), or `ollama` (GGUF plus a Modelfile
    with the chat template and stop tokens). The job result holds the paths."""
    rt = runtime(ctx)
    plan = await plan_export(rt.store, rt.settings, ExportRequest.model_validate(arguments))
    return await job_view(rt.store, await start_job(rt.store, rt.settings, plan), None)


@takes(ImportRequest)
async def import_model(ctx: Context, roots: ClientRoots = None, **arguments: Any) -> JobView:
    """Register a model you already have as a student base, as a background `import` job: a .gguf file
    (llama and qwen2 architectures with a byte-level BPE vocabulary, e.g. Llama 3, SmolLM, Qwen2; tensor
    types F32, F16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K), `ollama:NAME[:TAG]`,
    `smollm2-135m` (SmolLM2-135M-Instruct from PyPI), or an MLX/HF folder. GGUFs are converted once to
    an MLX folder, verified against the original's logits, and cached by content hash. Use the
    resulting model's name or id as train_student's base_model."""
    rt = runtime(ctx)
    plan = await plan_import(rt.store, request_settings(ctx, roots), ImportRequest.model_validate(arguments))
    return await job_view(rt.store, await start_job(rt.store, rt.settings, plan), None)


def register(app: MCPServer) -> None:
    register_tools(
        app,
        [
            (list_models, "List models", READ_ONLY),
            (get_model, "Inspect a model", READ_ONLY),
            (delete_model, "Delete a model", DESTRUCTIVE),
            (export_model, "Export a model", STARTS_JOB),
            (import_model, "Import a base model (GGUF, Ollama)", STARTS_JOB),
        ],
    )
