"""A training rank on another host, reached over ssh: a real sshd on 127.0.0.1 (tests/sshd.py) behind the
alias `stagehost`, which only the fixture's ssh config knows, named by the operator's NANODISTILL_SSH_CONFIG.

The job stages its inputs there and mlx.launch starts rank 1 through that ssh (the launcher's `ssh`
wrapper adds `-F`), so both halves of reaching a remote host run exactly as they would against a second
machine; the ring connects over 127.0.0.1 on one port per rank.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.mcp_helpers import call, wait_job
from tests.sshd import Sshd, run_sshd
from tests.test_distributed import rank_pids, wait_dead
from tests.test_training_jobs import db_rows, make_dataset, metrics, past, start_training, student

pytestmark = pytest.mark.anyio
__all__ = ["student"]  # the fixture, shared with test_training_jobs

STAGED = re.compile(r"staged (\d+) files? \(([\d.]+) MiB\) to stagehost")
ALREADY_THERE = "staged 0 files (0.0 MiB) to stagehost: all already there"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    yield from run_sshd(tmp_path_factory.mktemp("sshd"))


@pytest.fixture
def remote_dir(sshd: Sshd, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The operator's settings for reaching `stagehost`, set before the server (and its jobs) start."""
    monkeypatch.setenv("NANODISTILL_SSH_CONFIG", str(sshd.config_file))
    monkeypatch.setenv("NANODISTILL_REMOTE_DIR", str(tmp_path / "remote-staged"))
    return tmp_path / "remote-staged"


def logins(sshd: Sshd) -> int:
    """How many ssh logins the server has accepted so far."""
    return (sshd.config_file.parent / "sshd.log").read_text(errors="replace").count("Accepted publickey")


def two_host_file(folder: Path, sshd: Sshd) -> Path:
    """An mlx.launch hostfile: rank 0 here, rank 1 on the sshd's alias, both on 127.0.0.1 for the ring."""
    hostfile = folder / "hosts.json"
    here, there = {"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}, {"ssh": sshd.alias, "ips": ["127.0.0.1"]}
    hostfile.write_text(json.dumps({"hosts": [here, there]}))
    return hostfile


def staged_events(events: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(int(m[1]), e["message"]) for e in events if (m := STAGED.search(e["message"]))]


@pytest.mark.slow
async def test_a_rank_on_another_host_trains_like_one_process(
    remote_dir: Path, client: Client, home: Path, student: Path, sshd: Sshd, tmp_path: Path
) -> None:
    plain = subprocess.run(
        ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", sshd.alias, "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert plain.returncode == 255, f"plain ssh must not reach {sshd.alias}, or the test proves nothing: {plain}"
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(
        json.dumps({"hosts": [{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}, {"ssh": sshd.alias, "ips": ["127.0.0.1"]}]})
    )
    await make_dataset(client)
    one, one_events = await wait_job(client, (await start_training(client, student, iters=20, name="one"))["id"])
    assert one["status"] == "succeeded", one

    before = logins(sshd)
    job = await start_training(client, student, iters=20, name="remote", hosts=str(hostfile))
    remote, events = await wait_job(client, job["id"], timeout=600)
    assert remote["status"] == "succeeded", remote

    # Staging copied the base model's files and the two data files into the operator's remote folder.
    [(copied, message)] = staged_events(events)
    assert copied == len([f for f in student.rglob("*") if f.is_file()]) + 2, message
    [data] = remote_dir.glob("*/data")
    assert sorted(p.name for p in data.iterdir()) == ["train.jsonl", "valid.jsonl"]
    job_data = home / "artifacts" / "jobs" / job["id"] / "data"
    assert (data / "train.jsonl").read_bytes() == (job_data / "train.jsonl").read_bytes()
    [model] = remote_dir.glob(f"*/{student.name}")
    assert (model / "config.json").read_bytes() == (student / "config.json").read_bytes()

    # Rank 1 ran on stagehost, which only the operator's ssh config reaches: staging logs in twice (what is
    # there, then the copy), so a third login is mlx.launch's ssh starting the rank.
    ranks = rank_pids(events)
    assert sorted(ranks) == [0, 1] and len(set(ranks.values())) == 2
    [announced] = [e["data"]["ranks"] for e in events if isinstance((e["data"] or {}).get("ranks"), list)]
    assert [r["host"] for r in announced] == ["127.0.0.1", sshd.alias]
    assert logins(sshd) >= before + 3, (sshd.config_file.parent / "sshd.log").read_text()[-3000:]
    assert wait_dead(list(ranks.values())) == []

    # The two ranks did the work of one process on the same global batch.
    one_val, two_val = metrics(one_events, "val"), metrics(events, "val")
    assert [r["iteration"] for r in two_val] == [r["iteration"] for r in one_val] == [0, 10, 20]
    for a, b in zip(one_val, two_val, strict=True):
        assert abs(b["val_loss"] - a["val_loss"]) <= 0.05 * a["val_loss"], (one_val, two_val)
    assert abs(two_val[-1]["val_loss"] - one_val[-1]["val_loss"]) <= 0.02 * one_val[-1]["val_loss"]
    assert all(r["ranks"] == 2 for r in metrics(events, "train"))

    # The same inputs again: staging finds them all there and copies nothing.
    again = await start_training(client, student, iters=20, name="again", hosts=str(hostfile))
    second, second_events = await wait_job(client, again["id"], timeout=600)
    assert second["status"] == "succeeded", second
    assert [message for _, message in staged_events(second_events)] == [ALREADY_THERE]
    assert [p.parent.name for p in remote_dir.glob("*/data")] == [data.parent.name]


async def test_a_host_only_the_operators_ssh_config_knows_fails_without_it(
    sshd: Sshd, client: Client, student: Path, tmp_path: Path
) -> None:
    hostfile = two_host_file(tmp_path, sshd)
    await make_dataset(client)
    job = await start_training(client, student, iters=20, name="unreached", hosts=str(hostfile))
    failed, _ = await wait_job(client, job["id"])
    assert failed["status"] == "failed", failed
    assert f"cannot reach {sshd.alias} over ssh" in failed["error"], failed["error"]
    assert "NANODISTILL_SSH_CONFIG" in failed["error"], failed["error"]


@pytest.mark.slow
async def test_a_killed_remote_rank_fails_the_job_by_name_and_resume_finishes(
    remote_dir: Path, client: Client, home: Path, student: Path, sshd: Sshd, tmp_path: Path
) -> None:
    await make_dataset(client)
    hostfile = str(two_host_file(tmp_path, sshd))
    job = await start_training(client, student, iters=40, save_every=5, name="cut", hosts=hostfile)
    _, events = await wait_job(client, job["id"], timeout=600, until=past(10))
    pids = rank_pids(events)
    os.kill(pids[1], signal.SIGKILL)

    failed, _ = await wait_job(client, job["id"], timeout=120)
    assert failed["status"] == "failed", failed
    assert f"rank 1 on {sshd.alias} exited with code 255 (its ssh ended" in failed["error"], failed["error"]
    assert "resume_job" in failed["error"]
    assert wait_dead(list(pids.values())) == [], pids

    await call(client, "resume_job", job_id=job["id"])
    done, more = await wait_job(client, job["id"], timeout=600, after=failed["events_cursor"])
    assert done["status"] == "succeeded", done
    assert done["result"]["iterations_done"] == 40 and done["attempts"] == 2
    assert [message for _, message in staged_events(more)] == [ALREADY_THERE]


@pytest.mark.slow
async def test_a_killed_launcher_leaves_no_remote_rank(
    remote_dir: Path, client: Client, home: Path, student: Path, sshd: Sshd, tmp_path: Path
) -> None:
    """Rank 0 sees the launcher gone and every rank stops at the same step, the remote one too."""
    await make_dataset(client)
    hostfile = str(two_host_file(tmp_path, sshd))
    job = await start_training(client, student, iters=300, name="orphaned", hosts=hostfile)
    _, events = await wait_job(client, job["id"], timeout=600, until=past(10))
    pids = rank_pids(events)
    [(launcher,)] = db_rows(home, "SELECT pid FROM jobs WHERE id = ?", (job["id"],))
    os.kill(launcher, signal.SIGKILL)

    interrupted, _ = await wait_job(client, job["id"], timeout=120)
    assert interrupted["status"] == "interrupted", interrupted
    assert wait_dead(list(pids.values())) == [], pids
