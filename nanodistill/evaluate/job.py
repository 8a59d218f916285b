"""The `evaluate` job: run student (and baselines) on every held-out source and store the report card.

Sources, each kept out of training and out of the teacher's few-shot examples:
a user test set (when given), the seeds set aside at dataset creation (gold answers), and the
teacher-labelled test slice of the amplified data (scored as agreement with the teacher).

The seed-only baseline is trained here, in the compute slot this kind already holds, with the
train job's own pieces; a resumed job continues its training from the last checkpoint. Judge
calls go through a `TeacherClient` whose cache is the job's ledger, so the card's judging cost
covers every attempt of the job.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread

from nanodistill.amplify.job import lifetime_totals
from nanodistill.data.chat import ReasoningMode
from nanodistill.errors import NanodistillError
from nanodistill.evaluate.judge import JudgeItem, Judgement, judge_answers
from nanodistill.evaluate.leakage import split_leaked
from nanodistill.evaluate.plan import SEED_SOURCE, EvaluateParams, seeds_only_options, stored_options
from nanodistill.evaluate.report import SeedsOnly
from nanodistill.evaluate.run import TestSource
from nanodistill.evaluate.sources import test_sources
from nanodistill.jobs.context import JobContext
from nanodistill.store import datasets as ds
from nanodistill.store import models as models_db
from nanodistill.store.db import Store
from nanodistill.store.teacher_calls import job_call_totals
from nanodistill.teacher.budget import SpendCap
from nanodistill.teacher.cache import SqliteTeacherCache
from nanodistill.teacher.client import TeacherClient
from nanodistill.train.job import prepare_rows, train_config, training_rows


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


def judge_client(p: EvaluateParams, ctx: JobContext) -> TeacherClient | None:
    """The job's judge (never a key: keys stay in the environment), or None without a teacher."""
    if p.teacher is None:
        return None
    return TeacherClient(
        p.teacher,
        api_base=p.api_base,
        api_key_env=p.api_key_env,
        cache=SqliteTeacherCache(ctx.store, ctx.id),
        job_id=ctx.id,
        input_cost_per_token=p.input_cost_per_token,
        output_cost_per_token=p.output_cost_per_token,
    )


async def train_seeds_only(ctx: JobContext, model: models_db.Model) -> tuple[SeedsOnly | None, str | None]:
    """Train the seed-only baseline: the model's options (fitted to so few rows) on its dataset's seed rows.
    Returns its description and adapter folder, or (None, None) when the job was cancelled meanwhile."""
    from nanodistill.train.trainer import run_training

    options = stored_options(model)
    if model.dataset_id is None or options is None:
        raise NanodistillError(f"model {model.name} has no stored dataset or training options to train seeds_only")
    dataset = await ds.get_dataset_by_id(ctx.store, model.dataset_id)
    rows, _, _ = await training_rows(ctx.store, dataset.id, source=SEED_SOURCE)
    fitted, changed = seeds_only_options(options, len(rows))
    work: Path = ctx.artifacts / "seeds_only"
    summary = await prepare_rows(
        rows, instruction=dataset.instruction, options=fitted, base_path=model.base_model, data_dir=work / "data"
    )
    config = train_config(fitted, model.base_model, summary.n_train)
    await ctx.stage(
        "training seeds-only baseline",
        f"training the seed-only baseline: {config.iters} iterations on {summary.n_train} seed examples",
    )

    def on_report(entry: dict[str, Any]) -> None:
        # The first half of the job's progress; scoring (see run_evaluate_job) is the second, so it only moves on.
        anyio.from_thread.run(ctx.progress, entry["iteration"], 2 * config.iters)

    result = await anyio.to_thread.run_sync(
        lambda: run_training(config, work / "data", work / "adapter", on_report=on_report, should_stop=ctx.should_stop)
    )
    if result.stopped:
        return None, None
    seeds = SeedsOnly(
        n_seeds=len(rows),
        iters=config.iters,
        changed=changed,
        best_val_loss=result.best_val_loss,
        adapter_path=str(result.adapter_path),
    )
    return seeds, str(result.adapter_path)


def _bridge(teacher: TeacherClient, instruction: str, cap: SpendCap) -> Callable[[list[JudgeItem]], list[Judgement]]:
    """A blocking judge for the evaluation thread, running the async calls on the job's event loop."""

    def judge(items: list[JudgeItem]) -> list[Judgement]:
        return anyio.from_thread.run(judge_answers, teacher, instruction, items, cap)

    return judge


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
    seeds_card: SeedsOnly | None = None
    seeds_only = None
    if p.compares("seeds_only"):
        seeds_card, seeds_adapter = await train_seeds_only(ctx, model)
        if seeds_adapter is None:
            return {"stopped": "cancelled", "model_id": model.id}
        seeds_only = await anyio.to_thread.run_sync(load_student, model.base_model, seeds_adapter)
    await ctx.stage("loading models")
    student = await anyio.to_thread.run_sync(load_student, model.base_model, model.adapter_path)
    base = await anyio.to_thread.run_sync(load_student, model.base_model, None) if p.compares("base") else None
    teacher = judge_client(p, ctx)
    cap: SpendCap | None = None
    if teacher is not None:
        teacher.totals = await lifetime_totals(ctx.store, ctx.id)
        judged = teacher
        cap = SpendCap(p.max_cost_usd, lambda: judged.totals.cost_usd, lambda: judged.totals.priced)
    reasoning: ReasoningMode = "full" if model.reasoning == "full" else "none"
    max_tokens = p.max_tokens or answer_budget(sources, reasoning)
    seen = await train_inputs(ctx.store, model.dataset_id)

    def on_progress(done: int, total: int) -> None:
        if seeds_card is not None:  # the baseline's training was the first half
            done, total = total + done, 2 * total
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
            seeds_only=seeds_only,
            judge=_bridge(teacher, model.instruction, cap) if teacher is not None and cap is not None else None,
            teacher=p.teacher,
        )
    )
    if not card.complete:
        return {"stopped": "cancelled", "model_id": model.id}
    card.seeds_only = seeds_card
    if card.judge is not None and teacher is not None:
        spent = await job_call_totals(ctx.store, ctx.id)
        cost = None if spent["unpriced_calls"] else float(spent["cost_usd"])
        card.judge = card.judge.model_copy(
            update={
                "calls": spent["calls"],
                "cached_calls": teacher.totals.cached_calls,
                "prompt_tokens": spent["prompt_tokens"],
                "completion_tokens": spent["completion_tokens"],
                "cost_usd": cost,
                "max_cost_usd": p.max_cost_usd,
                "over_budget": cap.refused if cap else 0,
            }
        )
        await ctx.set_cost(cost or 0.0)
        if card.judge.over_budget:
            card.ready = False
            card.verdict = (
                f"Judging stopped at max_cost_usd={p.max_cost_usd}: {card.judge.over_budget} answers were left "
                f"unjudged, so the scores cover part of the test set. Raise max_cost_usd or use metric 'chrf'. "
                + card.verdict
            )
        if p.max_cost_usd is not None and not teacher.totals.priced:
            await ctx.event(
                "warning",
                f"max_cost_usd cannot be enforced: LiteLLM has no price for {p.teacher}; pass input_cost_per_token "
                "and output_cost_per_token",
            )
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
        "seeds_only_score": main.seeds_only.mean if main.seeds_only else None,
        "amplification": card.amplification,
        "metric": card.metric,
        "unjudged": card.judge.unjudged if card.judge else None,
        "judge_cost_usd": card.judge.cost_usd if card.judge else None,
        "n_test": main.size,
        "card": f"nanodistill://models/{model.id}/card",
    }
    await ctx.metrics(summary)
    return summary
