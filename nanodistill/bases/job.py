"""The `import` job kind: register a model you already have (GGUF, Ollama, SmolLM2, a folder) as a base.

The plan checks the source from its header alone; the job converts (or reuses) it and registers it.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, Field

from nanodistill.jobs.context import JobContext
from nanodistill.jobs.plan import Plan, Problems
from nanodistill.settings import Settings
from nanodistill.store import models as models_db
from nanodistill.store.db import Store
from nanodistill.student.ref import gguf_problem, parse_model_ref, ref_problem
from nanodistill.train.plan import free_model_name


class ImportRequest(BaseModel):
    """import_model's arguments."""

    source: str = Field(description="A .gguf file, ollama:NAME[:TAG], smollm2-135m, or an MLX/HF model folder.")
    name: str | None = Field(default=None, description="Name to register it under (default: from the source).")


class ImportParams(BaseModel):
    source: str
    name: str


async def plan_import(store: Store, settings: Settings, request: ImportRequest) -> Plan:
    problems = Problems()
    ref = parse_model_ref(request.source, settings.import_roots)
    problem = ref_problem(ref, "source", settings.import_roots)
    if problem is None:
        header_problem = await anyio.to_thread.run_sync(gguf_problem, ref)
        problem = f"'source': {header_problem}" if header_problem else None
    if problem:
        problems.add(problem)
    default = Path(ref.text.split(":", 1)[-1]).stem or "base"
    name = await free_model_name(store, request.name, default, problems)
    problems.raise_if_any("import_model")
    return Plan("import", ImportParams(source=request.source, name=name))


async def run_import_job(ctx: JobContext) -> dict[str, Any]:
    from nanodistill.student.imports import import_base_model

    p = ctx.params_as(ImportParams)
    await ctx.stage("importing", f"importing {p.source} (converted once, then verified and cached)")
    base = await anyio.to_thread.run_sync(import_base_model, p.source, ctx.settings, p.name)
    info = {k: (str(v) if k == "path" else v) for k, v in asdict(base).items()}
    await ctx.event("info", f"base model ready at {base.path}", info)
    existing = await models_db.find_base_by_path(ctx.store, str(base.path))
    if existing:
        return {"model_id": existing.id, "already_registered": True, **info}
    async with ctx.store.write() as db:
        model_id = await models_db.insert_model(
            db,
            name=p.name,
            kind="base",
            base_model=str(base.path),
            job_id=ctx.id,
            params={"source": p.source},
            metrics={k: info[k] for k in ("architecture", "quantization", "max_logit_diff", "perplexity")},
            path=str(base.path),
        )
    return {"model_id": model_id, "model_name": p.name, **info}
