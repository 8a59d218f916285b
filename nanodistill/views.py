"""What the tools and resources show of a job or a model: one pydantic view each, shared by every surface."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from nanodistill.store import datasets as ds
from nanodistill.store import jobs as jobs_db
from nanodistill.store import models as models_db
from nanodistill.store.db import Store
from nanodistill.store.jobs import JobKindName, JobStatus
from nanodistill.store.models import ModelKind


class JobEvent(BaseModel):
    seq: int
    at: float
    level: str
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


class Progress(BaseModel):
    done: float
    total: float | None
    fraction: float | None


class ChildJob(BaseModel):
    id: str
    kind: str
    status: str
    stage: str | None


class JobView(BaseModel):
    id: str
    kind: JobKindName
    status: JobStatus
    stage: str | None
    progress: Progress
    metrics: dict[str, Any]
    cost_usd: float
    max_cost_usd: float | None = Field(default=None, description="The job's teacher budget, when it was given one.")
    result: dict[str, Any] | None = None
    error: str | None = None
    note: str | None = None
    parent_id: str | None = None
    children: list[ChildJob] = Field(default_factory=list)
    attempts: int
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    events: list[JobEvent] = Field(default_factory=list, description="Events after events_after, oldest first.")
    events_cursor: int = Field(description="Pass as events_after on the next get_job to get only newer events.")
    next_poll_s: float | None = Field(description="When to call get_job again; null once the job has ended.")


class JobList(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None = None


def job_budget(params: dict[str, Any]) -> float | None:
    """The teacher budget a job was started with: its own max_cost_usd, or its amplify options' (improve)."""
    for found in (params, params.get("amplify")):
        if isinstance(found, dict) and isinstance(found.get("max_cost_usd"), int | float):
            return float(found["max_cost_usd"])
    return None


async def job_view(store: Store, job: jobs_db.Job, events_after: int | None) -> JobView:
    after = events_after if events_after is not None else 0
    events = await jobs_db.events_after(store, job.id, after)
    cursor = events[-1].seq if events else max(after, 0)
    total = job.progress_total
    fraction = min(job.progress_done / total, 1.0) if total else None
    active = job.status in jobs_db.ACTIVE
    children = await jobs_db.child_jobs(store, job.id)
    return JobView(
        id=job.id,
        kind=job.kind,
        status=job.status,
        stage=job.stage,
        progress=Progress(done=job.progress_done, total=total, fraction=fraction),
        metrics=job.metrics,
        cost_usd=round(job.cost_usd, 6),
        max_cost_usd=job_budget(job.params),
        result=job.result,
        error=job.error,
        note=job.note,
        parent_id=job.parent_id,
        children=[ChildJob(id=c.id, kind=c.kind, status=c.status, stage=c.stage) for c in children],
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        events=[JobEvent(seq=e.seq, at=e.at, level=e.level, message=e.message, data=e.data) for e in events],
        events_cursor=cursor,
        next_poll_s=(2.0 if job.status == "running" else 5.0) if active else None,
    )


class ModelView(BaseModel):
    id: str
    name: str
    kind: ModelKind
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


def card_summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The headline of a report card: verdict and, per test source, base vs student scores."""
    if not report:
        return None
    sources = [
        {k: s.get(k) for k in ("name", "size", "metric", "student", "base", "teacher_agreement")}
        for s in report.get("sources", [])
    ]
    return {"ready": report.get("ready"), "verdict": report.get("verdict"), "sources": sources}


async def model_view(store: Store, model: models_db.Model, full: bool = True) -> ModelView:
    dataset = await ds.find_dataset_by_id(store, model.dataset_id) if model.dataset_id else None
    metrics = dict(model.metrics)
    if not full:
        metrics.pop("loss_history", None)
    uri = f"nanodistill://models/{model.id}"
    return ModelView(
        id=model.id,
        name=model.name,
        kind=model.kind,
        base_model=model.base_model,
        method=model.method,
        dataset=dataset.name if dataset else None,
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


class ExampleRow(BaseModel):
    position: int
    input: str
    output: str
    reasoning: str | None = None
    source: str
    split: str


class DatasetSummary(BaseModel):
    name: str
    instruction: str
    description: str
    examples: int
    version: int
    parent: str | None = None
    created_at: float
    updated_at: float


class DatasetDetail(BaseModel):
    dataset: DatasetSummary
    counts_by_source: dict[str, int]
    counts_by_split: dict[str, int]
    stats: dict[str, float]
    duplicates_removed: int
    sample: list[ExampleRow]


def dataset_summary(dataset: ds.Dataset, examples: int, parent: str | None = None) -> DatasetSummary:
    return DatasetSummary(
        name=dataset.name,
        instruction=dataset.instruction,
        description=dataset.description,
        examples=examples,
        version=dataset.version,
        parent=parent,
        created_at=dataset.created_at,
        updated_at=dataset.updated_at,
    )


async def dataset_detail(store: Store, name: str, sample: int, offset: int = 0) -> DatasetDetail:
    found = await ds.get_dataset(store, name)
    counts = await ds.dataset_counts(store, found.id)
    stats = await ds.dataset_lengths(store, found.id)
    parent = (await ds.get_dataset_by_id(store, found.parent_id)).name if found.parent_id else None
    rows = await ds.page_examples(store, found.id, offset, sample)
    return DatasetDetail(
        dataset=dataset_summary(found, int(stats["examples"]), parent),
        counts_by_source=counts["by_source"],
        counts_by_split=counts["by_split"],
        stats=stats,
        duplicates_removed=found.duplicates_removed,
        sample=[example_row(e) for e in rows],
    )


def example_row(example: ds.Example) -> ExampleRow:
    return ExampleRow(
        position=example.position,
        input=example.input,
        output=example.output,
        reasoning=example.reasoning,
        source=example.source,
        split=example.split,
    )
