"""The `distill` job kind's contract: one request that composes the amplify, train and evaluate checks.

It checks through the same functions as amplify_dataset and train_student (`check_amplify_options`,
`check_training`), so it can never check less than the tools it chains, and every problem is
reported at once before anything is written.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from nanodistill.amplify.plan import AmplifyOptions, check_amplify_options
from nanodistill.data.loaders import file_rows, inline_rows, resolve_import_path
from nanodistill.data.rows import Row
from nanodistill.errors import NanodistillError
from nanodistill.jobs.plan import Plan, Problems
from nanodistill.settings import Settings
from nanodistill.store import datasets as ds
from nanodistill.store import models as models_db
from nanodistill.store.db import Store
from nanodistill.student.ref import base_problems
from nanodistill.train.options import TrainOptions, training_options
from nanodistill.train.plan import check_training

DEFAULT_TEST_FRACTION = AmplifyOptions.model_fields["test_fraction"].default


class DistillRequest(BaseModel):
    """distill's arguments (the MCP tool, `distill()` in Python and the CLI all build this)."""

    name: str
    instruction: str
    seeds: list[dict[str, Any]] | None = None
    path: str | None = None
    teacher: str | None = None
    student: str = "smollm2-135m"
    augment_factor: int = 50
    target_size: int | None = None
    holdout_fraction: float = 0.2
    max_cost_usd: float | None = None
    training: dict[str, Any] | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    batch: bool = False
    max_tokens: int | None = None
    training_data: list[dict[str, Any]] | str | None = Field(default=None, union_mode="left_to_right")


class DistillParams(BaseModel):
    """What a distill job stores; `prepare` adds the ids of the datasets it creates."""

    name: str
    student: str
    model_name: str
    teacher: str | None
    seeds: int
    held_out: int
    training: TrainOptions
    amplify: AmplifyOptions | None = None
    dataset_id: str | None = None
    amplified_dataset_id: str | None = None

    @property
    def amplified_name(self) -> str:
        return f"{self.name}-amplified"


def _rows(settings: Settings, examples: list[dict[str, Any]] | str, field: str) -> list[Row]:
    if isinstance(examples, str):
        return list(file_rows(resolve_import_path(examples, settings.import_roots, field)))
    if not examples:
        raise NanodistillError(f"'{field}' is empty: give a list of {{input, output}} objects or a file path.")
    return list(inline_rows(examples))


async def plan_distill(store: Store, settings: Settings, request: DistillRequest) -> Plan:
    problems = Problems()
    name_ok = problems.check(lambda: ds.check_name(request.name)) is not None
    if name_ok and await ds.find_dataset(store, request.name):
        problems.add(f"'name': a dataset named {request.name!r} already exists; pick another name")
    rows: list[Row] = []
    if (request.seeds is None) == (request.path is None):
        problems.add("give exactly one of 'seeds' (a list of {input, output}) or 'path' (a file)")
    else:
        field = "seeds" if request.path is None else "path"
        source = request.seeds if request.seeds is not None else request.path or ""
        rows = problems.check(lambda: _rows(settings, source, field)) or []
    problems.need(
        bool(request.instruction.strip()),
        "'instruction' is empty: describe the task in a sentence; it becomes the student's system prompt",
    )
    problems.need(
        0 <= request.holdout_fraction <= 0.5,
        f"'holdout_fraction' must be between 0 and 0.5, got {request.holdout_fraction}",
    )
    held = ds.holdout_count(len(rows), request.holdout_fraction) if rows else 0
    n_seeds = len(rows) - held
    extra: list[Row] = []
    amplify: AmplifyOptions | None = None
    if request.training_data is not None:
        extra = problems.check(lambda: _rows(settings, request.training_data or [], "training_data")) or []
    elif not (request.teacher and request.teacher.strip()):
        problems.add(
            "'teacher' is missing: name a LiteLLM model (e.g. anthropic/claude-sonnet-4-5) or pass "
            "training_data to skip amplification"
        )
    else:
        amplify = AmplifyOptions.model_validate(request.model_dump(include=set(AmplifyOptions.model_fields)))
        target = await check_amplify_options(amplify, n_seeds or None, problems)
        amplify = amplify.model_copy(update={"target_size": target})
        if name_ok and await ds.find_dataset(store, f"{request.name}-amplified"):
            problems.add(f"a dataset named {request.name + '-amplified'!r} already exists; pick another name")
    opts = problems.check(lambda: training_options(request.training or {}))
    if opts is None:  # unreadable training options must not hide a bad student
        student, found = await base_problems(store, request.student, "student", settings.import_roots)
        for problem in found:
            problems.add(problem)
    else:
        if request.training_data is not None:
            n_train: int | None = len(extra) + n_seeds
        else:
            n_train = (
                int(amplify.target_size * (1 - DEFAULT_TEST_FRACTION)) if amplify and amplify.target_size else None
            )
        student = await check_training(
            store, settings, request.student, "student", opts, n_train if rows else None, problems
        )
    if await models_db.name_taken(store, request.name):
        problems.add(f"a model named {request.name!r} already exists; pick another name")
    problems.raise_if_any("distill")
    assert opts is not None
    params = DistillParams(
        name=request.name,
        student=student,
        model_name=request.name,
        teacher=request.teacher,
        seeds=n_seeds,
        held_out=held,
        training=opts,
        amplify=amplify,
    )
    source_label = "seed" if request.path is None else "imported"

    async def prepare(db: Any, job_id: str) -> dict[str, Any]:
        dataset_id = await ds.insert_dataset(
            db, request.name, instruction=request.instruction, description=f"seeds of job {job_id}"
        )
        added = await ds.insert_examples(db, dataset_id, rows, source=source_label)
        await ds.mark_holdout(db, dataset_id, ds.holdout_count(added.added, request.holdout_fraction))
        if extra:
            await ds.insert_examples(db, dataset_id, extra, source="imported")
        updates: dict[str, Any] = {"dataset_id": dataset_id}
        if amplify is not None:
            updates["amplified_dataset_id"] = await ds.insert_dataset(
                db,
                params.amplified_name,
                instruction=request.instruction,
                description=f"{request.name} amplified by {request.teacher} (job {job_id})",
                parent_id=dataset_id,
            )
        return updates

    return Plan("distill", params, prepare)
