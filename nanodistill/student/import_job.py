"""The `import` job: convert (or reuse) a GGUF / Ollama / shortcut base and register it as a model."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import anyio

from nanodistill.jobs.context import JobContext
from nanodistill.store import models as models_db


async def run_import_job(ctx: JobContext) -> dict[str, Any]:
    from nanodistill.student.imports import import_base_model

    source = ctx.params["source"]
    await ctx.stage("importing", f"importing {source} (converted once, then verified and cached)")
    base = await anyio.to_thread.run_sync(import_base_model, source, ctx.settings, ctx.params["name"])
    info = {k: (str(v) if k == "path" else v) for k, v in asdict(base).items()}
    await ctx.event("info", f"base model ready at {base.path}", info)
    existing = await ctx.store.fetchone("SELECT id FROM models WHERE kind = 'base' AND path = ?", (str(base.path),))
    if existing:
        return {"model_id": existing["id"], "already_registered": True, **info}
    async with ctx.store.write() as db:
        model_id = await models_db.insert_model(
            db,
            name=ctx.params["name"],
            kind="base",
            base_model=str(base.path),
            job_id=ctx.id,
            params={"source": source},
            metrics={k: info[k] for k in ("architecture", "quantization", "max_logit_diff", "perplexity")},
            path=str(base.path),
        )
    return {"model_id": model_id, "model_name": ctx.params["name"], **info}
