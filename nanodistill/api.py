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
from typing import Any, TypeVar

import anyio

from nanodistill.amplify.job import MAX_TARGET
from nanodistill.data.loaders import file_rows, inline_rows, resolve_import_path
from nanodistill.data.rows import Row
from nanodistill.errors import NanodistillError
from nanodistill.jobs.process import reconcile, signal_job
from nanodistill.jobs.start import start_job
from nanodistill.settings import Settings, load_settings
from nanodistill.store import datasets as ds
from nanodistill.store import jobs as jobs_db
from nanodistill.store import models as models_db
from nanodistill.store.db import Store
from nanodistill.teacher.check import check_teacher, probe_api_base
from nanodistill.train.data import split_sizes
from nanodistill.train.options import TrainOptions, base_model_problem, option_problems, training_options

T = TypeVar("T")
DEFAULT_TEST_FRACTION = 0.1


class Problems:
    """Collects every problem with a request, so the caller hears about all of them at once."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except NanodistillError as exc:
            self.found.append(str(exc).rstrip("."))
            return None

    def need(self, ok: bool, message: str) -> None:
        if not ok:
            self.found.append(message)

    def raise_if_any(self) -> None:
        if self.found:
            raise NanodistillError(
                f"distill cannot start ({len(self.found)} problem{'s' if len(self.found) > 1 else ''}):\n- "
                + "\n- ".join(self.found)
            )


def _rows(settings: Settings, examples: list[dict[str, Any]] | str | None, field: str) -> list[Row]:
    if isinstance(examples, str):
        return list(file_rows(resolve_import_path(examples, settings.import_roots, field)))
    if not examples:
        raise NanodistillError(f"'{field}' is empty: give a list of {{input, output}} objects or a file path.")
    return list(inline_rows(examples))


async def registered_base(store: Store, spec: str, field: str = "base_model") -> str:
    """`spec` itself, or the folder of the registered base model it names (by name or id).

    Bases registered by import_model are referred to by name afterwards; a trained student is not a
    base (train from its fused export instead), and a base whose folder is gone must be imported again.
    """
    found = await models_db.find_model(store, spec.strip()) if spec.strip() else None
    if found is None:
        return spec
    if found.kind != "base":
        raise NanodistillError(
            f"'{field}': {found.name!r} is a trained student, not a base model. Train from its base "
            f"({found.base_model}), or export it with export_model(format='fused') and pass that folder."
        )
    folder = found.path or found.base_model
    if not Path(folder).is_dir():
        raise NanodistillError(
            f"'{field}': the folder of base model {found.name!r} ({folder}) is gone; import it again with "
            f"import_model(source={found.params.get('source', folder)!r})."
        )
    return folder


async def plan_distill(
    store: Store,
    settings: Settings,
    *,
    name: str,
    seeds: list[dict[str, Any]] | None,
    path: str | None,
    instruction: str,
    teacher: str | None,
    student: str,
    augment_factor: int,
    target_size: int | None,
    holdout_fraction: float,
    max_cost_usd: float | None,
    training: dict[str, Any] | None,
    api_base: str | None,
    api_key_env: str | None,
    training_data: list[dict[str, Any]] | str | None,
) -> tuple[list[Row], list[Row], dict[str, Any]]:
    """Every check a distill could fail later, run now; returns (seeds, training rows, job params)."""
    problems = Problems()
    problems.check(lambda: ds.check_name(name))
    if await ds.find_dataset(store, name):
        problems.found.append(f"'name': a dataset named {name!r} already exists; pick another name")
    rows: list[Row] = []
    if (seeds is None) == (path is None):
        problems.found.append("give exactly one of 'seeds' (a list of {input, output}) or 'path' (a file)")
    else:
        rows = (
            problems.check(
                lambda: _rows(settings, seeds if seeds is not None else path, "seeds" if path is None else "path")
            )
            or []
        )
    problems.need(
        bool(instruction.strip()),
        "'instruction' is empty: describe the task in a sentence; it becomes the student's system prompt",
    )
    problems.need(0 <= holdout_fraction <= 0.5, f"'holdout_fraction' must be between 0 and 0.5, got {holdout_fraction}")
    held = ds.holdout_count(len(rows), holdout_fraction) if rows else 0
    n_seeds = len(rows) - held
    extra: list[Row] = []
    if training_data is not None:
        extra = problems.check(lambda: _rows(settings, training_data, "training_data")) or []
    else:
        problems.need(
            teacher is not None and bool(teacher.strip()),
            "'teacher' is missing: name a LiteLLM model (e.g. anthropic/claude-sonnet-4-5) or pass "
            "training_data to skip amplification",
        )
        if teacher:
            problems.check(lambda: check_teacher(teacher, api_base, api_key_env))
        if api_base:
            try:
                await probe_api_base(api_base)
            except NanodistillError as exc:
                problems.found.append(str(exc))
    problems.need(1 <= augment_factor <= 1000, f"'augment_factor' must be 1..1000, got {augment_factor}")
    target = target_size if target_size is not None else min(max(n_seeds, 1) * augment_factor, MAX_TARGET)
    if training_data is None and rows:
        problems.need(
            n_seeds <= target <= MAX_TARGET,
            f"'target_size' must be between the seed count ({n_seeds}) and {MAX_TARGET:,}, got {target}",
        )
    problems.need(max_cost_usd is None or max_cost_usd > 0, f"'max_cost_usd' must be positive, got {max_cost_usd}")
    try:
        student = await registered_base(store, student, "student")
        named_a_base = True
    except NanodistillError as exc:  # names a registered model that cannot be a base: say only that
        problems.found.append(str(exc).rstrip("."))
        named_a_base = False
    opts = problems.check(lambda: training_options(training or {}))
    if opts is None and named_a_base and (base := base_model_problem(student)):
        problems.found.append(base)  # unreadable training options must not hide a bad student
    if opts is not None:
        problems.found.extend(p for p in option_problems(opts, student) if named_a_base or "base_model" not in p)
        n_train = len(extra) + n_seeds if training_data is not None else int(target * (1 - DEFAULT_TEST_FRACTION))
        if rows:
            problems.check(lambda: split_sizes(n_train, val_fraction=opts.val_fraction, batch_size=opts.batch_size))
    amplified = f"{name}-amplified"
    if training_data is None and await ds.find_dataset(store, amplified):
        problems.found.append(f"a dataset named {amplified!r} already exists; pick another name")
    if await models_db.name_taken(store, name):
        problems.found.append(f"a model named {name!r} already exists; pick another name")
    problems.raise_if_any()
    assert opts is not None
    params: dict[str, Any] = {
        "name": name,
        "student": student,
        "model_name": name,
        "teacher": teacher,
        "seeds": n_seeds,
        "held_out": held,
        "training": TrainOptions.as_params(opts),
    }
    if training_data is None:
        params["amplify"] = {
            "dataset": name,
            "output_dataset": amplified,
            "teacher": teacher,
            "api_base": api_base,
            "api_key_env": api_key_env,
            "target_size": target,
            "concurrency": 8,
            "temperature": 0.7,
            "max_cost_usd": max_cost_usd,
            "test_fraction": DEFAULT_TEST_FRACTION,
            "self_consistency": 1,
            "seeds": n_seeds,
        }
    return rows, extra, params


async def start_distill(store: Store, settings: Settings, **arguments: Any) -> jobs_db.Job:
    """Check everything, then create the seed dataset (and the amplified one) and start the job."""
    rows, extra, params = await plan_distill(store, settings, **arguments)
    name = arguments["name"]
    instruction = arguments["instruction"]
    source = "seed" if arguments.get("path") is None else "imported"

    async def prepare(db: Any, job_id: str) -> dict[str, Any]:
        dataset_id = await ds.insert_dataset(db, name, instruction=instruction, description=f"seeds of job {job_id}")
        added = await ds.insert_examples(db, dataset_id, rows, source=source)
        await ds.mark_holdout(db, dataset_id, ds.holdout_count(added.added, arguments["holdout_fraction"]))
        if extra:
            await ds.insert_examples(db, dataset_id, extra, source="imported")
        updates: dict[str, Any] = {"dataset_id": dataset_id}
        if "amplify" in params:
            output_id = await ds.insert_dataset(
                db,
                params["amplify"]["output_dataset"],
                instruction=instruction,
                description=f"{name} amplified by {arguments['teacher']} (job {job_id})",
                parent_id=dataset_id,
            )
            updates["amplify"] = {**params["amplify"], "dataset_id": dataset_id, "output_dataset_id": output_id}
        return updates

    return await start_job(store, settings, "distill", params, prepare=prepare)


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


DISTILL_KEYWORDS = (
    "name",
    "seed",
    "instruction",
    "teacher",
    "student",
    "augment_factor",
    "output_dir",
    "training_data",
    "path",
    "target_size",
    "holdout_fraction",
    "max_cost_usd",
    "training",
    "api_base",
    "api_key_env",
    "on_progress",
)


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
        "training_data": training_data,
    }
    return anyio.run(_distill, arguments, Path(output_dir), on_progress)


async def _distill(
    arguments: dict[str, Any], output_dir: Path, on_progress: Callable[[jobs_db.Job], None] | None
) -> DistillResult:
    settings = load_settings()
    store = await Store.open(settings.db_path)
    try:
        job = await start_distill(store, settings, **arguments)
        try:
            job = await wait_for_job(store, job.id, on_progress)
        except BaseException:
            with anyio.CancelScope(shield=True):
                async with store.write() as db:
                    await jobs_db.update_job(db, job.id, cancel_requested=1)
                signal_job(job.pid)
            raise
        if job.status != "succeeded" or not job.result:
            raise NanodistillError(f"distill job {job.id} ended {job.status}: {job.error or job.note or 'no result'}")
        model = await models_db.get_model(store, job.result["model_id"])
        return _write_outputs(model, job, output_dir / arguments["name"])
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
