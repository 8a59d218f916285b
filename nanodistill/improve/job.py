"""The `improve` job: rounds of (teacher examples aimed at the card's failures → new dataset version →
train with the model's options, from the best model's adapter or from the base (`start_from`) → evaluate
on the same held-out rows), keeping the better model.

Each round's dataset is the previous best model's dataset (every split, so evaluation finds the same
held-out rows) plus the new examples; a new example nearly duplicating any held-out or test input is
dropped before it is stored. Training and evaluation run as child jobs (`run_child`), so a resumed job
skips the stages that already succeeded. A round that does not beat the best so far (paired interval of
new - best not above zero) ends the job; so does the teacher budget, keeping the best so far.
"""

from __future__ import annotations

from typing import Any, get_args

from nanodistill.amplify.job import amplify_config, lifetime_totals, teacher_client
from nanodistill.amplify.plan import amplify_params
from nanodistill.amplify.records import Accepted, AmplifyHooks, AmplifyState, Seed
from nanodistill.data.rows import Row
from nanodistill.data.similarity import NearDuplicateIndex
from nanodistill.errors import NanodistillError
from nanodistill.evaluate.metrics import paired_bootstrap_diff
from nanodistill.evaluate.plan import EvaluateParams, Metric, stored_options
from nanodistill.evaluate.report import ReportCard
from nanodistill.improve.patterns import failure_modes, pick_seeds
from nanodistill.improve.plan import ImproveParams, StartFrom, round_name
from nanodistill.jobs.context import JobContext
from nanodistill.jobs.run import run_child
from nanodistill.kinds import KINDS
from nanodistill.store import datasets as ds
from nanodistill.store import jobs as jobs_db
from nanodistill.store import models as models_db
from nanodistill.store.db import Store
from nanodistill.teacher.client import TeacherClient
from nanodistill.train.job import training_rows
from nanodistill.train.plan import TrainParams

TEST_SET = "test set "
JUDGE_BUDGET_FLOOR_USD = 1e-9  # a spent budget still makes a valid (positive) cap: every answer is left unjudged


def card_summary(model: models_db.Model) -> dict[str, Any]:
    """One model's card in a line of numbers, for the side-by-side."""
    card = ReportCard.model_validate(model.report)
    main = card.sources[0]
    return {
        "model_id": model.id,
        "model_name": model.name,
        "dataset_id": model.dataset_id,
        "metric": card.metric,
        "student_score": main.student.model_dump() if main.student else None,
        "base_score": main.base.model_dump() if main.base else None,
        "ready": card.ready,
        "verdict": card.verdict,
        "card": f"nanodistill://models/{model.id}/card",
    }


def compare(new: ReportCard, best: ReportCard) -> dict[str, Any]:
    """new - best on the main source's examples both scored (matched by input), with its paired interval."""
    old = {e.input: e.student_score for e in best.sources[0].examples}
    pairs = [
        (e.student_score, before)
        for e in new.sources[0].examples
        if e.student_score is not None and (before := old.get(e.input)) is not None
    ]
    if not pairs:
        return {"n": 0, "improved": False}
    mean, low, high = paired_bootstrap_diff([p[0] for p in pairs], [p[1] for p in pairs])
    return {"n": len(pairs), "mean": mean, "low": low, "high": high, "improved": low > 0}


def trains_from(start_from: StartFrom, best: models_db.Model) -> str | None:
    """The adapter folder the next round starts from, or None for fresh weights on the base: under auto, the
    best model's adapter when its card shows it beat its base (its learning is worth keeping), else the base."""
    if start_from == "base" or best.adapter_path is None:
        return None
    if start_from == "previous" or ReportCard.model_validate(best.report).ready:
        return best.adapter_path
    return None


async def copy_dataset(store: Store, source_id: str, name: str, job_id: str, round_no: int) -> tuple[str, list[str]]:
    """A new version of a dataset: every row in order with its split, source and provenance (the held-out
    rows included, so the next model is evaluated on the same ones). Returns its id and the non-train inputs."""
    source = await ds.get_dataset_by_id(store, source_id)
    held_out: list[str] = []
    async with store.write() as db:
        dataset_id = await ds.insert_dataset(
            db,
            name,
            instruction=source.instruction,
            description=f"{source.name} plus round {round_no} of improve job {job_id}",
            parent_id=source.id,
        )
        async for e in ds.iter_examples(store, source.id):
            if e.split != "train":
                held_out.append(e.input)
            await ds.insert_examples(
                db,
                dataset_id,
                [Row(e.input, e.output, e.reasoning)],
                source=e.source,
                split=e.split,
                provenance=e.provenance,
            )
    return dataset_id, held_out


async def test_dataset_of(store: Store, card: ReportCard) -> str | None:
    """The user test set the card was scored on (its sources name it), so every round is scored on it too."""
    for source in card.sources:
        if source.name.startswith(TEST_SET):
            found = await ds.find_dataset(store, source.name[len(TEST_SET) :])
            return found.id if found else None
    return None


async def record_cost(ctx: JobContext, teacher: TeacherClient) -> float:
    """The job's cost: its own teacher calls plus its stages' (judging), since a stage's cost report
    rolls the parent up to the sum of its children only."""
    stages = sum(child.cost_usd or 0.0 for child in await jobs_db.child_jobs(ctx.store, ctx.id))
    total = teacher.totals.cost_usd + stages
    await ctx.set_cost(total)
    return total


async def generate_round(
    ctx: JobContext,
    p: ImproveParams,
    teacher: TeacherClient,
    best: models_db.Model,
    dataset_id: str,
    held_out: list[str],
    round_no: int,
    span: tuple[float, float],
) -> dict[str, Any]:
    """Ask the teacher for examples aimed at `best`'s failure modes and store those that leak nothing."""
    from nanodistill.amplify.pipeline import amplify

    modes = failure_modes(ReportCard.model_validate(best.report))
    rows, _, _ = await training_rows(ctx.store, dataset_id)
    seeds = [
        Seed(id=i, input=r.input, output=r.output, reasoning=r.reasoning) for i, r in enumerate(pick_seeds(rows, modes))
    ]
    if not seeds:
        raise NanodistillError(f"model {best.name}'s dataset has no training rows to show the teacher")
    guard = NearDuplicateIndex()
    for text in held_out:
        guard.add(text)
    dropped = 0
    state = AmplifyState()
    async for e in ds.iter_examples(ctx.store, dataset_id, ("train",)):
        if e.provenance.get("improve_round") == round_no:
            state.accepted_inputs.append(e.input)

    async def on_accept(example: Accepted) -> None:
        nonlocal dropped
        if guard.find(example.input) is not None:
            dropped += 1
            return
        provenance = {**example.provenance, "teacher_answer": example.output, "improve_round": round_no}
        async with ctx.store.write() as db:
            await ds.insert_examples(
                db,
                dataset_id,
                [Row(example.input, example.output, example.reasoning)],
                source="synthetic",
                provenance=provenance,
            )

    async def on_progress(done: int, total: int, stage: str) -> None:
        start, width = span
        await ctx.progress(start + width * min(done / max(total, 1), 1.0), 100.0, cost_usd=teacher.totals.cost_usd)

    async def on_event(level: str, message: str, data: dict[str, Any]) -> None:
        await ctx.event(level, f"round {round_no}: {message}", data)

    stage = amplify_params(
        p.amplify,
        dataset_id=dataset_id,
        dataset=best.name,
        output=round_name(p.model_name, round_no),
        seeds=len(seeds),
        target=len(seeds) + p.examples_per_round,
    )
    config = amplify_config(stage).model_copy(update={"test_fraction": 0.0})
    await ctx.stage(
        f"round {round_no}: generating",
        f"round {round_no}: asking {p.amplify.teacher} for "
        f"{p.examples_per_round} examples aimed at: {modes.describe()}",
    )
    hooks = AmplifyHooks(on_accept=on_accept, on_progress=on_progress, on_event=on_event, should_stop=ctx.should_stop)
    result = await amplify(
        seeds,
        instruction=f"{best.instruction}\n\n{modes.hint()}",
        teacher=teacher,
        config=config,
        state=state,
        hooks=hooks,
    )
    await record_cost(ctx, teacher)
    if dropped:
        await ctx.event(
            "warning",
            f"round {round_no}: leakage check dropped {dropped} new examples nearly duplicating a held-out input",
            {"leaked": dropped},
        )
    return {
        "failure_modes": modes.describe(),
        "added": result.accepted_train,
        "leaked_dropped": dropped,
        "stopped_reason": result.stopped_reason,
    }


async def run_improve_job(ctx: JobContext) -> dict[str, Any]:
    p = ctx.params_as(ImproveParams)
    store = ctx.store
    original = await models_db.get_model(store, p.model_id)
    options = stored_options(original)
    if original.report is None or original.dataset_id is None or options is None:
        raise NanodistillError(f"model {original.name} needs a report card, a dataset and stored training options")
    first_card = ReportCard.model_validate(original.report)
    metric = first_card.metric if first_card.metric in get_args(Metric) else "auto"
    test_dataset_id = await test_dataset_of(store, first_card)
    teacher = teacher_client(
        amplify_params(
            p.amplify, dataset_id=original.dataset_id, dataset=original.name, output=original.name, seeds=0, target=1
        ),
        store,
        ctx.id,
    )
    teacher.totals = await lifetime_totals(store, ctx.id)
    limit = p.amplify.max_cost_usd
    best = original
    cards = [card_summary(original)]
    rounds: list[dict[str, Any]] = []
    note: str | None = None
    width = 100.0 / p.max_rounds
    for n in range(1, p.max_rounds + 1):
        start = (n - 1) * width
        spent = await record_cost(ctx, teacher)
        if limit is not None and spent >= limit:
            note = f"teacher budget max_cost_usd={limit} spent before round {n}; kept {best.name}"
            break
        name = round_name(p.model_name, n)
        saved = ctx.state.get("rounds", {}).get(str(n), {})
        if "dataset_id" in saved:
            dataset_id, held_out = saved["dataset_id"], saved["held_out"]
        else:
            assert best.dataset_id is not None
            dataset_id, held_out = await copy_dataset(store, best.dataset_id, name, ctx.id, n)
            saved = {"dataset_id": dataset_id, "held_out": held_out}
            await ctx.save_state({"rounds": {**ctx.state.get("rounds", {}), str(n): saved}})
        if test_dataset_id:
            held_out = held_out + [e.input async for e in ds.iter_examples(store, test_dataset_id)]
        generated = saved.get("generated") or await generate_round(
            ctx, p, teacher, best, dataset_id, held_out, n, (start, 0.3 * width)
        )
        if generated["stopped_reason"] == "cancelled":
            return {"stopped": "cancelled", "model_id": best.id, "rounds": rounds}
        await ctx.save_state({"rounds": {**ctx.state.get("rounds", {}), str(n): {**saved, "generated": generated}}})
        summary: dict[str, Any] = {"round": n, "dataset": name, **generated}
        rounds.append(summary)
        if generated["stopped_reason"] == "budget":
            note = f"teacher budget max_cost_usd={limit} reached in round {n}"
        if not generated["added"]:
            if await ds.find_dataset(store, name):  # a version with nothing new is no version
                await ds.delete_dataset(store, name)
            note = (note or f"round {n}: the teacher added no new examples") + f"; kept {best.name}"
            break
        dataset = await ds.get_dataset_by_id(store, dataset_id)
        init_adapter = trains_from(p.start_from, best)
        summary["trained_from"] = best.name if init_adapter else "base"
        ctx.span = (start + 0.3 * width, 0.55 * width)
        trained = await run_child(
            ctx,
            f"train-{n}",
            KINDS["train"],
            TrainParams(
                **options.model_dump(),
                dataset_id=dataset.id,
                dataset=dataset.name,
                base_model=original.base_model,
                name=name,
                init_adapter=init_adapter,
            ),
            f"round {n}: training {name} on {dataset.name} from {summary['trained_from']}",
        )
        if trained.get("stopped") == "cancelled":
            return {"stopped": "cancelled", "model_id": best.id, "rounds": rounds}
        ctx.span = (start + 0.85 * width, 0.15 * width)
        judge = p.amplify.model_dump(
            include={"teacher", "api_base", "api_key_env", "input_cost_per_token", "output_cost_per_token"}
        )
        if limit is not None:  # judging this round may spend what generating left of the budget
            judge["max_cost_usd"] = max(limit - await record_cost(ctx, teacher), JUDGE_BUDGET_FLOOR_USD)
        evaluate = EvaluateParams.model_validate(
            {
                "model_id": trained["model_id"],
                "metric": metric,
                "test_dataset_id": test_dataset_id,
                **(judge if metric == "judge" else {}),
            }
        )
        evaluated = await run_child(
            ctx, f"evaluate-{n}", KINDS["evaluate"], evaluate, f"round {n}: evaluating {name} on the same held-out rows"
        )
        if evaluated.get("stopped") == "cancelled":
            return {"stopped": "cancelled", "model_id": best.id, "rounds": rounds}
        candidate = await models_db.get_model(store, trained["model_id"])
        cards.append(card_summary(candidate))
        summary["model_id"] = candidate.id
        summary["versus_best"] = compare(
            ReportCard.model_validate(candidate.report), ReportCard.model_validate(best.report)
        )
        summary["versus_best"]["best"] = best.name
        if not summary["versus_best"]["improved"]:
            note = (note + "; " if note else "") + f"round {n} did not improve on {best.name}; kept {best.name}"
            break
        best = candidate
        if note:  # the budget ran out during this round: nothing is left for another
            note += f"; kept {best.name}"
            break
    cost = await record_cost(ctx, teacher)
    await ctx.progress(100, 100)
    result = {
        "model_id": best.id,
        "model_name": best.name,
        "improved": best.id != original.id,
        "cards": cards,
        "rounds": rounds,
        "cost_usd": cost,
        "teacher_cost_usd": teacher.totals.cost_usd,
        "card": f"nanodistill://models/{best.id}/card",
    }
    if note:
        result["note"] = note
    return result
