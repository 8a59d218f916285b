"""The `evaluate` job kind's contract: what a user asks, what the job stores, and every check before it starts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from nanodistill.evaluate.sources import test_sources
from nanodistill.jobs.plan import Plan, Problems
from nanodistill.settings import Settings
from nanodistill.store import datasets as ds
from nanodistill.store import models as models_db
from nanodistill.store.db import Store
from nanodistill.student.files import check_model_files

Metric = Literal["auto", "exact", "numeric", "json", "label"]


class EvaluateOptions(BaseModel):
    compare_base: bool = Field(default=True, description="Also score the untrained base model.")
    metric: Metric = Field(default="auto", description="auto (picked from the outputs), exact, numeric, json or label.")
    max_tokens: int | None = Field(
        default=None, description="Answer budget per example (default: from the gold answers)."
    )


class EvaluateRequest(EvaluateOptions):
    """evaluate_student's arguments."""

    model: str = Field(description="A trained model's id or name.")
    test_dataset: str | None = Field(default=None, description="An extra held-out dataset to score on.")


class EvaluateParams(EvaluateOptions):
    model_id: str
    test_dataset_id: str | None = None


async def plan_evaluate(store: Store, settings: Settings, request: EvaluateRequest) -> Plan:
    problems = Problems()
    found = await problems.check_async(lambda: models_db.get_model(store, request.model))
    if found is not None and found.kind != "trained":
        problems.add(f"'model': {found.name} is a base model; evaluate a trained student instead")
    elif found is not None:
        problems.check(lambda: check_model_files(found.base_model, found.adapter_path))
    max_tokens = request.max_tokens
    problems.need(
        max_tokens is None or 1 <= max_tokens <= 4096, f"'max_tokens' must be between 1 and 4096, got {max_tokens}"
    )
    test = None
    if request.test_dataset is not None:
        test = await problems.check_async(lambda: ds.get_dataset(store, request.test_dataset or "", "test_dataset"))
    sources_known = found is not None and found.kind == "trained" and (request.test_dataset is None or test)
    if (
        found is not None
        and sources_known
        and not await test_sources(store, found.dataset_id, test.id if test else None)
    ):
        problems.add(
            f"'test_dataset' {request.test_dataset!r} is empty; add examples to it first"
            if test
            else f"model {found.name} has no held-out examples (no seeds set aside, no teacher-labelled test "
            "slice): pass test_dataset, or create the dataset with holdout_fraction > 0"
        )
    problems.raise_if_any("evaluate_student")
    assert found is not None
    options = request.model_dump(include=set(EvaluateOptions.model_fields))
    return Plan("evaluate", EvaluateParams(**options, model_id=found.id, test_dataset_id=test.id if test else None))
