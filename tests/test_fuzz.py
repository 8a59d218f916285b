"""Hostile arguments: the cases the fuzzer found, kept as regressions, and a bounded fuzz run of
every tool against a real stdio server process (benchmarks/fuzz.py is the long soak)."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from nanodistill.data.rows import Row
from nanodistill.store.datasets import content_hash
from nanodistill.testing.fuzz import run_fuzz
from tests.mcp_helpers import call, call_error

pytestmark = pytest.mark.anyio

SEEDS = [{"input": f"question {i}", "output": f"answer {i}"} for i in range(12)]
MARK = "ECHOED-" + "Z" * 3000


async def test_a_huge_argument_is_refused_naming_the_field(client: Client) -> None:
    text = await call_error(client, "get_dataset", dataset="x" * 10_000_000)
    assert "'dataset' is 10,000,000 characters long; the limit is 4,096" in text
    assert len(text) < 500


async def test_text_fields_keep_room_for_long_examples(client: Client) -> None:
    long_row = {"input": "word " * 10_000, "output": "ok"}
    created = await call(client, "create_dataset", name="long", examples=[long_row, *SEEDS], instruction="i" * 9000)
    assert created["total_examples"] == 13


async def test_a_long_list_is_refused_naming_the_field(client: Client) -> None:
    text = await call_error(client, "query_student", model="m", prompts=["p"] * 5000)
    assert "'prompts' has 5,000 items; the limit is 1,000" in text


async def test_validation_errors_are_bounded(client: Client) -> None:
    text = await call_error(client, "create_dataset", name="v", examples=[1] * 20_000, instruction="i")
    assert "examples" in text
    assert len(text) <= 2000


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("query_student", {"model": MARK, "prompt": "hi"}),
        ("get_model", {"model": MARK}),
        ("export_dataset", {"dataset": "long", "path": f"/no/such/{MARK[:200]}/{MARK[:200]}.jsonl"}),
        ("amplify_dataset", {"dataset": "long", "teacher": MARK, "dry_run": True}),
        ("evaluate_student", {"model": MARK}),
    ],
)
async def test_errors_quote_at_most_a_short_prefix(client: Client, tool: str, arguments: dict[str, Any]) -> None:
    await call(client, "create_dataset", name="long", examples=SEEDS, instruction="i")
    result = await client.call_tool(tool, arguments)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert result.is_error, text
    assert "Z" * 200 not in text


async def test_request_arguments_stay_out_of_info_logs(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        for tool, field in [("query_student", "model"), ("get_model", "model"), ("import_model", "source")]:
            await client.call_tool(tool, {field: MARK})
        await client.call_tool("export_dataset", {"dataset": "nope", "path": "../" + MARK[:200]})
    assert "ZZZZZZZZZZ" not in caplog.text


FIELDS = [
    ("create_dataset", {"name": "n", "instruction": "i"}, "path"),
    ("add_examples", {"dataset": "n"}, "path"),
    ("export_dataset", {"dataset": "n"}, "path"),
    ("import_model", {}, "source"),
    ("get_model", {}, "model"),
    ("query_student", {"prompt": "hi"}, "model"),
    ("evaluate_student", {}, "model"),
    ("export_model", {"format": "fused"}, "model"),
    ("train_student", {"dataset": "n"}, "base_model"),
    ("distill", {"name": "d", "instruction": "i", "seeds": SEEDS}, "student"),
    ("distill", {"name": "d", "instruction": "i", "seeds": SEEDS}, "training_data"),
]


@pytest.mark.parametrize(("tool", "base", "field"), FIELDS)
async def test_a_nul_byte_is_refused_naming_the_field(
    client: Client, tool: str, base: dict[str, Any], field: str
) -> None:
    text = await call_error(client, tool, **base, **{field: "data/a\0b"})
    assert f"'{field}' contains a NUL byte" in text


@pytest.mark.parametrize(("tool", "base", "field"), FIELDS)
@pytest.mark.parametrize("value", ["n" * 300, "/tmp/" + "n" * 256 + "/x", "m/" * 3000], ids=["name", "part", "path"])
async def test_an_over_long_name_is_refused_naming_the_field(
    client: Client, tool: str, base: dict[str, Any], field: str, value: str
) -> None:
    text = await call_error(client, tool, **base, **{field: value})
    assert f"'{field}'" in text
    assert not text.rstrip().endswith(f"Error executing tool {tool}")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"dataset": "n", "sample": 10**30}, "'sample' is out of range"),
        ({"dataset": "n\ud800"}, "'dataset' holds a lone surrogate"),
        ({"dataset": "n", "extra": {"a": json.loads("[" * 20 + "]" * 20)}}, "nests more than 16 levels"),
    ],
)
async def test_odd_values_get_readable_errors(client: Client, arguments: dict[str, Any], expected: str) -> None:
    assert expected in await call_error(client, "get_dataset", **arguments)


def test_the_duplicate_key_tells_a_nul_apart_from_the_join() -> None:
    assert content_hash(Row("a\0b", "c")) != content_hash(Row("a", "b\0c"))
    assert content_hash(Row("a", "b")) == content_hash(Row("a", "b"))


async def test_rows_differing_only_around_a_nul_are_both_kept(client: Client, tmp_path: Path) -> None:
    rows = [{"input": "a\0b", "output": "c"}, {"input": "a", "output": "b\0c"}, *SEEDS]
    source = tmp_path / "nul.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    created = await call(client, "create_dataset", name="nul", path=str(source), instruction="i")
    assert (created["total_examples"], created["duplicates_removed"]) == (14, 0)


@pytest.mark.slow
async def test_fuzzing_every_tool_over_stdio(tmp_path: Path) -> None:
    """Every tool, 10 calls each (schema-drawn and mutated) against a real stdio server process:
    each answered within 5 s with a result or a readable error, a ping answered after each tool's
    batch, and the database intact at the end."""
    counts = await run_fuzz(tmp_path / "home", per_tool=10, seed=17)
    assert counts.bad == []
    assert counts.calls >= 10 * 20
    assert counts.pings_ok >= 20
    with sqlite3.connect(tmp_path / "home" / "nanodistill.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
