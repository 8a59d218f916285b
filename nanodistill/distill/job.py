"""The `distill` job: amplify → train → evaluate, each stage a child job run in this process.

A resumed distill skips the stages that already succeeded and resumes the one that stopped.
Overall progress is 0-100: amplification 0-40, training 40-90, evaluation 90-100.
"""

from __future__ import annotations

from typing import Any

from nanodistill.amplify.plan import amplify_params
from nanodistill.distill.plan import DistillParams
from nanodistill.evaluate.plan import Baseline, EvaluateParams, check_seeds_only
from nanodistill.evaluate.sources import test_sources
from nanodistill.jobs.context import JobContext
from nanodistill.jobs.plan import Problems
from nanodistill.jobs.run import run_child
from nanodistill.kinds import KINDS
from nanodistill.store import datasets as ds
from nanodistill.store import models as models_db
from nanodistill.train.plan import TrainParams

SPANS = {"amplify": (0.0, 40.0), "train": (40.0, 50.0), "evaluate": (90.0, 10.0)}


async def affordable_baselines(ctx: JobContext, model_id: str) -> list[Baseline]:
    """base, plus seeds_only when evaluate's own check passes (seeds that can be split into batches, and
    amplified rows to compare with): a distill should answer "did the teacher help?" whenever it can."""
    problems = Problems()
    await check_seeds_only(ctx.store, await models_db.get_model(ctx.store, model_id), problems)
    return ["base"] if problems.found else ["base", "seeds_only"]


async def run_distill_job(ctx: JobContext) -> dict[str, Any]:
    p = ctx.params_as(DistillParams)
    assert p.dataset_id is not None, "the plan's prepare step creates the seed dataset"
    train_dataset_id = p.dataset_id
    result: dict[str, Any] = {"dataset": p.name}
    if p.amplify is not None and p.amplify.target_size is not None:
        assert p.amplified_dataset_id is not None
        ctx.span = SPANS["amplify"]
        stage = amplify_params(
            p.amplify,
            dataset_id=p.dataset_id,
            dataset=p.name,
            output=p.amplified_name,
            seeds=p.seeds,
            target=p.amplify.target_size,
        ).model_copy(update={"output_dataset_id": p.amplified_dataset_id})
        amplified = await run_child(
            ctx, "amplify", KINDS["amplify"], stage, "stage 1/3: amplifying the seeds with the teacher"
        )
        train_dataset_id = p.amplified_dataset_id
        result["amplified_dataset"] = amplified.get("output_dataset")
        result["amplify"] = {k: amplified.get(k) for k in ("total_examples", "agreement_rate", "stopped_reason")}
    train_dataset = await ds.get_dataset_by_id(ctx.store, train_dataset_id)

    ctx.span = SPANS["train"]
    train_params = TrainParams(
        **p.training.model_dump(),
        dataset_id=train_dataset.id,
        dataset=train_dataset.name,
        base_model=p.student,
        name=p.model_name,
    )
    trained = await run_child(
        ctx, "train", KINDS["train"], train_params, f"stage 2/3: training {p.student} on {train_dataset.name}"
    )
    model_id = trained["model_id"]
    result.update(
        model_id=model_id,
        model_name=trained.get("model_name"),
        training={k: trained.get(k) for k in ("best_val_loss", "final_train_loss", "iterations_done", "wall_s")},
    )

    ctx.span = SPANS["evaluate"]
    if not await test_sources(ctx.store, train_dataset.id, None):
        await ctx.event(
            "warning",
            "no held-out examples to evaluate on (too few seeds to set some aside); "
            "call evaluate_student with a test_dataset",
        )
        result["note"] = "not evaluated: no held-out examples; run evaluate_student with a test_dataset"
        return result
    baselines = await affordable_baselines(ctx, model_id)
    evaluated = await run_child(
        ctx,
        "evaluate",
        KINDS["evaluate"],
        EvaluateParams(model_id=model_id, baselines=baselines),
        f"stage 3/3: evaluating student vs {' and '.join(baselines)} on held-out examples",
    )
    await ctx.progress(100, 100)
    result["report_card"] = {
        k: evaluated.get(k)
        for k in ("ready", "verdict", "main_source", "student_score", "base_score", "seeds_only_score", "n_test")
    }
    result["baselines"] = baselines
    result["card"] = f"nanodistill://models/{model_id}/card"
    return result
