"""What a `train` job costs on top of mlx-lm's own trainer: the same run through MCP and through the CLI.

One tiny random-weight student (nanodistill.testing.tiny_student), one toy sentiment dataset, the same
iterations and LoRA settings, trained twice per round in a temporary NANODISTILL_HOME:

- job: `train_student` through an in-memory MCP client, timed from the call until get_job says
  `succeeded` (process start, fast-BLAS re-exec, imports, data rendering, training with validation,
  checkpoints and event writes, model registration).
- cli: `python -m mlx_lm lora --train` on the job's own rendered data (artifacts/jobs/<id>/data),
  same rank/scale/layers/learning rate/batch size/prompt masking/eval and save cadence/validation
  batches, run with the environment the job gets (the fast BLAS from `fast_blas_env`), timed from
  process start to exit.

Figures per side (best of the rounds): wall seconds, and tokens/s (mean of the train reports: the
job's metric events, the CLI's train report lines). Goals: job wall <= 1.15x the CLI's, job
tokens/s >= 0.9x the CLI's. Prints the ratios, then one JSON line; exits 0 either way.

    python benchmarks/train_overhead.py [--iters 600] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "train_overhead"
GOALS = {"wall_ratio_max": 1.15, "tokens_per_s_ratio_min": 0.9}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# mlx-lm's train report: "Iter 10: Train loss ..., Tokens/sec 1234.5, ..." (older) or the table row
# "  10    2.345 ▼    1,234    1.1k" (newer, rich); the tokens/s figure is captured either way.
TOKENS_LINE = re.compile(r"Tokens/sec ([0-9.]+)|^\s*\d+\s+[0-9.]+ [▼▲]\s+([0-9,.]+)\s+[0-9.]+k\s*$", re.MULTILINE)


def settings_for(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "iters": args.iters,
        "batch_size": 4,
        "learning_rate": 3e-4,
        "lora_rank": 8,
        "lora_scale": 20.0,
        "num_layers": -1,
        "max_seq_length": 256,
        "mask_prompt": True,
        "reasoning": "none",
        "steps_per_eval": args.steps_per_eval,
        "save_every": args.steps_per_eval,
        "val_fraction": 0.1,
        "seed": 0,
    }


async def run_job(student: Path, options: dict[str, Any], name: str) -> dict[str, Any]:
    from mcp import Client

    from server.app import build_server
    from server.client import call

    async with Client(build_server()) as client:
        started = time.perf_counter()
        view = await call(client, "train_student", dataset="toy", base_model=str(student), name=name, **options)
        cursor, speeds = 0, []
        while True:
            view = await call(client, "get_job", job_id=view["id"], wait_s=10, events_after=cursor)
            cursor = view["events_cursor"]
            for event in view["events"]:
                data = event["data"]
                if event["level"] == "metric" and data.get("kind") == "train" and data.get("tokens_per_second"):
                    speeds.append(float(data["tokens_per_second"]))
            if view["next_poll_s"] is None:
                break
        wall = time.perf_counter() - started
    if view["status"] != "succeeded":
        raise SystemExit(f"train job ended {view['status']}: {view.get('error')}")
    return {"id": view["id"], "wall_s": wall, "speeds": speeds, "job_wall_s": view["metrics"].get("wall_s")}


def run_cli(student: Path, data_dir: Path, options: dict[str, Any], out: Path, env: dict[str, str]) -> dict[str, Any]:
    config = out / "lora.yaml"
    config.write_text(
        f"lora_parameters:\n  rank: {options['lora_rank']}\n  scale: {options['lora_scale']}\n  dropout: 0.0\n"
    )
    command = [
        sys.executable, "-m", "mlx_lm", "lora", "--model", str(student), "--train", "--data", str(data_dir),
        "--fine-tune-type", "lora", "--iters", str(options["iters"]), "--batch-size", str(options["batch_size"]),
        "--learning-rate", str(options["learning_rate"]), "--num-layers", str(options["num_layers"]),
        "--max-seq-length", str(options["max_seq_length"]), "--steps-per-report", "10",
        "--steps-per-eval", str(options["steps_per_eval"]), "--save-every", str(options["save_every"]),
        "--val-batches", "25", "--seed", str(options["seed"]), "--adapter-path", str(out / "adapters"),
        "-c", str(config),
    ]  # fmt: skip
    if options["mask_prompt"]:
        command.append("--mask-prompt")
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=out)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"mlx_lm lora failed ({done.returncode}):\n{done.stderr[-3000:]}")
    text = ANSI.sub("", done.stdout + done.stderr)
    speeds = [float((old or new).replace(",", "")) for old, new in TOKENS_LINE.findall(text)]
    return {"wall_s": wall, "speeds": speeds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iters", type=int, default=600)
    parser.add_argument("--steps-per-eval", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    options = settings_for(args)

    with tempfile.TemporaryDirectory(prefix="nd-train-overhead-") as tmp:
        root = Path(tmp)
        os.environ["NANODISTILL_HOME"] = str(root / "home")
        os.environ["NANODISTILL_IMPORT_ROOTS"] = str(root)
        import anyio

        from nanodistill.platform.blas import fast_blas_env
        from nanodistill.settings import load_settings
        from nanodistill.testing.tiny_student import build_tiny_student

        settings = load_settings()
        blas = fast_blas_env(settings)  # builds and checks the shim once, before anything is timed
        cli_env = {**os.environ, **blas}
        student = build_tiny_student(root / "tiny")
        anyio.run(_make_dataset)

        jobs: list[dict[str, Any]] = []
        clis: list[dict[str, Any]] = []
        for round_no in range(args.rounds):
            job = anyio.run(run_job, student, options, f"bench-{round_no}")
            jobs.append(job)
            data_dir = settings.artifact_dir("jobs", job["id"]) / "data"
            cli_dir = root / f"cli-{round_no}"
            cli_dir.mkdir()
            shutil.copytree(data_dir, cli_dir / "data")
            clis.append(run_cli(student, cli_dir / "data", options, cli_dir, cli_env))
            print(
                f"round {round_no + 1}: job {job['wall_s']:.1f} s ({_mean(job['speeds']):.0f} tok/s), "
                f"cli {clis[-1]['wall_s']:.1f} s ({_mean(clis[-1]['speeds']):.0f} tok/s)",
                file=sys.stderr,
            )

    job_wall = min(j["wall_s"] for j in jobs)
    cli_wall = min(c["wall_s"] for c in clis)
    job_tps = max(_mean(j["speeds"]) for j in jobs)
    cli_tps = max(_mean(c["speeds"]) for c in clis)
    wall_ratio = job_wall / cli_wall
    tps_ratio = job_tps / cli_tps if cli_tps else 0.0
    met = wall_ratio <= GOALS["wall_ratio_max"] and tps_ratio >= GOALS["tokens_per_s_ratio_min"]
    print(f"wall time: job / cli = {job_wall:.2f} s / {cli_wall:.2f} s = {wall_ratio:.3f} (goal <= 1.15)")
    print(f"tokens/s:  job / cli = {job_tps:.0f} / {cli_tps:.0f} = {tps_ratio:.3f} (goal >= 0.9)")
    figures = {
        "iters": args.iters,
        "rounds": args.rounds,
        "fast_blas": bool(blas),
        "job_wall_s": round(job_wall, 2),
        "cli_wall_s": round(cli_wall, 2),
        "job_training_wall_s": min(j["job_wall_s"] or 0.0 for j in jobs),
        "wall_ratio": round(wall_ratio, 3),
        "job_tokens_per_s": round(job_tps, 1),
        "cli_tokens_per_s": round(cli_tps, 1),
        "tokens_per_s_ratio": round(tps_ratio, 3),
        "job_walls_s": [round(j["wall_s"], 2) for j in jobs],
        "cli_walls_s": [round(c["wall_s"], 2) for c in clis],
    }
    print(json.dumps({"benchmark": NAME, "figures": figures, "goals": GOALS, "met": met}))
    return 0


async def _make_dataset() -> None:
    from mcp import Client

    from nanodistill.testing.toy_sentiment import INSTRUCTION
    from nanodistill.testing.toy_sentiment import examples as toy_examples
    from server.app import build_server
    from server.client import call

    examples = toy_examples(80, seed=0)
    async with Client(build_server()) as client:
        await call(client, "create_dataset", name="toy", examples=examples, instruction=INSTRUCTION,
                    holdout_fraction=0.1)  # fmt: skip


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


if __name__ == "__main__":
    sys.exit(main())
