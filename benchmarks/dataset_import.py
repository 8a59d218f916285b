"""Dataset import at the per-call limit: 100,000 JSONL rows of ~200 bytes through `create_dataset`.

The import runs in a fresh worker process, through an in-memory MCP client against a temporary
NANODISTILL_HOME, exactly as a host's tool call would. Figures:

- `import_s`: wall time of the `create_dataset(path=...)` call (stream, validate, hash, insert, commit).
- `baseline_insert_s`: the same rows read with the stdlib and inserted with one plain `sqlite3`
  `executemany` into a fresh table (WAL, one transaction), in the same run;
  `import_time_ratio` = import_s / baseline_insert_s (a figure, no goal).
- `import_peak_rss_mb`: the import's own memory: peak RSS during the call minus the worker's RSS
  just before it (Linux: the peak is reset through /proc/self/clear_refs first; elsewhere
  ru_maxrss, which can only overstate the cost).
- `get_dataset_median_ms`: median of 20 `get_dataset` calls on the 100,000-row dataset.

Goals: get_dataset under 100 ms, import peak memory under 300 MB. Prints one JSON line last and
exits 0 whether or not the goals are met.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "dataset_import"
ROWS = 100_000
ROW_BYTES = 200
GET_CALLS = 20
GOALS = {"get_dataset_median_ms": 100.0, "import_peak_rss_mb": 300.0}

WORKER = r"""
import json, os, resource, statistics, sys, time
import anyio
from mcp import Client
from server.app import build_server

def rss_kb(field):
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False

def max_rss_kb():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak

async def main(path):
    async with Client(build_server()) as client:
        await client.list_tools()
        before = rss_kb("VmRSS")
        exact = reset_peak() and before is not None and rss_kb("VmHWM") is not None
        if not exact:
            before = max_rss_kb()
        start = time.perf_counter()
        result = await client.call_tool("create_dataset", {"name": "bench", "path": path, "holdout_fraction": 0.0})
        import_s = time.perf_counter() - start
        peak = rss_kb("VmHWM") if exact else max_rss_kb()
        assert not result.is_error, result.content
        added = result.structured_content["added"]
        times = []
        for _ in range(GET_CALLS):
            start = time.perf_counter()
            detail = await client.call_tool("get_dataset", {"dataset": "bench"})
            times.append(time.perf_counter() - start)
            assert not detail.is_error, detail.content
        examples = detail.structured_content["dataset"]["examples"]
    print(json.dumps({
        "added": added, "examples": examples, "import_s": import_s,
        "rss_before_mb": before / 1024, "rss_peak_mb": peak / 1024, "peak_exact": exact,
        "get_dataset_median_ms": statistics.median(times) * 1000, "get_dataset_max_ms": max(times) * 1000,
    }))

GET_CALLS = int(sys.argv[2])
anyio.run(main, sys.argv[1])
"""

VOCABULARY = (
    "the a service order refund late shipping broken screen battery charge account password reset invoice "
    "payment card declined support agent replied quickly slowly great terrible fine product quality box "
    "arrived damaged missing item size colour return label warranty repair store online app crash login"
)


def make_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Distinct rows whose JSONL lines are about ROW_BYTES long."""
    rng = random.Random(seed)
    words = VOCABULARY.split()
    rows = []
    for i in range(n):
        text = f"#{i} " + " ".join(rng.choice(words) for _ in range(22))
        rows.append({"input": text[:169], "output": rng.choice(["positive", "negative", "neutral"]) + f" {i % 97}"})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def baseline_insert(jsonl: Path, db_path: Path) -> float:
    """Read the same file with the stdlib and executemany it into a fresh table: the floor to compare to."""
    start = time.perf_counter()
    con = sqlite3.connect(db_path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute("CREATE TABLE examples (id INTEGER PRIMARY KEY, input TEXT NOT NULL, output TEXT NOT NULL)")
    with jsonl.open(encoding="utf-8") as handle:
        rows = [(r["input"], r["output"]) for r in map(json.loads, handle)]
    con.execute("BEGIN")
    con.executemany("INSERT INTO examples (input, output) VALUES (?, ?)", rows)
    con.execute("COMMIT")
    con.close()
    return time.perf_counter() - start


def run_worker(jsonl: Path, home: Path) -> dict[str, float]:
    env = {**os.environ, "NANODISTILL_HOME": str(home), "NANODISTILL_IMPORT_ROOTS": str(jsonl.parent)}
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, str(jsonl), str(GET_CALLS)],
        env=env,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"import worker failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    figures: dict[str, float | int | bool] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="nanodistill-bench-") as tmp:
            folder = Path(tmp)
            jsonl = folder / "rows.jsonl"
            write_jsonl(jsonl, make_rows(ROWS))
            figures["rows"] = ROWS
            figures["file_mb"] = round(jsonl.stat().st_size / 2**20, 2)
            figures["mean_row_bytes"] = round(jsonl.stat().st_size / ROWS, 1)
            figures["baseline_insert_s"] = round(baseline_insert(jsonl, folder / "baseline.db"), 3)
            worker = run_worker(jsonl, folder / "home")
    except Exception as exc:
        print(f"{NAME}: {exc}", file=sys.stderr)
        figures["error"] = True
        print(json.dumps({"benchmark": NAME, "figures": figures, "goals": GOALS, "met": False}))
        return 0
    figures.update(
        imported_rows=int(worker["added"]),
        import_s=round(worker["import_s"], 3),
        import_rows_per_s=round(ROWS / worker["import_s"]),
        import_time_ratio=round(worker["import_s"] / figures["baseline_insert_s"], 2),
        import_peak_rss_mb=round(worker["rss_peak_mb"] - worker["rss_before_mb"], 1),
        worker_rss_before_mb=round(worker["rss_before_mb"], 1),
        peak_rss_exact=bool(worker["peak_exact"]),
        get_dataset_median_ms=round(worker["get_dataset_median_ms"], 2),
        get_dataset_max_ms=round(worker["get_dataset_max_ms"], 2),
    )
    met = (
        figures["imported_rows"] == ROWS
        and figures["get_dataset_median_ms"] < GOALS["get_dataset_median_ms"]
        and figures["import_peak_rss_mb"] < GOALS["import_peak_rss_mb"]
    )
    print(json.dumps({"benchmark": NAME, "figures": figures, "goals": GOALS, "met": met}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
