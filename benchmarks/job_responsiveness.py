"""Server responsiveness while an amplify job runs: `tools/list` and `get_job` latency, loaded vs idle.

The MCP server runs in this process (an in-memory `mcp.Client` against `build_server()`, temporary
NANODISTILL_HOME); the amplify job runs in its own process, as always, against the local stand-in
teacher (`python -m nanodistill.testing.teacher_server`, a third process) with some latency per call so
the job lasts ~15-30 s, writing examples, events and progress to the same SQLite file as it goes.

- loaded: once the job is amplifying (progress past the seeds), CALLS `tools/list` and CALLS `get_job`
  calls, interleaved, each timed from the call to its parsed result, with a short pause (--gap-ms)
  after each pair so they are spread over most of the job's run. `get_job` follows the job the way a
  client does (`events_after` = the previous answer's events_cursor). The job must still be running
  when the last call returns (`job_ran_throughout`).
- idle (baseline, same run, same server): the same calls once the job has ended and its process exited.

Figures: p50 and p99 in ms for both calls in both conditions, and loaded/idle p99 ratios; also how long
the amplify_dataset call itself took (the server's first one imports LiteLLM, in a worker thread).
Goals: p99 < 50 ms for both calls while the job runs. Ends with one JSON line; exits 0 whether or not
the goals are met.

    python benchmarks/job_responsiveness.py [--calls 200] [--latency 0.25] [--target 240] [--gap-ms 25]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

NAME = "job_responsiveness"
GOALS = {"loaded_tools_list_p99_ms": 50.0, "loaded_get_job_p99_ms": 50.0}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def start_teacher_process(latency_s: float) -> dict[str, Any]:
    """The stand-in teacher in its own process, so serving the job's calls does not share this process's
    GIL with the MCP server being measured (a real teacher is elsewhere too)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "nanodistill.testing.teacher_server", "--port", "0", "--latency", str(latency_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit("the stand-in teacher did not start")
    return {**json.loads(line), "process": process}


def teacher_stats(url: str) -> dict[str, Any]:
    admin = url.removesuffix("/v1") + "/admin/stats"
    with urllib.request.urlopen(admin, timeout=10) as response:
        stats: dict[str, Any] = json.load(response)
    return stats


async def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    import anyio
    from mcp import Client

    from nanodistill.testing import toy_sentiment
    from nanodistill.testing.teacher_server import MODEL
    from server.app import build_server
    from server.client import call

    teacher_model = f"openai/{MODEL}"

    async def measure(client: Client, job_id: str, cursor: int) -> tuple[list[float], list[float], int]:
        tools_ms: list[float] = []
        get_ms: list[float] = []
        for _ in range(args.calls):
            started = time.perf_counter()
            listed = await client.list_tools()
            tools_ms.append((time.perf_counter() - started) * 1000)
            assert listed.tools
            started = time.perf_counter()
            view = await call(client, "get_job", job_id=job_id, events_after=cursor)
            get_ms.append((time.perf_counter() - started) * 1000)
            cursor = view["events_cursor"]
            await anyio.sleep(args.gap_ms / 1000)
        return tools_ms, get_ms, cursor

    seeds = [{"input": text, "output": label} for text, label in toy_sentiment.SEEDS]
    teacher = start_teacher_process(args.latency)
    try:
        async with Client(build_server()) as client:
            await call(
                client,
                "create_dataset",
                name="reviews",
                examples=seeds,
                instruction=toy_sentiment.INSTRUCTION,
                holdout_fraction=0,
            )
            await client.list_tools()  # warm-up: the session's first tools/list is not counted in either condition
            job_started = time.monotonic()
            started = await call(
                client,
                "amplify_dataset",
                dataset="reviews",
                teacher=teacher_model,
                api_base=teacher["url"],
                target_size=args.target,
                concurrency=args.concurrency,
            )
            amplify_call_ms = (time.monotonic() - job_started) * 1000
            job_id = started["job"]["id"]
            cursor = 0
            while True:  # wait until the job is amplifying: process started, LiteLLM loaded, calls flowing
                view = await call(client, "get_job", job_id=job_id, wait_s=2, events_after=cursor)
                cursor = view["events_cursor"]
                if view["next_poll_s"] is None:
                    raise SystemExit(f"the job ended before it could be measured: {view['status']} {view['error']}")
                if view["status"] == "running" and view["progress"]["done"] > len(seeds):
                    break
            loaded_tools, loaded_get, cursor = await measure(client, job_id, cursor)
            view = await call(client, "get_job", job_id=job_id, events_after=cursor)
            ran_throughout = view["status"] == "running"
            done_at_end = view["progress"]["done"]
            while view["next_poll_s"] is not None:
                view = await call(client, "get_job", job_id=job_id, wait_s=5, events_after=view["events_cursor"])
            job_s = time.monotonic() - job_started
            cursor = view["events_cursor"]
            idle_tools, idle_get, _ = await measure(client, job_id, cursor)
            teacher_calls = teacher_stats(teacher["url"])["calls"]
    finally:
        teacher["process"].terminate()
        teacher["process"].wait(timeout=15)

    def p(values: list[float], q: float) -> float:
        return round(percentile(values, q), 2)

    figures: dict[str, Any] = {
        "calls_each": args.calls,
        "amplify_dataset_call_ms": round(amplify_call_ms, 1),
        "idle_tools_list_p50_ms": p(idle_tools, 50),
        "idle_tools_list_p99_ms": p(idle_tools, 99),
        "idle_get_job_p50_ms": p(idle_get, 50),
        "idle_get_job_p99_ms": p(idle_get, 99),
        "loaded_tools_list_p50_ms": p(loaded_tools, 50),
        "loaded_tools_list_p99_ms": p(loaded_tools, 99),
        "loaded_get_job_p50_ms": p(loaded_get, 50),
        "loaded_get_job_p99_ms": p(loaded_get, 99),
        "tools_list_p99_ratio_loaded_idle": round(percentile(loaded_tools, 99) / percentile(idle_tools, 99), 2),
        "get_job_p99_ratio_loaded_idle": round(percentile(loaded_get, 99) / percentile(idle_get, 99), 2),
        "loaded_tools_list_max_ms": round(max(loaded_tools), 2),
        "loaded_get_job_max_ms": round(max(loaded_get), 2),
        "loaded_mean_ms": round(statistics.fmean(loaded_tools + loaded_get), 2),
        "job_ran_throughout": ran_throughout,
        "job_progress_at_last_loaded_call": done_at_end,
        "job_status": view["status"],
        "job_s": round(job_s, 1),
        "job_examples": (view["result"] or {}).get("total_examples"),
        "teacher_calls": teacher_calls,
        "teacher_latency_s": args.latency,
        "cpu_count": os.cpu_count(),
    }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls of each kind per condition")
    parser.add_argument("--latency", type=float, default=0.25, help="seconds the stand-in teacher adds per call")
    parser.add_argument("--target", type=int, default=240, help="examples the amplify job aims for")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=25.0,
        help="pause after each tools/list + get_job pair, so the loaded calls span the job's run",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nd-bench-jobs-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        os.environ["NANODISTILL_HOME"] = str(home)
        os.environ.setdefault("NANODISTILL_IMPORT_ROOTS", tmp)
        import anyio

        figures = anyio.run(run, args, home)
    met = bool(figures["job_ran_throughout"]) and all(figures[name] < goal for name, goal in GOALS.items())
    for name, value in figures.items():
        print(f"{name:36} {value}", file=sys.stderr)
    print(json.dumps({"benchmark": NAME, "figures": figures, "goals": GOALS, "met": met}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
