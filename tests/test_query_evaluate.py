"""query_student and evaluate_student through MCP, on tiny random students trained by real jobs.

One module-wide home holds two trained students (built once, ~1 min on 2 cores):
- `toy-lora`: the toy sentiment task, 20% of the seeds held out, one training row planted as a
  near-duplicate of a held-out input (the leakage check must drop it);
- `thinker`: a small dataset with no held-out seeds, trained with reasoning="full".
Every test gets its own server (and so a cold model cache) over that home.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel

import nanodistill.student.cache as student_cache
from nanodistill.testing.tiny_student import build_tiny_student
from nanodistill.testing.toy_sentiment import INSTRUCTION
from nanodistill.testing.toy_sentiment import examples as toy_examples
from server.app import build_server
from tests.mcp_helpers import call, call_error, wait_job
from tools._common import runtime

pytestmark = pytest.mark.anyio

TRAIN: dict[str, Any] = {
    "iters": 30,
    "num_layers": -1,
    "learning_rate": 3e-4,
    "batch_size": 4,
    "max_seq_length": 128,
    "steps_per_eval": 30,
    "save_every": 30,
}
LABELS = ("positive", "negative")


@dataclass(frozen=True)
class World:
    root: Path
    home: Path
    tiny: Path
    lora: dict[str, Any]
    thinker: dict[str, Any]
    planted: str
    holdout_inputs: tuple[str, ...]


def near_duplicate(text: str) -> str:
    """The same sentence, shouted and punctuated differently: the leakage check must still see it."""
    return text.upper().rstrip(".") + "!!"


async def read_text(client: Client, uri: str) -> str:
    result = await client.read_resource(uri)
    text: str = result.contents[0].text  # type: ignore[union-attr]
    return text


async def _build_world(root: Path, home: Path, tiny: Path) -> World:
    async with Client(build_server()) as client:
        await call(
            client,
            "create_dataset",
            name="toy",
            examples=toy_examples(70, seed=1),
            instruction=INSTRUCTION,
            holdout_fraction=0.2,
        )
        page = json.loads(await read_text(client, "nanodistill://datasets/toy/examples?offset=0&limit=100"))
        holdout = [e for e in page["examples"] if e["split"] == "holdout"]
        assert len(holdout) == 14
        planted = near_duplicate(holdout[0]["input"])
        added = await call(
            client, "add_examples", dataset="toy", examples=[{"input": planted, "output": holdout[0]["output"]}]
        )
        assert added["added"] == 1
        await call(
            client,
            "create_dataset",
            name="thoughts",
            examples=toy_examples(24, seed=2, reasoning=True),
            instruction=INSTRUCTION,
            holdout_fraction=0,
        )
        jobs = [
            await call(
                client, "train_student", dataset="toy", base_model=str(tiny), name="toy-lora", reasoning="none", **TRAIN
            ),
            await call(
                client,
                "train_student",
                dataset="thoughts",
                base_model=str(tiny),
                name="thinker",
                reasoning="full",
                val_fraction=0.2,
                **TRAIN,
            ),
        ]
        for job in jobs:
            done, _ = await wait_job(client, job["id"])
            assert done["status"] == "succeeded", done
        lora = await call(client, "get_model", model="toy-lora")
        thinker = await call(client, "get_model", model="thinker")
    return World(root, home, tiny, lora, thinker, planted, tuple(e["input"] for e in holdout))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("tiny-student") / "tiny")


def allowed(*folders: Path) -> str:
    """NANODISTILL_IMPORT_ROOTS for `folders`: the module's tiny student lives outside each test's own."""
    return os.pathsep.join(str(folder) for folder in folders)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, blas_cache: Path, tiny: Path) -> Iterator[World]:
    """The module's home with both students trained (see the module docstring)."""
    root = tmp_path_factory.mktemp("query-evaluate")
    home = root / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NANODISTILL_HOME", str(home))
        patch.setenv("NANODISTILL_BLAS_CACHE", str(blas_cache))
        patch.setenv("NANODISTILL_IMPORT_ROOTS", allowed(root, tiny.parent))
        yield anyio.run(_build_world, root, home, tiny)


class CacheState(BaseModel):
    loads: int
    keys: list[tuple[str, str | None]]


def probed_server() -> MCPServer:
    """The real server plus one test-only tool that reads the runtime's model cache."""
    app = build_server()

    async def model_cache_state(ctx: Context) -> CacheState:
        cache = runtime(ctx).models
        return CacheState(loads=cache.loads, keys=cache.keys())

    app.add_tool(model_cache_state)
    return app


@pytest.fixture
async def probed(home: Path, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Client]:
    """A fresh home (conftest's) and a server with the cache probe: for tests on the untrained base."""
    monkeypatch.setenv("NANODISTILL_IMPORT_ROOTS", allowed(tmp_path, tiny.parent))
    async with Client(probed_server()) as connected:
        yield connected


@pytest.fixture
async def trained(world: World, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Client]:
    """A fresh server (cold model cache, with the cache probe) over the module's trained home."""
    monkeypatch.setenv("NANODISTILL_HOME", str(world.home))
    monkeypatch.setenv("NANODISTILL_IMPORT_ROOTS", allowed(world.root, world.tiny.parent))
    async with Client(probed_server()) as connected:
        yield connected


async def cache_state(client: Client) -> CacheState:
    return CacheState.model_validate(await call(client, "model_cache_state"))


def stored_report(world: World, model_id: str) -> dict[str, Any]:
    """The model record's full report (per-example rows included), as the evaluate job stored it."""
    with sqlite3.connect(world.home / "nanodistill.db") as db:
        row = db.execute("SELECT report FROM models WHERE id = ?", (model_id,)).fetchone()
    assert row is not None and row[0], f"model {model_id} has no report"
    report: dict[str, Any] = json.loads(row[0])
    return report


def norm_label(text: str) -> str:
    """The card's label normalisation, restated: case, runs of whitespace, surrounding quotes and a
    final period never decide a match."""
    return " ".join(text.casefold().split()).strip(" .\"'`")


# --- querying: before and after training, batches, reasoning ---------------------------------------


@pytest.mark.slow
async def test_query_base_before_and_trained_student_after(trained: Client, world: World) -> None:
    prompt = "We thought the sofa was really wonderful during our trip."
    before = await call(trained, "query_student", model=str(world.tiny), prompt=prompt, max_tokens=8)
    base = str(world.tiny.resolve())
    assert (before["model"], before["base_model"], before["adapter"]) == (str(world.tiny), base, None)
    [b] = before["answers"]
    assert b["prompt_index"] == 0 and b["tokens_generated"] == 8 and b["reasoning"] is None

    after = await call(trained, "query_student", model="toy-lora", prompt=prompt, max_tokens=8)
    adapter = world.lora["paths"]["adapter"]
    assert (after["model"], after["base_model"], after["adapter"]) == ("toy-lora", base, adapter)
    [a] = after["answers"]
    assert 1 <= a["tokens_generated"] <= 8 and a["answer"]
    assert a["answer"] != b["answer"], "the trained adapter should change what the base answers"
    # Two separate loads: the base alone, then the base with the adapter.
    state = await cache_state(trained)
    assert state.loads == 2
    assert sorted(state.keys, key=str) == sorted([(base, None), (base, adapter)], key=str)
    # The model id names the same student: warm now.
    by_id = await call(trained, "query_student", model=world.lora["id"], prompt=prompt, max_tokens=8)
    assert by_id["already_loaded"] and by_id["answers"][0]["answer"] == a["answer"]
    assert (await cache_state(trained)).loads == 2


async def test_batch_answers_come_back_in_prompt_order(probed: Client, tiny: Path) -> None:
    # Prompts on which the random base says different things, so a reordering would show.
    prompts = ["a b", "yes", "Alice", "The answer is", "no", "hi"]
    batch = await call(probed, "query_student", model=str(tiny), prompts=prompts, max_tokens=6)
    assert [a["prompt_index"] for a in batch["answers"]] == list(range(6))
    singles = []
    for prompt in prompts:
        [one] = (await call(probed, "query_student", model=str(tiny), prompt=prompt, max_tokens=6))["answers"]
        singles.append(one["answer"])
    assert len(set(singles)) >= 3, f"pick prompts whose answers differ, or the order check proves nothing: {singles}"
    assert [a["answer"] for a in batch["answers"]] == singles
    for answer in batch["answers"]:
        assert answer["tokens_generated"] == 6 and answer["reasoning"] is None
        assert answer["elapsed_s"] > 0 and answer["tokens_per_s"] > 0
    assert (await cache_state(probed)).loads == 1


@pytest.mark.slow
async def test_show_reasoning_false_hides_the_reasoning(trained: Client) -> None:
    prompt = "Honestly, the printer turned out absolutely flawless."
    shown = await call(trained, "query_student", model="thinker", prompt=prompt, max_tokens=48, show_reasoning=True)
    hidden = await call(trained, "query_student", model="thinker", prompt=prompt, max_tokens=48)
    [s], [h] = shown["answers"], hidden["answers"]
    assert s["reasoning"], f"the reasoning-trained student should think first: {s}"
    assert h["reasoning"] is None
    assert h["answer"] == s["answer"]
    assert "<think>" not in h["answer"] and "</think>" not in h["answer"]
    assert s["reasoning"] not in h["answer"]


# --- the model cache ---------------------------------------------------------------------------------


async def test_second_query_is_served_warm_from_the_cache(probed: Client, tiny: Path) -> None:
    assert (await cache_state(probed)).loads == 0
    first = await call(probed, "query_student", model=str(tiny), prompt="Hello there", max_tokens=4)
    assert not first["already_loaded"] and first["load_s"] > 0
    assert (await cache_state(probed)).loads == 1
    second = await call(probed, "query_student", model=str(tiny), prompt="Hello again", max_tokens=4)
    assert second["already_loaded"]
    # Same loaded object: it reports the load time of the one load, and nothing was loaded again.
    assert second["load_s"] == first["load_s"]
    assert (await cache_state(probed)).loads == 1
    # A batch on the warm model does not load it either.
    third = await call(probed, "query_student", model=str(tiny), prompts=["a b", "c d"], max_tokens=2)
    assert third["already_loaded"] and (await cache_state(probed)).loads == 1


async def test_concurrent_cold_queries_share_one_load(probed: Client, tiny: Path) -> None:
    results: list[dict[str, Any]] = []

    async def ask(prompt: str) -> None:
        results.append(await call(probed, "query_student", model=str(tiny), prompt=prompt, max_tokens=2))

    async with anyio.create_task_group() as tg:
        for prompt in ("one", "two", "three"):
            tg.start_soon(ask, prompt)
    assert len(results) == 3
    assert (await cache_state(probed)).loads == 1
    assert len({r["load_s"] for r in results}) == 1


async def test_least_recently_used_model_is_evicted(
    home: Path, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = build_tiny_student(tmp_path / "other", seed=1)
    monkeypatch.setenv("NANODISTILL_MODEL_CACHE", "1")
    monkeypatch.setenv("NANODISTILL_IMPORT_ROOTS", allowed(tmp_path, tiny.parent))
    async with Client(probed_server()) as client:
        for model, warm, loads in ((tiny, False, 1), (tiny, True, 1), (other, False, 2), (tiny, False, 3)):
            result = await call(client, "query_student", model=str(model), prompt="hi", max_tokens=1)
            assert result["already_loaded"] is warm
            state = await cache_state(client)
            assert state.loads == loads and state.keys == [(str(model.resolve()), None)]


# --- a responsive server during a long generation ----------------------------------------------------


async def test_server_answers_other_calls_while_a_long_generation_runs(
    probed: Client, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await call(probed, "create_dataset", name="other", examples=toy_examples(3, seed=5))
    # Warm the model first so the long call below spends its time generating, not loading.
    await call(probed, "query_student", model=str(tiny), prompt="warm up", max_tokens=1)
    generating = threading.Event()
    original = student_cache.generate_answers

    def watched(*args: Any, **kwargs: Any) -> Any:
        generating.set()
        return original(*args, **kwargs)

    monkeypatch.setattr(student_cache, "generate_answers", watched)
    finished: list[str] = []
    long: dict[str, Any] = {}

    async def long_query() -> None:
        # The base model never emits its stop token on this prompt: all 2000 tokens are generated.
        long.update(await call(probed, "query_student", model=str(tiny), prompt="Hello there", max_tokens=2000))
        finished.append("query_student")

    async with anyio.create_task_group() as tg:
        tg.start_soon(long_query)
        with anyio.fail_after(60):
            while not generating.is_set():
                await anyio.sleep(0.005)
        for i in range(5):
            listed = await call(probed, "list_datasets")
            assert [d["name"] for d in listed["datasets"]] == ["other"]
            finished.append(f"list_datasets {i}")
        assert "nope" in await call_error(probed, "get_job", job_id="nope")
        finished.append("get_job")
    assert finished == [*(f"list_datasets {i}" for i in range(5)), "get_job", "query_student"]
    assert long["answers"][0]["tokens_generated"] == 2000


# --- the report card ---------------------------------------------------------------------------------


def score_row(card: str, source: str) -> list[str]:
    """The cells of `source`'s row in the card's Scores table."""
    for line in card.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == source:
            return cells
    raise AssertionError(f"no row for {source!r} in the card:\n{card}")


@pytest.mark.slow
async def test_report_card_scores_match_a_hand_computed_accuracy(trained: Client, world: World) -> None:
    test_rows = toy_examples(8, seed=3)
    gold = {row["input"]: row["output"] for row in test_rows}
    assert not set(gold) & set(world.holdout_inputs)
    await call(
        trained, "create_dataset", name="toy-test", examples=test_rows, instruction=INSTRUCTION, holdout_fraction=0
    )
    job = await call(
        trained, "evaluate_student", model="toy-lora", test_dataset="toy-test", metric="label", max_tokens=8
    )
    assert job["kind"] == "evaluate" and job["next_poll_s"] is not None
    done, _ = await wait_job(trained, job["id"])
    assert done["status"] == "succeeded", done

    report = stored_report(world, world.lora["id"])
    main, holdout = report["sources"]
    assert (main["name"], main["size"], main["leaked"], main["metric"]) == ("test set toy-test", 8, 0, "label")
    rows = main["examples"]
    assert sorted(e["input"] for e in rows) == sorted(gold)
    assert all(e["gold"] == gold[e["input"]] for e in rows)
    hits = [float(norm_label(e["student"]) == norm_label(gold[e["input"]])) for e in rows]
    base_hits = [float(norm_label(e["base"]) == norm_label(gold[e["input"]])) for e in rows]
    assert [e["student_score"] for e in rows] == hits
    assert [e["base_score"] for e in rows] == base_hits
    accuracy, base_accuracy = sum(hits) / 8, sum(base_hits) / 8
    assert main["student"]["mean"] == accuracy
    assert main["base"]["mean"] == base_accuracy
    assert main["labels"]["accuracy"] == accuracy
    assert main["difference"]["mean"] == pytest.approx(accuracy - base_accuracy)
    assert main["student"]["low"] <= accuracy <= main["student"]["high"]

    # The planted training row was left out of training, so its held-out twin was never trained on
    # and stays in the evaluation: no held-out seed is thrown away as leaked.
    assert holdout["name"] == "holdout seeds"
    assert (holdout["size"], holdout["leaked"]) == (14, 0)
    assert report["leakage_dropped"] == 0

    # The job result, the model's card summary and the Markdown card all carry the same numbers.
    assert done["result"]["student_score"] == accuracy and done["result"]["n_test"] == 8
    summary = (await call(trained, "get_model", model="toy-lora"))["report_card"]
    assert summary["ready"] == report["ready"] and summary["verdict"] == report["verdict"]
    assert summary["sources"][0]["name"] == "test set toy-test"
    assert summary["sources"][0]["student"]["mean"] == accuracy
    assert summary["sources"][0]["base"]["mean"] == base_accuracy
    card = await read_text(trained, f"nanodistill://models/{world.lora['id']}/card")
    assert card.startswith("# toy-lora\n")
    cells = score_row(card, "test set toy-test")
    assert cells[1:3] == ["8", "label"]
    assert cells[4].startswith(f"{accuracy:.3f} [") and cells[3].startswith(f"{base_accuracy:.3f} [")
    assert f"Accuracy {accuracy:.3f}." in card
    # With 8 examples the best and worst tables show every row: recount from the Markdown alone.
    shown = re.findall(r"^\| (\d+) \| (.*?) \| (\w+) \| (.*?) \| ([01]\.000) \|", card, flags=re.M)
    test_rows_shown = {int(i): (g, s, float(sc)) for i, _, g, s, sc in shown[:8]}
    assert len(test_rows_shown) == 8
    assert sum(float(norm_label(s) == norm_label(g)) for g, s, _ in test_rows_shown.values()) / 8 == accuracy


# --- the leakage check ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_leakage_check_drops_the_planted_near_duplicate(trained: Client, world: World) -> None:
    data = world.lora["metrics"]["data"]
    assert data["leaked_dropped"] >= 1
    assert data["held_out_inputs"] == 14
    # 56 seeds for training plus the planted one; whatever was dropped is not trained on.
    assert data["n_train"] + data["n_valid"] == 57 - data["leaked_dropped"]
    job = await call(trained, "get_job", job_id=world.lora["job_id"])
    warnings = [e for e in job["events"] if e["level"] == "warning" and "leakage check" in e["message"]]
    assert warnings and warnings[0]["data"]["leaked"] == data["leaked_dropped"]
    chat_files = list((world.home / "artifacts").rglob("*.jsonl"))
    trained_on = "\n".join(
        p.read_text() for p in chat_files if p.parent.name == "data" and world.lora["job_id"] in str(p)
    )
    assert trained_on, f"no training data files found among {chat_files}"
    assert world.planted not in trained_on
    # A dataset with nothing held out has nothing to leak into.
    assert world.thinker["metrics"]["data"]["leaked_dropped"] == 0


# --- bad input ----------------------------------------------------------------------------------------


async def test_query_rejects_bad_arguments(probed: Client, tiny: Path) -> None:
    model = str(tiny)
    message = await call_error(probed, "query_student", model="no-such-model", prompt="hi")
    assert "no-such-model" in message and "does not exist" in message
    both = await call_error(probed, "query_student", model=model, prompt="hi", prompts=["hi"])
    neither = await call_error(probed, "query_student", model=model)
    for message in (both, neither):
        assert "exactly one of 'prompt'" in message
    assert "empty" in await call_error(probed, "query_student", model=model, prompts=[])
    assert "non-empty string" in await call_error(probed, "query_student", model=model, prompts=["ok", "  "])
    message = await call_error(probed, "query_student", model=model, prompts=["x"] * 65)
    assert "65 prompts" in message and "64" in message
    for bad in (0, 5000):
        message = await call_error(probed, "query_student", model=model, prompt="hi", max_tokens=bad)
        assert "'max_tokens' must be between 1 and 4096" in message and str(bad) in message
    assert "'temperature'" in await call_error(probed, "query_student", model=model, prompt="hi", temperature=3)
    # Nothing above got as far as loading the model.
    assert (await cache_state(probed)).loads == 0
    # 64 prompts is the limit, not over it.
    full = await call(probed, "query_student", model=model, prompts=[f"p{i}" for i in range(64)], max_tokens=1)
    assert [a["prompt_index"] for a in full["answers"]] == list(range(64))


async def test_query_refuses_a_prompt_longer_than_the_context(probed: Client, tiny: Path) -> None:
    context = json.loads((tiny / "config.json").read_text())["max_position_embeddings"]
    long_prompt = " ".join(["wonderful"] * context)
    message = await call_error(probed, "query_student", model=str(tiny), prompts=["short", long_prompt])
    assert "prompts[1]" in message and f"context is {context} tokens" in message and "shorten" in message
    # The server is fine afterwards.
    ok = await call(probed, "query_student", model=str(tiny), prompt="short", max_tokens=1)
    assert ok["already_loaded"]


async def test_evaluate_rejects_unknown_models(probed: Client, tiny: Path) -> None:
    message = await call_error(probed, "evaluate_student", model="no-such-model")
    assert "no model 'no-such-model'" in message and "list_models" in message
    message = await call_error(probed, "evaluate_student", model=str(tiny))
    assert "no model" in message
    jobs = await call(probed, "list_jobs")
    assert jobs["jobs"] == []


@pytest.mark.slow
async def test_evaluate_rejects_bad_input_on_trained_models(trained: Client, world: World) -> None:
    message = await call_error(trained, "evaluate_student", model="toy-lora", test_dataset="no-such-set")
    assert "no-such-set" in message
    # `thinker`'s dataset has no held-out seeds and no test slice: without test_dataset there is nothing.
    message = await call_error(trained, "evaluate_student", model="thinker")
    assert "no held-out examples" in message and "test_dataset" in message and "holdout_fraction" in message
    for bad in (0, 5000):
        message = await call_error(trained, "evaluate_student", model="toy-lora", max_tokens=bad)
        assert "'max_tokens' must be between 1 and 4096" in message
    message = await call_error(trained, "evaluate_student", model="toy-lora", metric="bleu")
    assert "metric" in message and "'auto'" in message and "bleu" in message


@pytest.mark.slow
async def test_a_model_whose_adapter_was_removed_names_the_missing_file(trained: Client, world: World) -> None:
    adapter = Path(world.thinker["paths"]["adapter"]) / "adapters.safetensors"
    await call(trained, "create_dataset", name="thinker-test", examples=toy_examples(4, seed=4), holdout_fraction=0)
    warm = await call(trained, "query_student", model="thinker", prompt="hi", max_tokens=1)
    assert not warm["already_loaded"]
    moved = adapter.with_name("adapters.safetensors.moved")
    adapter.rename(moved)
    try:
        # Even while the student is still warm in the cache, the missing file is reported.
        message = await call_error(trained, "query_student", model="thinker", prompt="hi", max_tokens=1)
        assert str(adapter) in message and "missing" in message
        # An evaluation of it is refused before any job starts, naming the file too.
        message = await call_error(trained, "evaluate_student", model="thinker", test_dataset="thinker-test")
        assert str(adapter) in message and "missing" in message
    finally:
        moved.rename(adapter)
    again = await call(trained, "query_student", model="thinker", prompt="hi", max_tokens=1)
    assert again["already_loaded"]
