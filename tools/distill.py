"""distill: seeds → amplify → train → evaluate as one job, every input checked before it starts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer

from nanodistill.data.loaders import file_rows, inline_rows, resolve_import_path
from nanodistill.data.rows import Row
from nanodistill.errors import NanodistillError
from nanodistill.jobs.start import start_job
from nanodistill.runtime import Runtime
from nanodistill.store import datasets as ds
from nanodistill.store import models as models_db
from nanodistill.teacher.check import check_teacher, probe_api_base
from nanodistill.train.data import split_sizes
from nanodistill.train.options import TrainOptions, option_problems, training_options
from tools._common import STARTS_JOB, register_tools, runtime
from tools.amplify import MAX_TARGET
from tools.jobs import JobView, job_view

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


def _rows(rt: Runtime, examples: list[dict[str, Any]] | str | None, field: str) -> list[Row]:
    if isinstance(examples, str):
        return list(file_rows(resolve_import_path(examples, rt.settings.import_roots, field)))
    if not examples:
        raise NanodistillError(f"'{field}' is empty: give a list of {{input, output}} objects or a file path.")
    return list(inline_rows(examples))


async def plan_distill(
    rt: Runtime,
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
    if await ds.find_dataset(rt.store, name):
        problems.found.append(f"'name': a dataset named {name!r} already exists; pick another name")
    rows: list[Row] = []
    if (seeds is None) == (path is None):
        problems.found.append("give exactly one of 'seeds' (a list of {input, output}) or 'path' (a file)")
    else:
        rows = problems.check(lambda: _rows(rt, seeds if seeds is not None else path, "seeds" if path is None
                                            else "path")) or []
    problems.need(bool(instruction.strip()), "'instruction' is empty: describe the task in a sentence; it "
                  "becomes the student's system prompt")
    problems.need(0 <= holdout_fraction <= 0.5, f"'holdout_fraction' must be between 0 and 0.5, got "
                  f"{holdout_fraction}")
    held = ds.holdout_count(len(rows), holdout_fraction) if rows else 0
    n_seeds = len(rows) - held
    extra: list[Row] = []
    if training_data is not None:
        extra = problems.check(lambda: _rows(rt, training_data, "training_data")) or []
    else:
        problems.need(teacher is not None and bool(teacher.strip()),
                      "'teacher' is missing: name a LiteLLM model (e.g. anthropic/claude-sonnet-4-5) or pass "
                      "training_data to skip amplification")
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
        problems.need(n_seeds <= target <= MAX_TARGET, f"'target_size' must be between the seed count "
                      f"({n_seeds}) and {MAX_TARGET:,}, got {target}")
    problems.need(max_cost_usd is None or max_cost_usd > 0, f"'max_cost_usd' must be positive, got {max_cost_usd}")
    opts = problems.check(lambda: training_options(training or {}))
    if opts is not None:
        problems.found.extend(option_problems(opts, student))
        n_train = len(extra) + n_seeds if training_data is not None else int(target * (1 - DEFAULT_TEST_FRACTION))
        if rows:
            problems.check(lambda: split_sizes(n_train, val_fraction=opts.val_fraction, batch_size=opts.batch_size))
    amplified = f"{name}-amplified"
    if training_data is None and await ds.find_dataset(rt.store, amplified):
        problems.found.append(f"a dataset named {amplified!r} already exists; pick another name")
    if await models_db.name_taken(rt.store, name):
        problems.found.append(f"a model named {name!r} already exists; pick another name")
    problems.raise_if_any()
    assert opts is not None
    params: dict[str, Any] = {
        "name": name, "student": student, "model_name": name, "teacher": teacher, "seeds": n_seeds,
        "held_out": held, "training": TrainOptions.as_params(opts),
    }
    if training_data is None:
        params["amplify"] = {
            "dataset": name, "output_dataset": amplified, "teacher": teacher, "api_base": api_base,
            "api_key_env": api_key_env, "target_size": target, "concurrency": 8, "temperature": 0.7,
            "max_cost_usd": max_cost_usd, "test_fraction": DEFAULT_TEST_FRACTION, "self_consistency": 1,
            "seeds": n_seeds,
        }
    return rows, extra, params


async def distill(
    name: str,
    instruction: str,
    ctx: Context,
    seeds: list[dict[str, Any]] | None = None,
    path: str | None = None,
    teacher: str | None = None,
    student: str = "smollm2-135m",
    augment_factor: int = 50,
    target_size: int | None = None,
    holdout_fraction: float = 0.2,
    max_cost_usd: float | None = None,
    training: dict[str, Any] | None = None,
    api_base: str | None = None,
    api_key_env: str | None = None,
    training_data: list[dict[str, Any]] | str | None = None,
) -> JobView:
    """Make a small model from a handful of examples in one call: creates dataset `name` from `seeds`
    (inline [{input, output}] or a file `path`; `holdout_fraction` of them set aside for the report
    card), amplifies it with `teacher` (any LiteLLM model, or one served at `api_base`), trains
    `student` (a model folder, Hugging Face id, .gguf, ollama:NAME, or smollm2-135m) with `training`
    options (the train_student arguments: method, iters, epochs, batch_size, learning_rate, ...), and
    evaluates it. `training_data` (examples or a file) skips amplification and trains on it directly.
    Runs as a `distill` job with one child job per stage; follow it with get_job: the result names the
    model and summarises its report card. Everything is checked first and all problems are reported
    together. Quote the teacher cost first with amplify_dataset(dry_run=True) on a dataset of the seeds."""
    rt = runtime(ctx)
    rows, extra, params = await plan_distill(
        rt, name=name, seeds=seeds, path=path, instruction=instruction, teacher=teacher, student=student,
        augment_factor=augment_factor, target_size=target_size, holdout_fraction=holdout_fraction,
        max_cost_usd=max_cost_usd, training=training, api_base=api_base, api_key_env=api_key_env,
        training_data=training_data,
    )

    async def prepare(db: Any, job_id: str) -> dict[str, Any]:
        source = "seed" if path is None else "imported"
        dataset_id = await ds.insert_dataset(db, name, instruction=instruction, description=f"seeds of job {job_id}")
        added = await ds.insert_examples(db, dataset_id, rows, source=source)
        await ds.mark_holdout(db, dataset_id, ds.holdout_count(added.added, holdout_fraction))
        if extra:
            await ds.insert_examples(db, dataset_id, extra, source="imported")
        updates: dict[str, Any] = {"dataset_id": dataset_id}
        if "amplify" in params:
            output_id = await ds.insert_dataset(
                db, params["amplify"]["output_dataset"], instruction=instruction,
                description=f"{name} amplified by {teacher} (job {job_id})", parent_id=dataset_id,
            )
            updates["amplify"] = {**params["amplify"], "dataset_id": dataset_id, "output_dataset_id": output_id}
        return updates

    job = await start_job(rt.store, rt.settings, "distill", params, prepare=prepare)
    return await job_view(rt.store, job, None)


def register(app: MCPServer) -> None:
    register_tools(app, [(distill, "Distill a small model from examples (amplify, train, evaluate)", STARTS_JOB)])
