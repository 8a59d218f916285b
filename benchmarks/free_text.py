"""A free-text task on the report card: chrf and judge both separate a trained student from its base.

Offline, through MCP tools in a temporary NANODISTILL_HOME, with the stand-in teacher
(nanodistill.testing.stand_in_tasks.FormalDates: "meet me on 3 May" -> "Meeting date: 2026-05-03."):

1. `import_model("smollm2-135m")`, the pretrained student.
2. `create_dataset` of 12 seeds, `amplify_dataset` to 160 teacher examples, `train_student`: LoRA on the
   last 8 layers, 40 steps.
3. `evaluate_student` twice on a test set of fresh messages, against the untrained base: `metric="chrf"`,
   then `metric="judge"` with the stand-in teacher grading (word overlap with the reference).

Goals: on both metrics the student's 95% interval lies wholly above the base's; and where the two
models' chrf scores on an example differ by more than 0.2, judge picks the same better model on at
least 90% of them. Ends with one JSON line; exits 0 either way.

    python benchmarks/free_text.py [--test 60] [--target 160] [--iters 40]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from typing import Any

from shared.smollm2_runs import finished, log, temporary_home, training

NAME = "free_text"
AGREEMENT_MIN = 0.9
DIFFER_BY = 0.2
GOALS = {"intervals_separate": ["chrf", "judge"], "judge_chrf_agreement_min": AGREEMENT_MIN, "differ_by": DIFFER_BY}
SEEDS = 12


def stored_card(model_id: str) -> dict[str, Any]:
    """The card as stored: it keeps every example's answers and scores (the tool's view summarises)."""
    from nanodistill.settings import load_settings

    with sqlite3.connect(load_settings().db_path) as db:
        row = db.execute("SELECT report FROM models WHERE id = ?", (model_id,)).fetchone()
    return dict(json.loads(row[0]))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from nanodistill.testing.stand_in_tasks import FormalDates
    from nanodistill.testing.teacher_server import start_teacher_server
    from server.client import call, session

    seeds = FormalDates.examples(SEEDS, seed=0)
    test = FormalDates.examples(args.test, seed=1, exclude={r["input"] for r in seeds})
    walls: dict[str, float] = {}
    cards: dict[str, dict[str, Any]] = {}
    with start_teacher_server() as teacher:
        async with session() as client:
            started = time.perf_counter()
            await finished(client, (await call(client, "import_model", source="smollm2-135m"))["id"], "import")
            walls["import_s"] = time.perf_counter() - started
            await call(client, "create_dataset", name="dates-test", examples=test, instruction=FormalDates.INSTRUCTION)
            started = time.perf_counter()
            await call(client, "create_dataset", name="dates", examples=seeds, instruction=FormalDates.INSTRUCTION,
                       holdout_fraction=0)  # fmt: skip
            job = await call(
                client,
                "amplify_dataset",
                dataset="dates",
                output_dataset="dates-amplified",
                teacher=teacher.model,
                api_base=teacher.url,
                target_size=args.target,
                test_fraction=0,
            )
            await finished(client, job["job"]["id"], "amplify")
            walls["amplify_s"] = time.perf_counter() - started
            started = time.perf_counter()
            job = await call(
                client,
                "train_student",
                dataset="dates-amplified",
                base_model="smollm2-135m",
                name="dates-student",
                **training(args.iters),
            )
            done = await finished(client, job["id"], "train")
            walls["train_s"] = time.perf_counter() - started
            model_id = done["result"]["model_id"]
            for metric in ("chrf", "judge"):
                started = time.perf_counter()
                judge = {"teacher": teacher.model, "api_base": teacher.url} if metric == "judge" else {}
                job = await call(
                    client,
                    "evaluate_student",
                    model=model_id,
                    test_dataset="dates-test",
                    baselines=["base"],
                    metric=metric,
                    **judge,
                )
                done = await finished(client, job["id"], f"evaluate ({metric})")
                walls[f"evaluate_{metric}_s"] = time.perf_counter() - started
                cards[metric] = stored_card(model_id)
                log(f"{metric}: student {done['result']['student_score']} base {done['result']['base_score']}")
    return {"cards": cards, "walls": walls}


def main_source(card: dict[str, Any]) -> dict[str, Any]:
    return dict(card["sources"][0])


def agreement(chrf: dict[str, Any], judge: dict[str, Any], differ_by: float) -> tuple[float | None, int]:
    """Of the examples where student and base differ by more than `differ_by` in chrf, the share where
    judge names the same better model; and how many such examples there are."""
    judged = {e["index"]: e for e in judge["examples"]}
    agree = total = 0
    for e in chrf["examples"]:
        j = judged.get(e["index"])
        if j is None or None in (e["student_score"], e["base_score"], j["student_score"], j["base_score"]):
            continue
        d = e["student_score"] - e["base_score"]
        if abs(d) > differ_by:
            total += 1
            agree += (j["student_score"] - j["base_score"]) * d > 0
    return (agree / total if total else None), total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--test", type=int, default=60, help="held-out messages")
    parser.add_argument("--target", type=int, default=160, help="teacher examples to amplify to")
    parser.add_argument("--iters", type=int, default=40, help="LoRA iterations (batch 8)")
    args = parser.parse_args()

    started = time.perf_counter()
    with temporary_home("nd-free-text-"):
        import anyio

        result = anyio.run(run, args)
    wall = time.perf_counter() - started

    figures: dict[str, Any] = {}
    separated = {}
    for metric, card in result["cards"].items():
        source = main_source(card)
        student, base = source["student"], source["base"]
        separated[metric] = student["low"] > base["high"]
        figures[metric] = {
            "student": student,
            "base": base,
            "difference": source.get("difference"),
            "separated": separated[metric],
        }
        print(f"{metric}: student {student['mean']:.3f} [{student['low']:.3f}, {student['high']:.3f}] vs base "
              f"{base['mean']:.3f} [{base['low']:.3f}, {base['high']:.3f}]")  # fmt: skip
    chrf, judge = main_source(result["cards"]["chrf"]), main_source(result["cards"]["judge"])
    agreed, n_differ = agreement(chrf, judge, DIFFER_BY)
    judge_card = result["cards"]["judge"].get("judge") or {}
    figures.update(
        judge_chrf_agreement=agreed,
        examples_differing=n_differ,
        n_test=chrf["size"],
        judge_calls=judge_card.get("calls"),
        judge_unjudged=judge_card.get("unjudged"),
        judge_reasons=[r.get("reason") for r in (judge_card.get("reasons") or [])[:3]],
        worst=[{k: e[k] for k in ("input", "gold", "student", "base")} for e in chrf["worst"][:3]],
        student="SmolLM2-135M-Instruct (LoRA, last 8 layers)",
        wall_s=round(wall, 1),
        **{k: round(v, 1) for k, v in result["walls"].items()},
    )
    print(f"judge agrees with chrf on {agreed} of {n_differ} examples differing by > {DIFFER_BY}")
    met = all(separated.values()) and agreed is not None and agreed >= AGREEMENT_MIN
    print(json.dumps({"benchmark": NAME, "figures": figures, "goals": GOALS, "met": met}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
