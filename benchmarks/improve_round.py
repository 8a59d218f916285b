"""One improve_student round fixes the failure mode the first amplification missed.

Offline, through MCP tools in a temporary NANODISTILL_HOME, with the stand-in teacher and the task
nanodistill.testing.stand_in_tasks.TicketTeams (route a ticket to billing, shipping or account). The
stand-in writes no account tickets unless the instruction it gets names 'account', so:

1. `create_dataset` of 9 seeds (3 per team), `amplify_dataset` to 150 rows: 3 of them account tickets.
2. `train_student` (SmolLM2-135M, LoRA on the last 8 layers, 40 steps), `evaluate_student` on a balanced test
   set of fresh tickets: the student misses most account tickets.
3. `improve_student`, one round: the card's failure patterns ("inputs whose correct output is 'account'")
   go into the teacher's instruction, the stand-in now writes account tickets, the next student trains
   and is evaluated on the same test rows.

Goals: the round improves the held-out score with the paired interval (round - first) above zero; and no
held-out input the cards scored is within the leakage threshold of any input of any training set
(checked with nanodistill.evaluate.leakage over every trained model's dataset). One JSON line; exit 0.

    python benchmarks/improve_round.py [--test 60] [--target 150] [--per-round 120] [--iters 40]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from typing import Any

from shared.smollm2_runs import finished, log, temporary_home, training

NAME = "improve_round"
GOALS = {"paired_low_above": 0.0, "leaked_into_training": 0}
SEEDS = 9


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from nanodistill.testing.stand_in_tasks import TicketTeams
    from nanodistill.testing.teacher_server import start_teacher_server
    from server.client import call, session

    seeds = TicketTeams.examples(SEEDS, seed=0)
    test = TicketTeams.examples(args.test, seed=1, exclude={r["input"] for r in seeds})
    walls: dict[str, float] = {}
    with start_teacher_server() as teacher:
        async with session() as client:
            started = time.perf_counter()
            await finished(client, (await call(client, "import_model", source="smollm2-135m"))["id"], "import")
            walls["import_s"] = time.perf_counter() - started
            instruction = TicketTeams.INSTRUCTION
            await call(client, "create_dataset", name="tickets", examples=seeds, instruction=instruction,
                       holdout_fraction=0)  # fmt: skip
            await call(client, "create_dataset", name="tickets-test", examples=test, instruction=instruction)
            started = time.perf_counter()
            job = await call(
                client,
                "amplify_dataset",
                dataset="tickets",
                output_dataset="tickets-amplified",
                teacher=teacher.model,
                api_base=teacher.url,
                target_size=args.target,
                test_fraction=0,
            )
            await finished(client, job["job"]["id"], "amplify")
            job = await call(
                client,
                "train_student",
                dataset="tickets-amplified",
                base_model="smollm2-135m",
                name="tickets-student",
                **training(args.iters),
            )
            first = (await finished(client, job["id"], "train"))["result"]["model_id"]
            job = await call(
                client, "evaluate_student", model=first, test_dataset="tickets-test", metric="label", baselines=["base"]
            )
            evaluated = (await finished(client, job["id"], "evaluate"))["result"]
            walls["first_round_s"] = time.perf_counter() - started
            log(f"first student: {evaluated['student_score']} (base {evaluated['base_score']})")
            started = time.perf_counter()
            job = await call(
                client,
                "improve_student",
                model=first,
                teacher=teacher.model,
                api_base=teacher.url,
                examples_per_round=args.per_round,
                max_rounds=1,
            )
            improved = (await finished(client, job["id"], "improve"))["result"]
            walls["improve_s"] = time.perf_counter() - started
    return {"first": first, "improved": improved, "walls": walls}


def leakage(model_ids: list[str]) -> dict[str, Any]:
    """Every held-out input the models' cards scored, against every input of every trained model's dataset."""
    from nanodistill.evaluate.leakage import split_leaked
    from nanodistill.settings import load_settings

    with sqlite3.connect(load_settings().db_path) as db:
        trained = [r[0] for r in db.execute("SELECT input FROM examples WHERE dataset_id IN "
                                            "(SELECT dataset_id FROM models WHERE kind = 'trained')")]  # fmt: skip
        reports = [json.loads(r[0]) for r in db.execute(
            f"SELECT report FROM models WHERE id IN ({','.join('?' * len(model_ids))})", model_ids)]  # fmt: skip
    held_out = sorted({e["input"] for card in reports for source in card["sources"] for e in source["examples"]})
    _, leaked = split_leaked(trained, held_out)
    return {
        "held_out_scored": len(held_out),
        "training_inputs": len(trained),
        "leaked_into_training": len(leaked),
        "dropped_from_evaluation": [source["leaked"] for card in reports for source in card["sources"]],
        "cards_per_example_labels": [card["sources"][0].get("labels") for card in reports],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--test", type=int, default=60, help="held-out tickets")
    parser.add_argument("--target", type=int, default=150, help="rows of the first amplification")
    parser.add_argument("--per-round", type=int, default=120, help="new teacher examples in the improvement round")
    parser.add_argument("--iters", type=int, default=40, help="LoRA iterations (batch 8)")
    args = parser.parse_args()

    started = time.perf_counter()
    with temporary_home("nd-improve-"):
        import anyio

        result = anyio.run(run, args)
        improved = result["improved"]
        rounds = improved["rounds"]
        models = [result["first"], *[r["model_id"] for r in rounds if "model_id" in r]]
        checked = leakage(models)
    wall = time.perf_counter() - started

    versus = rounds[0].get("versus_best", {}) if rounds else {}
    cards = improved["cards"]
    figures = {
        "first_score": cards[0]["student_score"],
        "round_score": cards[1]["student_score"] if len(cards) > 1 else None,
        "base_score": cards[0]["base_score"],
        "paired_difference": {k: versus.get(k) for k in ("mean", "low", "high", "n")},
        "improved": improved["improved"],
        "failure_modes": rounds[0].get("failure_modes") if rounds else None,
        "added": rounds[0].get("added") if rounds else None,
        "leaked_dropped_by_improve": rounds[0].get("leaked_dropped") if rounds else None,
        **checked,
        "note": improved.get("note"),
        "student": "SmolLM2-135M-Instruct (LoRA, last 8 layers)",
        "wall_s": round(wall, 1),
        **{k: round(v, 1) for k, v in result["walls"].items()},
    }
    low = versus.get("low")
    met = low is not None and low > 0 and checked["leaked_into_training"] == 0
    print(f"first {figures['first_score']} -> round {figures['round_score']}; paired {figures['paired_difference']}")
    print(json.dumps({"benchmark": NAME, "figures": figures, "goals": GOALS, "met": met}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
