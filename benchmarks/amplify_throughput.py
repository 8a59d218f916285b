"""Amplification throughput against a slow teacher: does the pipeline keep `concurrency` calls busy?

The local stand-in teacher (in its own process, so it does not share this one's interpreter)
adds 200 ms to every call. 10 seeds are amplified to 300 examples at concurrency 16, and the
same job at concurrency 1, each on a fresh cache. Figures, as one JSON line:

- `ratio_to_ideal` = wall time at concurrency 16 / (network calls x 0.2 s / 16); target <= 1.2
- `speedup_vs_c1`  = wall time at concurrency 1 / wall time at concurrency 16; target >= 10
- `bare_http_ratio` = the same number of bare aiohttp calls at concurrency 16 against the same
  server, over the same ideal: the floor this machine allows (CPU contention shows up here too)

One warm-up call goes first, so LiteLLM's one-time setup is not counted in either run.

`--c1-target N` runs the concurrency-1 job to N examples only and scales its wall time per
network call to the concurrency-16 job's call count (`c1_scaled_per_call` says so).

    python benchmarks/amplify_throughput.py [--target 300] [--c1-target 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

LATENCY_S = 0.2
CONCURRENCY = 16


async def _run(server: dict[str, Any], home: Path, *, concurrency: int, target: int) -> dict[str, Any]:
    from nanodistill.amplify.pipeline import amplify
    from nanodistill.amplify.records import AmplifyConfig, AmplifyHooks, AmplifyState, Seed
    from nanodistill.store.db import Store
    from nanodistill.teacher.cache import SqliteTeacherCache
    from nanodistill.teacher.client import TeacherClient
    from nanodistill.testing import toy_sentiment

    store = await Store.open(home / f"c{concurrency}-{target}.db")
    try:
        teacher = TeacherClient(
            server["model"], api_base=server["url"], concurrency=concurrency, cache=SqliteTeacherCache(store)
        )
        seeds = [Seed(id=i, input=text, output=label) for i, (text, label) in enumerate(toy_sentiment.SEEDS)]
        config = AmplifyConfig(target_size=target, concurrency=concurrency)
        started = time.perf_counter()
        result = await amplify(
            seeds,
            instruction=toy_sentiment.INSTRUCTION,
            teacher=teacher,
            config=config,
            state=AmplifyState(),
            hooks=AmplifyHooks(),
        )
        wall = time.perf_counter() - started
    finally:
        await store.close()
    if result.total_examples != target:
        raise SystemExit(f"the concurrency-{concurrency} run stopped early: {result.stopped_reason}")
    return {"wall_s": wall, "calls": result.teacher["calls"]}


async def _bare_http_s(server: dict[str, Any], calls: int) -> float:
    """Wall time of `calls` plain HTTP calls at CONCURRENCY: no LiteLLM, no pipeline."""
    import aiohttp

    limit = anyio.Semaphore(CONCURRENCY)
    body = {"model": "stand-in-teacher", "messages": [{"role": "user", "content": "ping"}]}

    async def one(session: aiohttp.ClientSession) -> None:
        async with limit, session.post(server["url"] + "/chat/completions", json=body) as response:
            await response.read()

    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(calls):
                tg.start_soon(one, session)
        return time.perf_counter() - started


async def _measure(server: dict[str, Any], home: Path, target: int, c1_target: int) -> dict[str, Any]:
    from nanodistill.teacher.client import TeacherClient

    await TeacherClient(server["model"], api_base=server["url"]).complete([{"role": "user", "content": "warm-up"}])
    fast = await _run(server, home, concurrency=CONCURRENCY, target=target)
    bare = await _bare_http_s(server, fast["calls"])
    slow = await _run(server, home, concurrency=1, target=c1_target)
    ideal = fast["calls"] * LATENCY_S / CONCURRENCY
    scaled = c1_target != target
    slow_wall = slow["wall_s"] / slow["calls"] * fast["calls"] if scaled else slow["wall_s"]
    ratio = fast["wall_s"] / ideal
    speedup = slow_wall / fast["wall_s"]
    figures = {
        "seeds": 10,
        "target": target,
        "teacher_latency_s": LATENCY_S,
        "concurrency": CONCURRENCY,
        "calls_c16": fast["calls"],
        "wall_c16_s": round(fast["wall_s"], 3),
        "ideal_c16_s": round(ideal, 3),
        "ratio_to_ideal": round(ratio, 3),
        "bare_http_ratio": round(bare / ideal, 3),
        "c1_target": c1_target,
        "calls_c1": slow["calls"],
        "wall_c1_s": round(slow["wall_s"], 3),
        "c1_scaled_per_call": scaled,
        "speedup_vs_c1": round(speedup, 2),
    }
    goals = {"ratio_to_ideal_max": 1.2, "speedup_vs_c1_min": 10}
    met = ratio <= goals["ratio_to_ideal_max"] and speedup >= goals["speedup_vs_c1_min"]
    return {"benchmark": "amplify_throughput", "figures": figures, "goals": goals, "met": met}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=int, default=300)
    parser.add_argument("--c1-target", type=int, default=None, help="examples for the concurrency-1 run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NANODISTILL_HOME"] = tmp
        server = subprocess.Popen(
            [sys.executable, "-m", "nanodistill.testing.teacher_server", "--latency", str(LATENCY_S)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            info = json.loads(server.stdout.readline())
            figures = asyncio.run(_measure(info, Path(tmp), args.target, args.c1_target or args.target))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
