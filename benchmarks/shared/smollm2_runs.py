"""What the SmolLM2 benchmarks share (free_text, improve_round): a fresh temporary home, demo-style
fast LoRA settings, and following a job through the MCP tools until it ends. Not a benchmark itself."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def training(iters: int) -> dict[str, Any]:
    """demo.py's fast LoRA settings for SmolLM2 on this CPU."""
    return {
        "iters": iters,
        "batch_size": 8,
        "learning_rate": 2e-4,
        "num_layers": 8,
        "reasoning": "none",
        "steps_per_eval": 20,
        "save_every": 20,
        "max_seq_length": 128,
        "seed": 0,
    }


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def finished(client: Any, job_id: str, what: str) -> dict[str, Any]:
    """The job's final view; a job that did not succeed ends the benchmark."""
    from server.client import follow

    done = await follow(client, job_id, quiet=True)
    if done["status"] != "succeeded":
        raise SystemExit(f"{what} job {job_id} ended {done['status']}: {done['error']}")
    return done


@contextmanager
def temporary_home(prefix: str) -> Iterator[Path]:
    """NANODISTILL_HOME in a fresh temporary folder, whose files may be imported."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.environ["NANODISTILL_HOME"] = str(Path(tmp) / "home")
        os.environ["NANODISTILL_IMPORT_ROOTS"] = tmp
        yield Path(tmp)
