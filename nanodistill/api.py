"""The engine's front door: start a distill job, or run one to the end from Python.

`distill()` keeps the keyword arguments of the original NanoDistill library (`name`, `seed`,
`instruction`, `teacher`, `student`, `augment_factor`, `output_dir`, `training_data`) and adds
ours; an unknown keyword is an error naming the closest valid one.
"""

from __future__ import annotations

import difflib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from nanodistill.distill.plan import DistillRequest, plan_distill
from nanodistill.errors import NanodistillError
from nanodistill.jobs.process import reconcile, signal_job
from nanodistill.jobs.start import start_job
from nanodistill.settings import load_settings
from nanodistill.store import jobs as jobs_db
from nanodistill.store import models as models_db
from nanodistill.store.db import Store


@dataclass
class DistillResult:
    """What `distill()` hands back: where the model is, how good it is, and how it was made."""

    model_id: str
    model_name: str
    model_path: Path
    base_model: str
    metrics: dict[str, Any]
    report_card: dict[str, Any] | None
    card_markdown: str
    job_id: str


DISTILL_KEYWORDS = ("seed", "output_dir", "on_progress", *(k for k in DistillRequest.model_fields if k != "seeds"))


def distill(
    name: str,
    seed: list[dict[str, Any]] | None = None,
    instruction: str = "",
    teacher: str | None = None,
    student: str = "smollm2-135m",
    augment_factor: int = 50,
    output_dir: str | Path = "./outputs",
    training_data: list[dict[str, Any]] | str | None = None,
    *,
    path: str | None = None,
    target_size: int | None = None,
    holdout_fraction: float = 0.2,
    max_cost_usd: float | None = None,
    training: dict[str, Any] | None = None,
    api_base: str | None = None,
    api_key_env: str | None = None,
    input_cost_per_token: float | None = None,
    output_cost_per_token: float | None = None,
    on_progress: Callable[[jobs_db.Job], None] | None = None,
    **unknown: Any,
) -> DistillResult:
    """Distill a small model from seed examples and wait for it, as the original NanoDistill did.

    Runs the same `distill` job the MCP tool starts (in its own process, with the fast BLAS), waits,
    then copies the adapter, report card and metrics to `output_dir/name`. `on_progress` is called
    with the job record as it moves. Ctrl-C cancels the job (resume it later with resume_job).
    """
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, DISTILL_KEYWORDS, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise TypeError(f"distill() got unknown keyword arguments: {', '.join(hints)}")
    arguments = {
        "name": name,
        "seeds": seed,
        "path": path,
        "instruction": instruction,
        "teacher": teacher,
        "student": student,
        "augment_factor": augment_factor,
        "target_size": target_size,
        "holdout_fraction": holdout_fraction,
        "max_cost_usd": max_cost_usd,
        "training": training,
        "api_base": api_base,
        "api_key_env": api_key_env,
        "input_cost_per_token": input_cost_per_token,
        "output_cost_per_token": output_cost_per_token,
        "training_data": training_data,
    }
    return anyio.run(_distill, DistillRequest.model_validate(arguments), Path(output_dir), on_progress)


async def _distill(
    request: DistillRequest, output_dir: Path, on_progress: Callable[[jobs_db.Job], None] | None
) -> DistillResult:
    settings = load_settings()
    store = await Store.open(settings.db_path)
    try:
        job = await start_job(store, settings, await plan_distill(store, settings, request))
        try:
            job = await wait_for_job(store, job.id, on_progress)
        except BaseException:
            with anyio.CancelScope(shield=True):
                async with store.write() as db:
                    await jobs_db.request_cancel(db, job.id)
                signal_job(job.pid)
            raise
        if job.status != "succeeded" or not job.result:
            raise NanodistillError(f"distill job {job.id} ended {job.status}: {job.error or job.note or 'no result'}")
        model = await models_db.get_model(store, job.result["model_id"])
        return _write_outputs(model, job, output_dir / request.name)
    finally:
        await store.close()


async def wait_for_job(
    store: Store, job_id: str, on_change: Callable[[jobs_db.Job], None] | None = None, poll_s: float = 1.0
) -> jobs_db.Job:
    """Poll a job until it ends, noticing a dead process the same way the server does."""
    last: tuple[Any, ...] | None = None
    while True:
        await reconcile(store, [job_id])
        job = await jobs_db.get_job(store, job_id)
        state = (job.status, job.stage, job.progress_done)
        if on_change is not None and state != last:
            on_change(job)
        last = state
        if job.status not in jobs_db.ACTIVE:
            return job
        await anyio.sleep(poll_s)


def _write_outputs(model: models_db.Model, job: jobs_db.Job, folder: Path) -> DistillResult:
    from nanodistill.evaluate.report import ReportCard, render_markdown

    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / "adapter"
    if model.adapter_path:
        shutil.copytree(
            model.adapter_path, model_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoints")
        )
    card = render_markdown(ReportCard.model_validate(model.report)) if model.report else "Not evaluated.\n"
    (folder / "report_card.md").write_text(card, encoding="utf-8")
    metrics = {**model.metrics, "job": job.result}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str), encoding="utf-8")
    return DistillResult(
        model_id=model.id,
        model_name=model.name,
        model_path=model_path,
        base_model=model.base_model,
        metrics=metrics,
        report_card=model.report,
        card_markdown=card,
        job_id=job.id,
    )
