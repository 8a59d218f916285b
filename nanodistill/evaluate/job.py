"""The `evaluate` job: run student (and base) on every held-out source and store the report card.

Sources, each kept out of training and out of the teacher's few-shot examples:
a user test set (when given), the seeds set aside at dataset creation (gold answers), and the
teacher-labelled test slice of the amplified data (scored as agreement with the teacher).
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.from_thread

from nanodistill.data.chat import ReasoningMode
from nanodistill.errors import NanodistillError
from nanodistill.evaluate.leakage import split_leaked
from nanodistill.evaluate.plan import EvaluateParams
from nanodistill.evaluate.run import TestSource
from nanodistill.evaluate.sources import test_sources
from nanodistill.jobs.context import JobContext
from nanodistill.store import datasets as ds
from nanodistill.store import models as models_db
from nanodistill.store.db import Store


async def train_inputs(store: Store, dataset_id: str | None) -> list[str]:
    """Inputs the student was trained on: the train split less the rows the train job's leakage check
    left out (near-duplicates of the dataset's own held-out or test inputs), so a held-out example
    whose twin never reached training is not dropped from the evaluation as leaked."""
    if not dataset_id:
        return []
    train: list[str] = []
    held_out: list[str] = []
    async for example in ds.iter_examples(store, dataset_id):
        (train if example.split == "train" else held_out).append(example.input)
    kept, _ = split_leaked(held_out, train)
    return [train[i] for i in kept]


def answer_budget(sources: list[TestSource], reasoning: ReasoningMode) -> int:
    """Tokens to allow per answer: about twice the longest gold answer, plus room to think when the
    student was trained to reason first; a rambling base model is cut off there too."""
    longest = max(len(e.output) for s in sources for e in s.examples)
    answer = min(512, max(16, 2 * longest // 3 + 8))
    return answer + (320 if reasoning == "full" else 0)


async def run_evaluate_job(ctx: JobContext) -> dict[str, Any]:
    from nanodistill.evaluate.run import evaluate_student
    from nanodistill.student.files import check_model_files
    from nanodistill.student.load import load_student

    p = ctx.params_as(EvaluateParams)
    model = await models_db.get_model(ctx.store, p.model_id)
    sources = await test_sources(ctx.store, model.dataset_id, p.test_dataset_id)
    if not sources:
        raise NanodistillError(
            f"model {model.name} has no held-out examples to evaluate on: pass test_dataset, or create the "
            "dataset with holdout_fraction > 0."
        )
    await ctx.event("info", "test sources: " + ", ".join(f"{s.name} ({len(s.examples)})" for s in sources))
    check_model_files(model.base_model, model.adapter_path)
    await ctx.stage("loading models")
    student = await anyio.to_thread.run_sync(load_student, model.base_model, model.adapter_path)
    base = await anyio.to_thread.run_sync(load_student, model.base_model, None) if p.compare_base else None
    reasoning: ReasoningMode = "full" if model.reasoning == "full" else "none"
    max_tokens = p.max_tokens or answer_budget(sources, reasoning)
    seen = await train_inputs(ctx.store, model.dataset_id)

    def on_progress(done: int, total: int) -> None:
        anyio.from_thread.run(ctx.progress, done, total)

    training = {
        k: model.metrics.get(k)
        for k in (
            "best_val_loss",
            "final_train_loss",
            "iterations_done",
            "trained_tokens",
            "wall_s",
            "tokens_per_second",
        )
    }
    training.update({"base_model": model.base_model, "method": model.method})
    await ctx.stage("evaluating")
    card = await anyio.to_thread.run_sync(
        lambda: evaluate_student(
            student,
            base,
            sources,
            instruction=model.instruction,
            reasoning=reasoning,
            metric=p.metric,
            max_tokens=max_tokens,
            on_progress=on_progress,
            should_stop=ctx.should_stop,
            train_inputs=seen,
            training=training,
            loss_plot_uri=f"nanodistill://models/{model.id}/loss.png",
        )
    )
    if not card.complete:
        return {"stopped": "cancelled", "model_id": model.id}
    report = card.model_dump()
    async with ctx.store.write() as db:
        await models_db.set_report(db, model.id, report)
    main = card.sources[0]
    summary = {
        "model_id": model.id,
        "ready": card.ready,
        "verdict": card.verdict,
        "main_source": main.name,
        "student_score": main.student.mean if main.student else None,
        "base_score": main.base.mean if main.base else None,
        "n_test": main.size,
        "card": f"nanodistill://models/{model.id}/card",
    }
    await ctx.metrics(summary)
    return summary
