"""Data-parallel training on two local ranks (mlx.distributed, ring backend on 127.0.0.1), through MCP.

The train job launches its ranks with mlx.launch; these check that two ranks do the work of one process
with the same global batch, that only rank 0 writes, and that cancel, a killed rank and resume behave
as they do for one process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from nanodistill.jobs.process import pid_alive
from nanodistill.testing.toy_sentiment import INSTRUCTION
from nanodistill.testing.toy_sentiment import examples as toy_examples
from tests.mcp_helpers import call, call_error, wait_job
from tests.test_training_jobs import db_rows, job_count, make_dataset, metrics, past, start_training, student

pytestmark = pytest.mark.anyio
__all__ = ["student"]  # the fixture, shared with test_training_jobs

TWO_RANKS = ["127.0.0.1", "127.0.0.1"]


def rank_pids(events: list[dict[str, Any]]) -> dict[int, int]:
    """rank -> pid, from the job's "training on N ranks" event."""
    [announced] = [e["data"]["ranks"] for e in events if isinstance((e["data"] or {}).get("ranks"), list)]
    return {r["rank"]: r["pid"] for r in announced}


def wait_dead(pids: list[int], timeout: float = 60.0) -> list[int]:
    """The pids still alive after waiting up to `timeout` for all of them to end."""
    deadline = time.monotonic() + timeout
    while (alive := [pid for pid in pids if pid_alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


@pytest.mark.slow
async def test_two_ranks_do_the_work_of_one_process(client: Client, home: Path, student: Path) -> None:
    await make_dataset(client)
    single = await start_training(client, student, iters=30, name="one")
    double = await start_training(client, student, iters=30, name="two", hosts=TWO_RANKS)
    one, one_events = await wait_job(client, single["id"])
    two, two_events = await wait_job(client, double["id"], timeout=360)
    assert one["status"] == "succeeded", one
    assert two["status"] == "succeeded", two

    one_train, two_train = metrics(one_events, "train"), metrics(two_events, "train")
    assert [r["iteration"] for r in two_train] == [r["iteration"] for r in one_train] == [10, 20, 30]
    for a, b in zip(one_train, two_train, strict=True):
        assert b["tokens_per_step"] == a["tokens_per_step"] > 0, (a, b)
        assert b["trained_tokens"] == a["trained_tokens"], (a, b)
        assert b["ranks"] == 2 and "ranks" not in a
    one_val, two_val = metrics(one_events, "val"), metrics(two_events, "val")
    assert [r["iteration"] for r in two_val] == [r["iteration"] for r in one_val] == [0, 10, 20, 30]
    for a, b in zip(one_val, two_val, strict=True):
        assert abs(b["val_loss"] - a["val_loss"]) <= 0.05 * a["val_loss"], (one_val, two_val)
    assert abs(two_val[-1]["val_loss"] - one_val[-1]["val_loss"]) <= 0.02 * one_val[-1]["val_loss"]

    # Only rank 0 reported (one event per report) and wrote checkpoints, one folder per save.
    assert len(two_train) == 3 and len(two_val) == 4
    ranks = rank_pids(two_events)
    assert sorted(ranks) == [0, 1] and len(set(ranks.values())) == 2
    checkpoints = home / "artifacts" / "jobs" / double["id"] / "adapter" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir() if p.name.startswith("step-")) == [
        "step-0000020",
        "step-0000030",
    ]
    model = await call(client, "get_model", model="two")
    assert model["metrics"]["iterations_done"] == 30
    assert Path(model["paths"]["adapter"], "adapters.safetensors").is_file()
    assert wait_dead(list(ranks.values())) == []


@pytest.mark.slow
async def test_cancel_stops_every_rank(client: Client, home: Path, student: Path) -> None:
    await make_dataset(client)
    job = await start_training(client, student, iters=300, name="cancelled", hosts=TWO_RANKS)
    _, events = await wait_job(client, job["id"], timeout=240, until=past(10))
    pids = rank_pids(events)
    await call(client, "cancel_job", job_id=job["id"])
    cancelled, _ = await wait_job(client, job["id"])
    assert cancelled["status"] == "cancelled", cancelled
    assert wait_dead(list(pids.values())) == [], pids
    reached = cancelled["result"]["iterations_done"]
    assert 10 < reached < 300
    checkpoints = home / "artifacts" / "jobs" / job["id"] / "adapter" / "checkpoints"
    assert (checkpoints / f"step-{reached:07d}" / "state.json").is_file()


@pytest.mark.slow
async def test_killed_rank_fails_the_job_by_name_and_resume_finishes(client: Client, home: Path, student: Path) -> None:
    await make_dataset(client)
    job = await start_training(client, student, iters=60, save_every=5, name="survivor", hosts=TWO_RANKS)
    _, events = await wait_job(client, job["id"], timeout=240, until=past(10))
    pids = rank_pids(events)
    os.kill(pids[1], signal.SIGKILL)

    failed, _ = await wait_job(client, job["id"], timeout=120)
    assert failed["status"] == "failed", failed
    assert "rank 1 on 127.0.0.1" in failed["error"] and "SIGKILL" in failed["error"], failed["error"]
    assert "resume_job" in failed["error"]
    assert wait_dead(list(pids.values())) == [], pids
    checkpoints = home / "artifacts" / "jobs" / job["id"] / "adapter" / "checkpoints"
    last = int(max(p.name for p in checkpoints.glob("step-*")).removeprefix("step-"))
    assert last >= 10

    await call(client, "resume_job", job_id=job["id"])
    done, more = await wait_job(client, job["id"], timeout=360, after=failed["events_cursor"])
    assert done["status"] == "succeeded", done
    assert min(r["iteration"] for r in metrics(more, "train")) > last
    assert done["result"]["iterations_done"] == 60 and done["attempts"] == 2
    state = json.loads((checkpoints / "step-0000060" / "state.json").read_text())
    assert state["iteration"] == 60


@pytest.mark.slow
async def test_killed_launcher_leaves_no_rank_and_resume_finishes(client: Client, home: Path, student: Path) -> None:
    await make_dataset(client)
    job = await start_training(client, student, iters=60, save_every=5, name="orphaned", hosts=TWO_RANKS)
    _, events = await wait_job(client, job["id"], timeout=240, until=past(10))
    pids = rank_pids(events)
    [(launcher,)] = db_rows(home, "SELECT pid FROM jobs WHERE id = ?", (job["id"],))
    os.kill(launcher, signal.SIGKILL)

    interrupted, _ = await wait_job(client, job["id"], timeout=120)
    assert interrupted["status"] == "interrupted", interrupted
    assert wait_dead(list(pids.values())) == [], pids

    await call(client, "resume_job", job_id=job["id"])
    done, _ = await wait_job(client, job["id"], timeout=360, after=interrupted["events_cursor"])
    assert done["status"] == "succeeded", done
    assert done["result"]["iterations_done"] == 60


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"hosts": TWO_RANKS, "batch_size": 3}, ("batch_size", "multiple of 2")),
        ({"hosts": []}, ("hosts", "empty")),
        ({"hosts": ["127.0.0.1", "mac-2"]}, ("ring backend", "'mac-2'", "IP")),
        ({"hosts": ["10.0.0.9", "127.0.0.1"]}, ("first host", "'10.0.0.9'")),
        ({"hosts": ["127.0.0.1", "10.0.0.9"]}, ("hostfile", "LAN IP")),
        ({"hosts": "no-such-hostfile.json"}, ("hosts",)),
        ({"hosts": TWO_RANKS, "backend": "nccl"}, ("backend",)),
    ],
)
async def test_bad_hosts_start_no_job(
    client: Client, home: Path, student: Path, overrides: dict[str, Any], words: tuple[str, ...]
) -> None:
    await make_dataset(client, n=60)
    arguments = {"dataset": "toy", "base_model": str(student), "iters": 10, "batch_size": 4, **overrides}
    message = await call_error(client, "train_student", **arguments)
    for word in words:
        assert word in message, message
    assert job_count(home) == 0


async def test_distill_checks_hosts_in_its_training(client: Client, home: Path, student: Path) -> None:
    message = await call_error(
        client,
        "distill",
        name="toy",
        seeds=toy_examples(12, seed=1, balanced=True),
        instruction=INSTRUCTION,
        teacher="no-such-provider-model-xyz",
        student=str(student),
        training={"hosts": ["127.0.0.1", "mac-2"], "batch_size": 3},
    )
    assert "'batch_size' (3)" in message and "multiple of 2" in message, message
    assert "ring backend" in message and "'mac-2'" in message, message
    assert job_count(home) == 0


async def test_a_hostfile_is_read_for_the_ranks(client: Client, home: Path, student: Path, tmp_path: Path) -> None:
    await make_dataset(client, n=60)
    hostfile = tmp_path / "hosts.json"
    local = {"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}
    hostfile.write_text(json.dumps({"backend": "ring", "hosts": [local, local, local]}))
    arguments = {"dataset": "toy", "base_model": str(student), "batch_size": 4, "hosts": str(hostfile)}
    message = await call_error(client, "train_student", **arguments)
    assert "'batch_size' (4)" in message and "3 ranks" in message and "multiple of 3" in message, message
    hostfile.write_text(json.dumps({"hosts": [{"name": "no ssh key"}]}))
    message = await call_error(client, "train_student", **arguments)
    assert "not an mlx.launch hostfile" in message and str(hostfile) in message, message
    assert job_count(home) == 0


@pytest.mark.skipif(shutil.which("mpirun") is not None, reason="mpirun is installed here")
async def test_mpi_without_mpirun_starts_no_job(client: Client, home: Path, student: Path) -> None:
    await make_dataset(client, n=60)
    arguments = {"dataset": "toy", "base_model": str(student), "batch_size": 4, "hosts": TWO_RANKS}
    message = await call_error(client, "train_student", **arguments, backend="mpi")
    assert "'backend'" in message and "mpirun" in message, message
    assert job_count(home) == 0
