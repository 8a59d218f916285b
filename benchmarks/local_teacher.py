"""Teachers people actually have: a local server that serves one call at a time, a hosted one that
serves many, and one that loses a call now and then. Does `amplify_dataset` with its defaults adapt?

Every job runs as a user runs it (`amplify_dataset` through an MCP client session, the job in its own
process, a fresh NANODISTILL_HOME each so nothing comes from the cache), against the stand-in teacher
(`python -m nanodistill.testing.teacher_server`, its own process). Times are amplification times, from
the job's `amplifying` stage to its end, as in `amplify_throughput.py`, whose helpers run the jobs.

(a) serial: the stand-in serves one request at a time, 0.3 s each (like Ollama, llama.cpp or mlx_lm
    server); 10 seeds -> 60 examples with the default settings. Goals: no timeouts, and amplification
    time <= 1.3 x the serial ideal (network calls x 0.3 s).
(b) parallel: `amplify_throughput`'s measure (0.2 s, concurrency 16 against concurrency 1): ratio to
    ideal <= 1.2 and >= 10x concurrency 1.
(c) hosted: 0.2 s, serving many at once, 10 seeds -> 300 examples with every default (ceiling 32).
    Printed: the time and the ideal (calls x 0.2 s / 32); the original NanoDistill needs about 21 s there.
(d) stall: as (c), but one request in twenty never answers. Goal: <= 1.5 x the time of (c).

    python benchmarks/local_teacher.py [--serial-target 60] [--target 300] [--c1-target 60]
                                       [--only serial|parallel|hosted]

`--only` runs one part (for iteration); `met` then judges that part's goals only.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from amplify_throughput import _amplify_job, _measure

from nanodistill.amplify.plan import AmplifyOptions

NAME = "local_teacher"
SERIAL_LATENCY_S = 0.3
HOSTED_LATENCY_S = 0.2
STALL_EVERY = 20
ORIGINAL_NANODISTILL_S = 21.0
DEFAULT_CEILING = int(AmplifyOptions.model_fields["concurrency"].default)
PARTS = ("serial", "parallel", "hosted")
GOALS = {
    "serial_timeouts_max": 0,
    "serial_ratio_to_ideal_max": 1.3,
    "parallel_ratio_to_ideal_max": 1.2,
    "parallel_speedup_vs_c1_min": 10,
    "stall_ratio_max": 1.5,
}


@contextmanager
def stand_in(*flags: str) -> Iterator[dict[str, Any]]:
    """The stand-in teacher in its own process, with these command-line switches."""
    process = subprocess.Popen(
        [sys.executable, "-m", "nanodistill.testing.teacher_server", *flags], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(timeout=30)


def job_result(home: Path) -> dict[str, Any]:
    """The amplify job's result, as stored: the teacher's totals and the concurrency it settled on."""
    with sqlite3.connect(home / "nanodistill.db") as db:
        row = db.execute("SELECT result FROM jobs WHERE kind = 'amplify'").fetchone()
    return dict(json.loads(row[0]))


async def default_job(teacher: dict[str, Any], home: Path, target: int) -> dict[str, Any]:
    """An amplify job with every default (amplify_throughput's helper, given the default ceiling)."""
    ran = await _amplify_job(teacher, home, concurrency=DEFAULT_CEILING, target=target)
    return {**ran, "result": job_result(home)}


def _serial(tmp: Path, target: int) -> dict[str, Any]:
    with stand_in("--latency", str(SERIAL_LATENCY_S), "--serial") as teacher:
        ran = anyio.run(default_job, teacher, tmp / "serial", target)
    ideal = ran["calls"] * SERIAL_LATENCY_S
    totals, found = ran["result"]["teacher"], ran["result"]["teacher_concurrency"]
    return {
        "serial_target": target,
        "serial_calls": ran["calls"],
        "serial_amplify_s": round(ran["amplify_s"], 2),
        "serial_ideal_s": round(ideal, 2),
        "serial_ratio_to_ideal": round(ran["amplify_s"] / ideal, 3),
        "serial_timeouts": totals["timeouts"],
        "serial_retries": totals["retries"],
        "serial_settled_limit": found["limit"],
        "serial_parallelism_found": found["parallelism"],
    }


def _parallel(tmp: Path, target: int, c1_target: int) -> dict[str, Any]:
    home = tmp / "parallel"
    home.mkdir()
    with stand_in("--latency", str(HOSTED_LATENCY_S)) as teacher:
        measured = anyio.run(_measure, teacher, home, target, c1_target)
    figures = measured["figures"]
    keys = (
        "calls_c16",
        "amplify_c16_s",
        "ideal_c16_s",
        "ratio_to_ideal",
        "bare_http_ratio",
        "amplify_c1_s",
        "speedup_vs_c1",
    )
    return {f"parallel_{key}": figures[key] for key in keys}


def _hosted(tmp: Path, target: int) -> dict[str, Any]:
    with stand_in("--latency", str(HOSTED_LATENCY_S)) as teacher:
        plain = anyio.run(default_job, teacher, tmp / "hosted", target)
    with stand_in("--latency", str(HOSTED_LATENCY_S), "--stall-every", str(STALL_EVERY)) as teacher:
        stalled = anyio.run(default_job, teacher, tmp / "stall", target)
    ideal = plain["calls"] * HOSTED_LATENCY_S / DEFAULT_CEILING
    totals = stalled["result"]["teacher"]
    return {
        "hosted_target": target,
        "hosted_calls": plain["calls"],
        "hosted_default_s": round(plain["amplify_s"], 2),
        "hosted_ideal_s": round(ideal, 2),
        "hosted_settled_limit": plain["result"]["teacher_concurrency"]["limit"],
        "hosted_speedup_vs_original": round(ORIGINAL_NANODISTILL_S / plain["amplify_s"], 2),
        "stall_every": STALL_EVERY,
        "stall_amplify_s": round(stalled["amplify_s"], 2),
        "stall_ratio": round(stalled["amplify_s"] / plain["amplify_s"], 3),
        "stall_hedges": totals["hedges"],
        "stall_hedge_wins": totals["hedge_wins"],
        "stall_timeouts": totals["timeouts"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serial-target", type=int, default=60)
    parser.add_argument("--target", type=int, default=300)
    parser.add_argument("--c1-target", type=int, default=60, help="examples for the concurrency-1 run of (b)")
    parser.add_argument("--only", choices=PARTS, help="run one part only")
    args = parser.parse_args()
    parts = [args.only] if args.only else list(PARTS)
    figures: dict[str, Any] = {"default_ceiling": DEFAULT_CEILING}
    with tempfile.TemporaryDirectory(prefix="nd-bench-local-") as tmp:
        if "serial" in parts:
            figures.update(_serial(Path(tmp), args.serial_target))
        if "parallel" in parts:
            figures.update(_parallel(Path(tmp), args.target, args.c1_target))
        if "hosted" in parts:
            figures.update(_hosted(Path(tmp), args.target))
    figures["cpu_count"] = os.cpu_count()
    met = all(_part_met(part, figures) for part in parts)
    print(json.dumps({"benchmark": NAME, "figures": figures, "goals": GOALS, "met": met}))


def _part_met(part: str, figures: dict[str, Any]) -> bool:
    """Whether one part's figures meet its goals."""
    if part == "serial":
        return bool(
            figures["serial_timeouts"] <= GOALS["serial_timeouts_max"]
            and figures["serial_ratio_to_ideal"] <= GOALS["serial_ratio_to_ideal_max"]
        )
    if part == "parallel":
        return bool(
            figures["parallel_ratio_to_ideal"] <= GOALS["parallel_ratio_to_ideal_max"]
            and figures["parallel_speedup_vs_c1"] >= GOALS["parallel_speedup_vs_c1_min"]
        )
    return bool(figures["stall_ratio"] <= GOALS["stall_ratio_max"])


if __name__ == "__main__":
    main()
