"""Amplification throughput against a slow teacher: does the amplify job keep `concurrency` calls busy?

The job runs as a user runs it: `amplify_dataset` through an MCP client session, the job in its own
process, every accepted example, event and progress update committed to SQLite as it goes. The local
stand-in teacher (`python -m nanodistill.testing.teacher_server`, its own process) adds 200 ms to every
call. 10 seeds are amplified to 300 examples at concurrency 16, then the same job at concurrency 1, each
in a fresh NANODISTILL_HOME (so nothing comes from the teacher cache).

A job's amplification time runs from its `amplifying` stage event to its end (`finished_at`), so the
job process's start (Python, LiteLLM import) is not counted; it is printed as `startup_c16_s`.

- `ratio_to_ideal` = amplification time at concurrency 16 / (network calls x 0.2 s / 16); goal <= 1.2
- `speedup_vs_c1`  = amplification time at concurrency 1 / the same at concurrency 16; goal >= 10
- `bare_http_ratio` = as many bare aiohttp calls at concurrency 16 against the same server, over the
  same ideal: the floor this machine allows, with no LiteLLM, pipeline or database

    python benchmarks/amplify_throughput.py [--target 300] [--c1-target 300]

`--c1-target N` runs the concurrency-1 job to N examples only and scales its time per network call to
the concurrency-16 job's call count (`c1_scaled_per_call` says so).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

NAME = "amplify_throughput"
LATENCY_S = 0.2
CONCURRENCY = 16
GOALS = {"ratio_to_ideal_max": 1.2, "speedup_vs_c1_min": 10}


async def _amplify_job(teacher: dict[str, Any], home: Path, *, concurrency: int, target: int) -> dict[str, Any]:
    """One amplify job through the tools in a fresh home; its amplification time and network calls."""
    from nanodistill.testing import toy_sentiment
    from server.client import call, session

    home.mkdir()
    os.environ["NANODISTILL_HOME"] = str(home)
    seeds = [{"input": text, "output": label} for text, label in toy_sentiment.SEEDS]
    async with session() as client:
        await call(
            client,
            "create_dataset",
            name="reviews",
            examples=seeds,
            instruction=toy_sentiment.INSTRUCTION,
            holdout_fraction=0,
        )
        started = await call(
            client,
            "amplify_dataset",
            dataset="reviews",
            teacher=teacher["model"],
            api_base=teacher["url"],
            target_size=target,
            concurrency=concurrency,
        )
        job_id = started["job"]["id"]
        events: list[dict[str, Any]] = []
        view = started["job"]
        while view["next_poll_s"] is not None:
            view = await call(client, "get_job", job_id=job_id, wait_s=5, events_after=view["events_cursor"])
            events += view["events"]
    if view["status"] != "succeeded" or view["result"]["total_examples"] != target:
        raise SystemExit(f"the concurrency-{concurrency} job did not reach {target}: {view['status']} {view}")
    amplifying_at = next(e["at"] for e in events if e["data"].get("stage") == "amplifying")
    return {
        "amplify_s": view["finished_at"] - amplifying_at,
        "startup_s": amplifying_at - view["created_at"],
        "calls": view["result"]["teacher"]["calls"],
    }


async def _bare_http_s(url: str, calls: int) -> float:
    """Wall time of `calls` plain HTTP calls at CONCURRENCY: no LiteLLM, no pipeline, no database."""
    import aiohttp

    limit = anyio.Semaphore(CONCURRENCY)
    body = {"model": "stand-in-teacher", "messages": [{"role": "user", "content": "ping"}]}

    async def one(session: aiohttp.ClientSession) -> None:
        async with limit, session.post(url + "/chat/completions", json=body) as response:
            await response.read()

    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(calls):
                tg.start_soon(one, session)
        return time.perf_counter() - started


async def _measure(teacher: dict[str, Any], tmp: Path, target: int, c1_target: int) -> dict[str, Any]:
    fast = await _amplify_job(teacher, tmp / "c16", concurrency=CONCURRENCY, target=target)
    bare = await _bare_http_s(teacher["url"], fast["calls"])
    slow = await _amplify_job(teacher, tmp / "c1", concurrency=1, target=c1_target)
    ideal = fast["calls"] * LATENCY_S / CONCURRENCY
    scaled = c1_target != target
    slow_s = slow["amplify_s"] / slow["calls"] * fast["calls"] if scaled else slow["amplify_s"]
    ratio = fast["amplify_s"] / ideal
    speedup = slow_s / fast["amplify_s"]
    figures = {
        "seeds": 10,
        "target": target,
        "teacher_latency_s": LATENCY_S,
        "concurrency": CONCURRENCY,
        "calls_c16": fast["calls"],
        "amplify_c16_s": round(fast["amplify_s"], 3),
        "ideal_c16_s": round(ideal, 3),
        "ratio_to_ideal": round(ratio, 3),
        "bare_http_ratio": round(bare / ideal, 3),
        "startup_c16_s": round(fast["startup_s"], 2),
        "c1_target": c1_target,
        "calls_c1": slow["calls"],
        "amplify_c1_s": round(slow["amplify_s"], 3),
        "c1_scaled_per_call": scaled,
        "speedup_vs_c1": round(speedup, 2),
        "cpu_count": os.cpu_count(),
    }
    met = ratio <= GOALS["ratio_to_ideal_max"] and speedup >= GOALS["speedup_vs_c1_min"]
    return {"benchmark": NAME, "figures": figures, "goals": GOALS, "met": met}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=int, default=300)
    parser.add_argument("--c1-target", type=int, default=None, help="examples for the concurrency-1 run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nd-bench-amplify-") as tmp:
        server = subprocess.Popen(
            [sys.executable, "-m", "nanodistill.testing.teacher_server", "--latency", str(LATENCY_S)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            teacher = json.loads(server.stdout.readline())
            result = anyio.run(_measure, teacher, Path(tmp), args.target, args.c1_target or args.target)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
