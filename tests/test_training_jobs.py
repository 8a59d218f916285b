"""train_student, export_model and the model tools end to end through MCP, on the tiny random student.

Training runs as real `train` job processes (fast BLAS preloaded), so these also cover cancel,
resume, kill -9 recovery and the compute slot queueing a second training behind the first.
"""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from nanodistill.testing.tiny_student import build_tiny_student
from nanodistill.testing.toy_sentiment import INSTRUCTION
from nanodistill.testing.toy_sentiment import examples as toy_examples
from tests.mcp_helpers import FAST_TRAINING, call, call_error, read_json, wait_job

pytestmark = pytest.mark.anyio

METRIC_KEYS = {"iteration", "tokens_per_second", "peak_memory_gb", "trained_tokens", "learning_rate"}


@pytest.fixture
def student(tmp_path: Path) -> Path:
    return build_tiny_student(tmp_path / "tiny")


async def make_dataset(client: Client, name: str = "toy", n: int = 70, holdout_fraction: float = 0.1) -> None:
    await call(
        client,
        "create_dataset",
        name=name,
        examples=toy_examples(n),
        instruction=INSTRUCTION,
        holdout_fraction=holdout_fraction,
    )


async def start_training(client: Client, student: Path, **overrides: Any) -> dict[str, Any]:
    arguments = {"dataset": "toy", "base_model": str(student), "iters": 30, **FAST_TRAINING, **overrides}
    job = await call(client, "train_student", **arguments)
    assert job["kind"] == "train" and job["status"] in ("queued", "running")
    return job


def metrics(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["level"] == "metric" and e["data"].get("kind") == kind]


def db_rows(home: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home / "nanodistill.db") as db:
        return db.execute(sql, params).fetchall()


def job_count(home: Path) -> int:
    return int(db_rows(home, "SELECT COUNT(*) FROM jobs")[0][0])


def generate(model_path: str, adapter_path: str | None = None) -> str:
    """Load with mlx_lm (optionally with an adapter) and generate a few tokens, in a fresh process."""
    code = (
        "import sys\n"
        "from mlx_lm import load, generate\n"
        "model, tok = load(sys.argv[1], adapter_path=sys.argv[2] or None)\n"
        "messages = [{'role': 'user', 'content': 'The blender was great.'}]\n"
        "prompt = tok.apply_chat_template(messages, add_generation_prompt=True)\n"
        "print(repr(generate(model, tok, prompt=prompt, max_tokens=8)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, model_path, adapter_path or ""],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


# --- happy path: train, inspect, generate, export, resources, delete -------------------------------


@pytest.mark.slow
async def test_train_register_export_delete(client: Client, home: Path, student: Path) -> None:
    await make_dataset(client)
    job = await start_training(client, student, iters=40, name="toy-student")
    view, events = await wait_job(client, job["id"])
    assert view["status"] == "succeeded", view

    train_reports, val_reports = metrics(events, "train"), metrics(events, "val")
    assert [r["iteration"] for r in val_reports] == [0, 10, 20, 30, 40]
    assert [r["iteration"] for r in train_reports] == [10, 20, 30, 40]
    assert val_reports[-1]["val_loss"] < val_reports[0]["val_loss"] * 0.8, val_reports
    for report in train_reports:
        assert METRIC_KEYS | {"train_loss", "iterations_per_second"} <= set(report)
        assert report["tokens_per_second"] > 0 and report["peak_memory_gb"] > 0 and report["train_loss"] > 0
    assert view["progress"]["done"] == view["progress"]["total"] == 40
    assert view["result"]["model_name"] == "toy-student"

    listed = await call(client, "list_models")
    assert [m["name"] for m in listed["models"]] == ["toy-student"]
    model = await call(client, "get_model", model="toy-student")
    assert model["id"] == view["result"]["model_id"] and model["kind"] == "trained"
    assert model["dataset"] == "toy" and model["job_id"] == job["id"] and model["method"] == "lora"
    assert model["instruction"] == INSTRUCTION
    hyper = model["hyperparameters"]
    assert hyper["iters"] == 40 and hyper["learning_rate"] == 3e-4 and hyper["num_layers"] == -1
    assert hyper["lora_rank"] == 8 and hyper["batch_size"] == 4
    m = model["metrics"]
    assert m["iterations_done"] == 40 and m["trained_tokens"] > 0 and m["wall_s"] > 0
    assert m["best_val_loss"] == min(r["val_loss"] for r in val_reports)
    assert m["tokens_per_second"] > 0
    assert len(m["loss_history"]) == len(train_reports) + len(val_reports)
    adapter = Path(model["paths"]["adapter"])
    assert (adapter / "adapters.safetensors").is_file() and (adapter / "adapter_config.json").is_file()
    assert adapter.resolve().is_relative_to(home.resolve())
    assert Path(model["paths"]["base_model"]) == student.resolve()

    generate(model["paths"]["base_model"], str(adapter))

    jobs_before = job_count(home)
    message = await call_error(client, "train_student", dataset="toy", base_model=str(student), name="toy-student")
    assert "already exists" in message and "toy-student" in message
    assert job_count(home) == jobs_before

    card = await client.read_resource(f"nanodistill://models/{model['id']}/card")
    assert "Not evaluated yet" in card.contents[0].text  # type: ignore[union-attr]
    png = await client.read_resource(f"nanodistill://models/{model['id']}/loss.png")
    blob = png.contents[0]
    assert blob.mime_type == "image/png"
    assert base64.b64decode(blob.blob).startswith(b"\x89PNG\r\n\x1a\n")  # type: ignore[union-attr]
    record = await read_json(client, f"nanodistill://models/{model['id']}")
    assert record["name"] == "toy-student"

    export = await call(client, "export_model", model="toy-student", format="fused")
    assert export["kind"] == "export"
    exported, _ = await wait_job(client, export["id"])
    assert exported["status"] == "succeeded", exported
    fused = Path(exported["result"]["path"])
    assert fused == Path(exported["result"]["fused_path"]) and (fused / "config.json").is_file()
    assert not (fused / "adapter_config.json").exists()
    generate(str(fused))

    deleted = await call(client, "delete_model", model="toy-student")
    assert deleted["deleted"] == model["id"]
    assert not adapter.exists()
    assert student.is_dir()
    message = await call_error(client, "get_model", model="toy-student")
    assert "toy-student" in message
    assert (await call(client, "list_models"))["models"] == []


# --- cancel, kill -9, resume ------------------------------------------------------------------------


def past(iteration: int) -> Any:
    """A wait_job `until`: a metric event beyond `iteration` has arrived."""
    return lambda view, events: any(
        r["iteration"] > iteration for r in metrics(events, "train") + metrics(events, "val")
    )


@pytest.mark.slow
async def test_cancel_then_resume_continues_from_checkpoint(client: Client, home: Path, student: Path) -> None:
    await make_dataset(client)
    job = await start_training(client, student, iters=200, name="resumed")
    await wait_job(client, job["id"], until=past(10))
    await call(client, "cancel_job", job_id=job["id"])
    cancelled, events = await wait_job(client, job["id"])
    assert cancelled["status"] == "cancelled", cancelled
    reached = cancelled["result"]["iterations_done"]
    assert 10 < reached < 200
    checkpoints = home / "artifacts" / "jobs" / job["id"] / "adapter" / "checkpoints"
    assert (checkpoints / f"step-{reached:07d}" / "state.json").is_file()
    assert (await call(client, "list_models"))["models"] == []

    resumed = await call(client, "resume_job", job_id=job["id"])
    assert resumed["id"] == job["id"] and resumed["status"] in ("queued", "running")
    done, more = await wait_job(client, job["id"], timeout=240, after=cancelled["events_cursor"])
    assert done["status"] == "succeeded", done
    new_train = [r["iteration"] for r in metrics(more, "train")]
    assert new_train and min(new_train) > reached, (reached, new_train)
    assert done["attempts"] == 2 and done["result"]["iterations_done"] == 200
    model = await call(client, "get_model", model="resumed")
    assert model["metrics"]["iterations_done"] == 200
    vals = [r["val_loss"] for r in metrics(events + more, "val")]
    assert vals[-1] < vals[0]


@pytest.mark.slow
async def test_killed_job_is_interrupted_then_resumes(client: Client, home: Path, student: Path) -> None:
    await make_dataset(client)
    job = await start_training(client, student, iters=200, save_every=5)
    await wait_job(client, job["id"], until=past(10))
    [(pid,)] = db_rows(home, "SELECT pid FROM jobs WHERE id = ?", (job["id"],))
    os.kill(pid, signal.SIGKILL)
    checkpoints = home / "artifacts" / "jobs" / job["id"] / "adapter" / "checkpoints"

    interrupted, _ = await wait_job(client, job["id"], timeout=60)
    cursor = interrupted["events_cursor"]
    assert interrupted["status"] == "interrupted", interrupted
    saved = sorted(p.name for p in checkpoints.glob("step-*"))
    assert saved, "no checkpoint survived the kill"
    last = int(saved[-1].removeprefix("step-"))
    assert last >= 10

    await call(client, "resume_job", job_id=job["id"])
    done, events = await wait_job(client, job["id"], timeout=240, after=cursor)
    assert done["status"] == "succeeded", done
    started = [e for e in events if e["message"].startswith("train job started")]
    assert started and "attempt 2" in started[-1]["message"]
    first_train = metrics(events, "train")[0]["iteration"]
    assert last < first_train <= last + 10, (last, first_train)
    assert done["result"]["iterations_done"] == 200 and done["result"]["model_name"]


# --- the compute slot -------------------------------------------------------------------------------


@pytest.mark.slow
async def test_two_trainings_run_one_after_the_other(client: Client, home: Path, student: Path) -> None:
    await make_dataset(client)
    first = await start_training(client, student, iters=150, name="first")
    await wait_job(client, first["id"], until=lambda view, events: view["status"] == "running")
    second = await start_training(client, student, iters=20, name="second")

    waiting, _ = await wait_job(
        client, second["id"], timeout=30, until=lambda view, events: view["stage"] == "waiting for compute slot"
    )
    assert waiting["status"] == "queued" and waiting["started_at"] is None
    running = await call(client, "get_job", job_id=first["id"])
    assert running["status"] == "running"

    a, _ = await wait_job(client, first["id"])
    b, _ = await wait_job(client, second["id"])
    assert a["status"] == b["status"] == "succeeded"
    assert a["started_at"] < a["finished_at"] <= b["started_at"] < b["finished_at"]


# --- bad input: refused before any job exists, or a readable job error ------------------------------


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"iters": 0}, ("iters",)),
        ({"batch_size": 0}, ("batch_size",)),
        ({"lora_rank": 0}, ("lora_rank",)),
        ({"learning_rate": 0}, ("learning_rate",)),
        ({"learning_rate": 2}, ("learning_rate",)),
        ({"val_fraction": 0}, ("val_fraction",)),
        ({"val_fraction": 0.9}, ("val_fraction",)),
        ({"epochs": 0, "iters": None}, ("epochs",)),
        ({"method": "qlora"}, ("method",)),
        ({"val_fraction": 0.05, "batch_size": 8}, ("val_fraction", "validation", "batch_size=8")),
        ({"dataset": "missing"}, ("missing", "list_datasets")),
    ],
)
async def test_bad_arguments_start_no_job(
    client: Client, home: Path, student: Path, overrides: dict[str, Any], words: tuple[str, ...]
) -> None:
    await make_dataset(client, n=60, holdout_fraction=0.0)
    arguments = {"dataset": "toy", "base_model": str(student), "iters": 10, **FAST_TRAINING, **overrides}
    message = await call_error(client, "train_student", **arguments)
    for word in words:
        assert word in message, message
    assert job_count(home) == 0


async def test_too_small_dataset_starts_no_job(client: Client, home: Path, student: Path) -> None:
    await make_dataset(client, n=10, holdout_fraction=0.0)
    message = await call_error(
        client, "train_student", dataset="toy", base_model=str(student), val_fraction=0.5, batch_size=4
    )
    assert "two batches" in message and "batch_size=4" in message
    assert job_count(home) == 0


async def test_bad_base_models_start_no_job(client: Client, home: Path, tmp_path: Path) -> None:
    await make_dataset(client, n=60)
    missing = tmp_path / "no-such-model"
    message = await call_error(client, "train_student", dataset="toy", base_model=str(missing))
    assert "does not exist" in message and str(missing) in message
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    message = await call_error(client, "train_student", dataset="toy", base_model=str(empty))
    assert "config.json" in message and str(empty) in message
    assert job_count(home) == 0


async def test_unreachable_hub_model_fails_with_a_readable_error(
    client: Client, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the job process inherits it: no test reaches the network
    await make_dataset(client, n=60)
    hub_id = "nonexistent-org/nonexistent-model-xyz"
    job = await call(client, "train_student", dataset="toy", base_model=hub_id, iters=10)
    failed, _ = await wait_job(client, job["id"], timeout=120)
    assert failed["status"] == "failed", failed
    error = failed["error"]
    assert hub_id in error and "base_model" in error and "download" in error, error
    assert "Traceback" not in error and "internal error" not in error, error
    assert (await call(client, "list_models"))["models"] == []
