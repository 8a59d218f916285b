"""Fuzz soak: every tool of a real `nanodistill-mcp` stdio process, --calls calls in all (default
1,200), arguments drawn from each tool's inputSchema and mutated with hostile values (see
nanodistill.testing.fuzz). Prints the counts (calls, results, readable errors, bad errors, max
latency) and the first bad cases, then one JSON line. Goals: no bad error (a bare "Error executing
tool X", an internal error, an error quoting a huge argument back), every call answered within 5 s,
a ping answered after each tool's batch, `PRAGMA integrity_check` ok. Exits 0 whether or not the
goals are met; non-zero only if the soak itself broke.

    python benchmarks/fuzz.py [--calls 1200] [--seed 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
from pathlib import Path

from nanodistill.testing.fuzz import CALL_TIMEOUT_S, run_fuzz

NAME = "fuzz"
TOOLS_AT_LEAST = 20
GOALS: dict[str, float | str] = {
    "bad_errors": 0,
    "max_latency_s_max": CALL_TIMEOUT_S,
    "pings_min": TOOLS_AT_LEAST,
    "integrity": "ok",
    "calls_min": 1000,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nanodistill-fuzz-") as tmp:
        counts = asyncio.run(run_fuzz(Path(tmp) / "home", -(-args.calls // TOOLS_AT_LEAST), args.seed))
        with sqlite3.connect(Path(tmp) / "home" / "nanodistill.db") as db:
            integrity = str(db.execute("PRAGMA integrity_check").fetchone()[0])
    figures = {
        "calls": counts.calls,
        "results": counts.results,
        "readable_errors": counts.readable_errors,
        "bad_errors": counts.bad_errors,
        "max_latency_s": round(counts.max_latency_s, 3),
        "pings_ok": counts.pings_ok,
        "integrity": integrity,
    }
    for case in counts.bad[:20]:
        print(f"bad: {case}", file=sys.stderr)
    print(
        f"{counts.calls} calls: {counts.results} results, {counts.readable_errors} readable errors, "
        f"{counts.bad_errors} bad errors; slowest answer {counts.max_latency_s:.2f} s; "
        f"{counts.pings_ok} pings answered; integrity {integrity}",
        file=sys.stderr,
    )
    met = (
        counts.bad_errors == 0
        and counts.max_latency_s <= CALL_TIMEOUT_S
        and counts.pings_ok >= TOOLS_AT_LEAST
        and integrity == "ok"
        and counts.calls >= 1000
    )
    print(json.dumps({"benchmark": NAME, "figures": figures, "goals": GOALS, "met": met}))
    sys.exit(0)


if __name__ == "__main__":
    main()
