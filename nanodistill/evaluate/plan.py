"""The `evaluate` job kind's contract: what a user asks, what the job stores, and every check before it starts.

The teacher for `metric="judge"` is checked like amplify's (routed, keyed, reachable), and the
seed-only baseline is checked for seeds to train on before any job starts.
"""

from __future__ import annotations

from typing import Literal

import anyio
import anyio.to_thread
from pydantic import BaseModel, Field, ValidationError

from nanodistill.errors import NanodistillError
from nanodistill.evaluate.sources import test_sources
from nanodistill.jobs.plan import Plan, Problems
from nanodistill.settings import Settings
from nanodistill.store import datasets as ds
from nanodistill.store import models as models_db
from nanodistill.store.db import Store
from nanodistill.student.files import check_model_files
from nanodistill.teacher.check import check_teacher, probe_api_base
from nanodistill.train.data import split_sizes
from nanodistill.train.options import TrainOptions

Metric = Literal["auto", "exact", "numeric", "json", "label", "chrf", "judge"]
Baseline = Literal["base", "seeds_only"]
SEED_SOURCE = "seed"


class EvaluateOptions(BaseModel):
    compare_base: bool = Field(default=True, description="Also score the untrained base model (baseline 'base').")
    baselines: list[Baseline] = Field(
        default=[],
        description="Models to score beside the student on the same rows: base (the untrained base; also what "
        "compare_base does) and seeds_only (a student trained here with this model's options on the dataset's "
        "seed examples alone: did amplification help?).",
    )
    metric: Metric = Field(
        default="auto",
        description="auto (picked from the outputs: free text is judged when a teacher is given, else chrf), exact, "
        "numeric, json, label, chrf (character n-gram F-score) or judge (the teacher grades each answer).",
    )
    max_tokens: int | None = Field(
        default=None, description="Answer budget per example (default: from the gold answers)."
    )
    teacher: str | None = Field(
        default=None, description="LiteLLM model that grades free-text answers (metric judge, or auto)."
    )
    api_base: str | None = Field(default=None, description="URL of an OpenAI-compatible server for the teacher.")
    api_key_env: str | None = Field(
        default=None,
        description="Environment variable holding the teacher's API key: a provider's own or one the operator "
        "lists in NANODISTILL_KEY_ENVS.",
    )
    input_cost_per_token: float | None = Field(default=None, description="USD per input token, for unpriced models.")
    output_cost_per_token: float | None = Field(default=None, description="USD per output token, for unpriced models.")
    max_cost_usd: float | None = Field(
        default=None,
        description="Most the judge may spend, in USD: once reached, the remaining answers are left unjudged and "
        "the card says so (it is then never ready).",
    )

    def compares(self, baseline: Baseline) -> bool:
        """Whether this baseline is scored; compare_base is the older spelling of baselines=['base']."""
        return baseline in self.baselines or (baseline == "base" and self.compare_base)


class EvaluateRequest(EvaluateOptions):
    """evaluate_student's arguments."""

    model: str = Field(description="A trained model's id or name.")
    test_dataset: str | None = Field(default=None, description="An extra held-out dataset to score on.")


class EvaluateParams(EvaluateOptions):
    model_id: str
    test_dataset_id: str | None = None


async def check_judge_options(opts: EvaluateOptions, problems: Problems) -> None:
    """A judge needs a teacher, checked for real; the teacher's settings mean nothing without one."""
    if opts.teacher is None:
        problems.need(
            opts.metric != "judge",
            "'teacher': metric 'judge' needs a teacher to grade the answers; pass teacher (any LiteLLM model) "
            "or use metric 'chrf'",
        )
        for field in ("api_base", "api_key_env", "input_cost_per_token", "output_cost_per_token", "max_cost_usd"):
            problems.need(getattr(opts, field) is None, f"'{field}' only applies with a teacher; pass teacher too")
        return
    problems.need(
        opts.max_cost_usd is None or opts.max_cost_usd > 0,
        f"'max_cost_usd' must be a positive USD amount when given, got {opts.max_cost_usd}",
    )
    for field in ("input_cost_per_token", "output_cost_per_token"):
        price = getattr(opts, field)
        problems.need(
            price is None or price >= 0, f"'{field}' must be a USD price per token >= 0 when given, got {price}"
        )
    teacher = opts.teacher
    # Off the event loop: the first check imports LiteLLM.
    await problems.check_async(
        lambda: anyio.to_thread.run_sync(check_teacher, teacher, opts.api_base, opts.api_key_env)
    )
    if opts.api_base:
        await problems.check_async(lambda: probe_api_base(opts.api_base or ""))


def seeds_only_options(options: TrainOptions, n_seeds: int) -> tuple[TrainOptions, dict[str, object]]:
    """The model's training options for its seeds alone: unchanged where they fit so few rows, else the
    largest batch_size (and the smallest val_fraction above the model's) that leaves a validation batch
    and two training batches. Returns the options and what changed; NanodistillError if nothing fits."""
    batch = min(options.batch_size, max(1, n_seeds // 3))
    while True:
        val_fraction = max(options.val_fraction, batch / n_seeds) if n_seeds else options.val_fraction
        try:
            split_sizes(n_seeds, val_fraction=val_fraction, batch_size=batch)
        except NanodistillError:
            if batch == 1:
                raise
            batch -= 1
            continue
        fitted = options.model_copy(update={"batch_size": batch, "val_fraction": val_fraction})
        changed = {
            k: getattr(fitted, k) for k in ("batch_size", "val_fraction") if getattr(fitted, k) != getattr(options, k)
        }
        return fitted, changed


def stored_options(model: models_db.Model) -> TrainOptions | None:
    """The training options a model was trained with, as its train job stored them (None if it was not)."""
    try:
        return TrainOptions.model_validate(model.params)
    except ValidationError:
        return None


async def seed_rows_count(store: Store, dataset_id: str) -> tuple[int, int]:
    """(seed rows, other rows) in a dataset's train split: amplified datasets carry their seeds as source 'seed'."""
    seeds = others = 0
    async for example in ds.iter_examples(store, dataset_id, ("train",)):
        if example.source == SEED_SOURCE:
            seeds += 1
        else:
            others += 1
    return seeds, others


async def check_seeds_only(store: Store, model: models_db.Model, problems: Problems) -> None:
    """The seed-only baseline needs seeds to train on, other rows to compare with, and stored options."""
    options = stored_options(model)
    if model.dataset_id is None or options is None:
        problems.add(f"'baselines': seeds_only needs the dataset and options model {model.name} was trained with")
        return
    seeds, others = await seed_rows_count(store, model.dataset_id)
    if not others:
        problems.add(
            f"'baselines': model {model.name} was trained on seed examples only, so a seeds_only baseline would be the "
            "same student; evaluate a model trained on amplified data"
        )
        return
    try:
        seeds_only_options(options, seeds)
    except NanodistillError as exc:
        problems.add(f"'baselines': seeds_only cannot train on {seeds} seed examples: {exc}")


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
    await check_judge_options(request, problems)
    if found is not None and found.kind == "trained" and request.compares("seeds_only"):
        await check_seeds_only(store, found, problems)
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
