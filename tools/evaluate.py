"""evaluate_student: start an `evaluate` job that writes the model's report card."""

from __future__ import annotations

from typing import Literal

from mcp.server.mcpserver import Context, MCPServer

from nanodistill.errors import NanodistillError
from nanodistill.evaluate.job import test_sources
from nanodistill.jobs.start import start_job
from nanodistill.store import datasets as ds
from nanodistill.store import models as models_db
from nanodistill.student.files import check_model_files
from tools._common import STARTS_JOB, register_tools, runtime
from tools.jobs import JobView, job_view

Metric = Literal["auto", "exact", "numeric", "json", "label"]


async def evaluate_student(
    model: str,
    ctx: Context,
    test_dataset: str | None = None,
    compare_base: bool = True,
    metric: Metric = "auto",
    max_tokens: int | None = None,
) -> JobView:
    """Evaluate a trained student on held-out data as a background `evaluate` job, and write its report
    card: base vs student score with 95% bootstrap intervals per test source (seeds set aside at dataset
    creation, the teacher-labelled test slice of the amplified data, and `test_dataset` if given),
    per-label table, best and worst examples, latency, and a `ready` verdict. `metric`: auto (picked
    from the outputs), exact, numeric, json or label. Read the card at nanodistill://models/{id}/card."""
    rt = runtime(ctx)
    found = await models_db.get_model(rt.store, model)
    if found.kind != "trained":
        raise NanodistillError(f"'model': {found.name} is a base model; evaluate a trained student instead.")
    check_model_files(found.base_model, found.adapter_path)
    if max_tokens is not None and not 1 <= max_tokens <= 4096:
        raise NanodistillError(f"'max_tokens' must be between 1 and 4096, got {max_tokens}.")
    test_id = None
    if test_dataset is not None:
        test = await ds.get_dataset(rt.store, test_dataset, "test_dataset")
        test_id = test.id
    if not await test_sources(rt.store, found.dataset_id, test_id):
        if test_id:
            raise NanodistillError(f"'test_dataset' {test_dataset!r} is empty; add examples to it first.")
        raise NanodistillError(
            f"model {found.name} has no held-out examples (no seeds set aside, no teacher-labelled test slice): "
            "pass test_dataset, or create the dataset with holdout_fraction > 0."
        )
    params = {
        "model_id": found.id,
        "test_dataset_id": test_id,
        "compare_base": compare_base,
        "metric": metric,
        "max_tokens": max_tokens,
    }
    job = await start_job(rt.store, rt.settings, "evaluate", params)
    return await job_view(rt.store, job, None)


def register(app: MCPServer) -> None:
    register_tools(app, [(evaluate_student, "Evaluate a student (report card)", STARTS_JOB)])
