"""The MCPServer: lifespan (store open, interrupted jobs found), tools, resources and prompts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server.mcpserver import MCPServer

import resources.datasets
import resources.jobs
import resources.models
import resources.prompts
import resources.system
import tools.amplify
import tools.datasets
import tools.distill
import tools.evaluate
import tools.improve
import tools.jobs
import tools.models
import tools.student
import tools.training
from nanodistill.jobs.process import reconcile
from nanodistill.runtime import Runtime
from nanodistill.settings import Settings, load_settings
from nanodistill.store.db import Store
from server.apps import AppViews, build_apps
from tools._common import ArgumentGuard

INSTRUCTIONS = """\
nanodistill turns a handful of examples of a task into a small fine-tuned model.
Typical flow: create_dataset (10+ input/output seeds and an instruction) -> amplify_dataset with a
teacher model (dry_run=True first to quote the cost) -> train_student -> evaluate_student ->
query_student; or `distill` to run amplify, train and evaluate as one job.
Long work runs as jobs: tools that start one return at once with a job id; follow it with
get_job(job_id, wait_s=10, events_after=<cursor>) until its status is succeeded, failed or
cancelled. cancel_job stops a job; resume_job continues an interrupted, failed or cancelled one.
"""


def build_server(settings: Settings | None = None) -> MCPServer:
    """Build the server; the store opens in the lifespan so construction stays cheap."""
    resolved = settings or load_settings()

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[Runtime]:
        store = await Store.open(resolved.db_path)
        await reconcile(store)
        try:
            yield Runtime(settings=resolved, store=store)
        finally:
            await store.close()

    app = MCPServer(
        "nanodistill",
        title="nanodistill",
        description="Distil a small model from a few examples: datasets, teacher amplification, MLX training.",
        instructions=INSTRUCTIONS,
        version="0.1.0",
        lifespan=lifespan,
        extensions=[ArgumentGuard(), build_apps()],
    )
    app.middleware.append(AppViews())
    # The SDK logs each failed call's error text at INFO, and error texts quote the caller's arguments.
    logging.getLogger("mcp.server.mcpserver").setLevel(logging.WARNING)
    for module in (
        tools.datasets,
        tools.amplify,
        tools.jobs,
        tools.training,
        tools.models,
        tools.student,
        tools.evaluate,
        tools.distill,
        tools.improve,
        resources.datasets,
        resources.jobs,
        resources.models,
        resources.prompts,
        resources.system,
    ):
        module.register(app)
    return app
