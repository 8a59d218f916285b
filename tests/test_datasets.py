"""Dataset tools and resources through an in-memory MCP client: every good path, every bad input.

After each failure the SQLite file is read directly to show nothing was written.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.mcp_helpers import call, call_error, read_json

pytestmark = pytest.mark.anyio

SEEDS = [
    {"input": "The food was great", "output": "positive", "reasoning": "praises the food"},
    {"input": "Terrible service", "output": "negative"},
    {"input": "It was fine", "output": "neutral", "reasoning": "no strong feeling"},
]


def seeds(n: int, prefix: str = "q") -> list[dict[str, str]]:
    return [{"input": f"{prefix} {i}", "output": f"answer {i}"} for i in range(n)]


def state(home: Path) -> dict[str, Any]:
    """Everything a write could change, read straight from the SQLite file."""
    con = sqlite3.connect(home / "nanodistill.db")
    try:
        datasets = con.execute(
            "SELECT name, instruction, version, duplicates_removed, updated_at FROM datasets ORDER BY name"
        ).fetchall()
        examples = con.execute(
            "SELECT d.name, COUNT(e.id), COALESCE(SUM(e.id), 0), COALESCE(MAX(e.position), -1) "
            "FROM datasets d LEFT JOIN examples e ON e.dataset_id = d.id GROUP BY d.name ORDER BY d.name"
        ).fetchall()
        orphans = con.execute("SELECT COUNT(*) FROM examples WHERE dataset_id NOT IN (SELECT id FROM datasets)")
        return {"datasets": datasets, "examples": examples, "orphans": orphans.fetchone()[0]}
    finally:
        con.close()


def stored_rows(home: Path, name: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(home / "nanodistill.db")
    try:
        return con.execute(
            "SELECT e.position, e.input, e.output, e.reasoning, e.source, e.split FROM examples e "
            "JOIN datasets d ON d.id = e.dataset_id WHERE d.name = ? ORDER BY e.position",
            (name,),
        ).fetchall()
    finally:
        con.close()


def example_count(home: Path) -> int:
    con = sqlite3.connect(home / "nanodistill.db")
    try:
        return int(con.execute("SELECT COUNT(*) FROM examples").fetchone()[0])
    finally:
        con.close()


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


async def failing(client: Client, home: Path, tool: str, /, **arguments: Any) -> str:
    """Call a tool that must fail and must leave the database exactly as it was."""
    before = state(home)
    message = await call_error(client, tool, **arguments)
    assert state(home) == before, f"{tool} failed but changed the database: {message}"
    return message


def assert_words(message: str, *words: str) -> None:
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


# --- create_dataset, inline ------------------------------------------------------------------------


async def test_create_inline_then_inspect(client: Client, home: Path) -> None:
    result = await call(client, "create_dataset", name="sentiment", examples=SEEDS, instruction="Classify.")
    assert result == {"dataset": "sentiment", "added": 3, "duplicates_removed": 0, "held_out": 0, "total_examples": 3}
    assert stored_rows(home, "sentiment") == [
        (0, "The food was great", "positive", "praises the food", "seed", "train"),
        (1, "Terrible service", "negative", None, "seed", "train"),
        (2, "It was fine", "neutral", "no strong feeling", "seed", "train"),
    ]
    detail = await call(client, "get_dataset", dataset="sentiment", sample=2)
    assert detail["dataset"]["name"] == "sentiment"
    assert detail["dataset"]["instruction"] == "Classify."
    assert detail["dataset"]["examples"] == 3
    assert detail["dataset"]["version"] == 1
    assert detail["counts_by_source"] == {"seed": 3}
    assert detail["counts_by_split"] == {"train": 3}
    assert detail["stats"]["with_reasoning"] == 2
    assert detail["stats"]["input_chars_max"] == len("The food was great")
    assert [row["input"] for row in detail["sample"]] == ["The food was great", "Terrible service"]
    assert (await call(client, "get_dataset", dataset="sentiment", sample=0))["sample"] == []


async def test_exact_duplicates_are_dropped_and_counted(client: Client, home: Path) -> None:
    rows = [*SEEDS, dict(SEEDS[0]), {"input": "Terrible service", "output": "negative", "reasoning": "new"}]
    result = await call(client, "create_dataset", name="dups", examples=rows)
    assert (result["added"], result["duplicates_removed"], result["total_examples"]) == (3, 2, 3)
    # Same input with another output is a different example, kept.
    more = await call(
        client, "add_examples", dataset="dups", examples=[SEEDS[1], {"input": "It was fine", "output": "ok"}]
    )
    assert (more["added"], more["duplicates_removed"], more["total_examples"]) == (1, 1, 4)
    detail = await call(client, "get_dataset", dataset="dups")
    assert detail["duplicates_removed"] == 3
    assert len(stored_rows(home, "dups")) == 4


@pytest.mark.parametrize(
    ("n", "fraction", "held_out"),
    [(9, None, 0), (10, None, 2), (24, None, 5), (10, 0.5, 5), (20, 0.0, 0), (5, 0.2, 1), (10, 0.3, 3)],
)
async def test_holdout(client: Client, home: Path, n: int, fraction: float | None, held_out: int) -> None:
    args: dict[str, Any] = {} if fraction is None else {"holdout_fraction": fraction}
    result = await call(client, "create_dataset", name="h", examples=seeds(n), **args)
    assert result["held_out"] == held_out
    splits = [row[5] for row in stored_rows(home, "h")]
    assert splits.count("holdout") == held_out
    assert splits.count("train") == n - held_out
    detail = await call(client, "get_dataset", dataset="h")
    assert detail["counts_by_split"] == {k: v for k, v in {"train": n - held_out, "holdout": held_out}.items() if v}


async def test_holdout_is_deterministic(client: Client, home: Path) -> None:
    await call(client, "create_dataset", name="h1", examples=seeds(30))
    await call(client, "create_dataset", name="h2", examples=list(reversed(seeds(30))))
    held1 = {row[1] for row in stored_rows(home, "h1") if row[5] == "holdout"}
    held2 = {row[1] for row in stored_rows(home, "h2") if row[5] == "holdout"}
    assert len(held1) == 6
    assert held1 == held2


@pytest.mark.parametrize("fraction", [-0.1, 0.51, 1.0])
async def test_holdout_fraction_out_of_range(client: Client, home: Path, fraction: float) -> None:
    message = await failing(client, home, "create_dataset", name="h", examples=seeds(10), holdout_fraction=fraction)
    assert_words(message, "'holdout_fraction'", "between 0 and 0.5")
    assert state(home)["datasets"] == []


BAD_ROWS: list[tuple[list[Any], tuple[str, ...]]] = [
    ([{"output": "b"}], ("examples[0]", "missing 'input'", "needs 'input' and 'output'")),
    ([*SEEDS, {"input": "a"}], ("examples[3]", "missing 'output'")),
    (
        [SEEDS[0], {"input": "", "output": "b"}],
        ("examples[1]", "'input' is empty", "Give it some text or drop the row"),
    ),
    ([{"input": "a", "output": "   \n"}], ("examples[0]", "'output' is empty")),
    ([{"input": None, "output": "b"}], ("examples[0]", "missing 'input'")),
    ([{"input": 5, "output": "b"}], ("examples[0]", "'input' must be a string, got int", "Quote it as text")),
    ([{"input": "a", "output": ["b"]}], ("examples[0]", "'output' must be a string, got list")),
    ([{"input": "a", "output": {"x": 1}}], ("examples[0]", "'output' must be a string, got dict")),
    ([{"input": "a", "output": True}], ("examples[0]", "'output' must be a string, got bool")),
    ([{"input": "a", "output": "b", "reasoning": 3}], ("examples[0]", "'reasoning' must be a string")),
    (
        [SEEDS[0], {"input": "x" * 100_001, "output": "b"}],
        ("examples[1]", "'input' has 100,001 characters; the limit is 100,000", "Shorten it"),
    ),
    ([{"input": "a", "output": "y" * 100_001}], ("examples[0]", "'output' has 100,001 characters")),
    ([{"input": "a", "output": "b", "reasoning": "r" * 100_001}], ("examples[0]", "'reasoning' is over 100,000")),
    # A row that is not an object is refused by the tool's input schema, naming the row.
    ([SEEDS[0], "just text"], ("examples.1", "valid dictionary")),
    ([SEEDS[0], ["a", "b"]], ("examples.1", "valid dictionary")),
    ([], ("'examples' is empty", "at least one")),
]


@pytest.mark.parametrize(("rows", "words"), BAD_ROWS)
async def test_create_with_bad_rows_writes_nothing(
    client: Client, home: Path, rows: list[Any], words: tuple[str, ...]
) -> None:
    await call(client, "create_dataset", name="existing", examples=SEEDS)
    message = await failing(client, home, "create_dataset", name="new", examples=rows)
    assert_words(message, *words)
    assert [d[0] for d in state(home)["datasets"]] == ["existing"]


@pytest.mark.parametrize(("rows", "words"), BAD_ROWS)
async def test_add_bad_rows_writes_nothing(client: Client, home: Path, rows: list[Any], words: tuple[str, ...]) -> None:
    await call(client, "create_dataset", name="existing", examples=SEEDS)
    message = await failing(client, home, "add_examples", dataset="existing", examples=rows)
    assert_words(message, *words)
    assert (await call(client, "get_dataset", dataset="existing"))["dataset"]["version"] == 1


async def test_input_at_the_limit_is_accepted(client: Client, home: Path) -> None:
    result = await call(client, "create_dataset", name="big", examples=[{"input": "x" * 100_000, "output": "y"}])
    assert result["added"] == 1


@pytest.mark.parametrize(
    "arguments",
    [{}, {"examples": SEEDS, "path": "x.jsonl"}],
)
async def test_exactly_one_of_examples_or_path(client: Client, home: Path, arguments: dict[str, Any]) -> None:
    message = await failing(client, home, "create_dataset", name="x", **arguments)
    assert_words(message, "exactly one of 'examples'", "'path'")
    await call(client, "create_dataset", name="x", examples=SEEDS)
    message = await failing(client, home, "add_examples", dataset="x", **arguments)
    assert_words(message, "exactly one of 'examples'")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", ("'name' is empty", "letters, digits")),
        ("   ", ("'name' is empty",)),
        ("n" * 65, ("'name' is 65 characters long", "limit is 64", "Shorten")),
        ("has space", ("'name'", "not allowed", "letters, digits, '.', '_' and '-'")),
        ("a/b", ("'name'", "not allowed")),
        ("ünïcode", ("'name'", "not allowed")),
        ("semi;colon", ("'name'", "not allowed")),
        ("trailing\n", ("'name'", "not allowed")),
        ("tab\there", ("'name'", "not allowed")),
    ],
)
async def test_bad_dataset_names(client: Client, home: Path, name: str, words: tuple[str, ...]) -> None:
    message = await failing(client, home, "create_dataset", name=name, examples=SEEDS)
    assert_words(message, *words)
    assert state(home)["datasets"] == []


@pytest.mark.parametrize("name", ["a", "n" * 64, "support-tickets_v2.1", "UPPER.lower-9"])
async def test_good_dataset_names(client: Client, home: Path, name: str) -> None:
    await call(client, "create_dataset", name=name, examples=SEEDS)
    assert [d[0] for d in state(home)["datasets"]] == [name]


async def test_name_that_already_exists(client: Client, home: Path) -> None:
    await call(client, "create_dataset", name="taken", examples=SEEDS, instruction="first")
    message = await failing(client, home, "create_dataset", name="taken", examples=seeds(12), instruction="second")
    assert_words(message, "'name'", "'taken' already exists", "Pick another name", "add_examples", "delete_dataset")
    assert stored_rows(home, "taken")[0][1] == "The food was great"
    assert len(stored_rows(home, "taken")) == 3


async def test_wrong_argument_types_are_refused(client: Client, home: Path) -> None:
    message = await failing(client, home, "create_dataset", name="x", examples={"input": "a", "output": "b"})
    assert_words(message, "examples", "valid list")
    message = await failing(client, home, "create_dataset", name=7, examples=SEEDS)
    assert_words(message, "name", "valid string")


# --- add_examples ---------------------------------------------------------------------------------


async def test_add_examples_appends_and_bumps_version(client: Client, home: Path) -> None:
    await call(client, "create_dataset", name="grow", examples=SEEDS)
    result = await call(client, "add_examples", dataset="grow", examples=seeds(2))
    assert result == {"dataset": "grow", "added": 2, "duplicates_removed": 0, "held_out": 0, "total_examples": 5}
    assert [row[0] for row in stored_rows(home, "grow")] == [0, 1, 2, 3, 4]
    assert [row[1] for row in stored_rows(home, "grow")][3:] == ["q 0", "q 1"]
    detail = await call(client, "get_dataset", dataset="grow")
    assert detail["dataset"]["version"] == 2
    assert detail["dataset"]["examples"] == 5
    await call(client, "add_examples", dataset="grow", examples=seeds(1, "other"))
    assert (await call(client, "get_dataset", dataset="grow"))["dataset"]["version"] == 3


async def test_add_examples_to_unknown_dataset(client: Client, home: Path) -> None:
    await call(client, "create_dataset", name="known", examples=SEEDS)
    message = await failing(client, home, "add_examples", dataset="unknown", examples=SEEDS)
    assert_words(message, "'dataset'", "no dataset named 'unknown'", "list_datasets")


# --- files ----------------------------------------------------------------------------------------


async def test_create_from_jsonl(client: Client, home: Path, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "seeds.jsonl", [*SEEDS, SEEDS[1]])
    result = await call(client, "create_dataset", name="f", path=str(path))
    assert (result["added"], result["duplicates_removed"]) == (3, 1)
    assert stored_rows(home, "f")[0] == (0, "The food was great", "positive", "praises the food", "imported", "train")
    assert (await call(client, "get_dataset", dataset="f"))["counts_by_source"] == {"imported": 3}


async def test_create_from_json_array(client: Client, home: Path, tmp_path: Path) -> None:
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps(seeds(12), indent=2), encoding="utf-8")
    result = await call(client, "create_dataset", name="arr", path=str(path))
    assert (result["added"], result["held_out"]) == (12, 2)
    assert [row[1] for row in stored_rows(home, "arr")] == [f"q {i}" for i in range(12)]


async def test_create_from_csv_with_reasoning_column(client: Client, home: Path, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "seeds.csv",
        ["input", "output", "reasoning"],
        [["Great, really", "positive", "praise"], ["Meh", "neutral", ""], ['Say "no"\nthen leave', "negative", "r"]],
    )
    result = await call(client, "create_dataset", name="c", path=str(path))
    assert result["added"] == 3
    assert stored_rows(home, "c") == [
        (0, "Great, really", "positive", "praise", "imported", "train"),
        (1, "Meh", "neutral", None, "imported", "train"),
        (2, 'Say "no"\nthen leave', "negative", "r", "imported", "train"),
    ]


async def test_relative_path_under_an_allowed_root(
    client: Client, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "rel.jsonl", SEEDS)
    monkeypatch.chdir(tmp_path)
    assert (await call(client, "create_dataset", name="rel", path="data/rel.jsonl"))["added"] == 3


async def test_add_examples_from_file(client: Client, home: Path, tmp_path: Path) -> None:
    await call(client, "create_dataset", name="mix", examples=SEEDS)
    path = write_jsonl(tmp_path / "more.jsonl", [SEEDS[0], *seeds(4)])
    result = await call(client, "add_examples", dataset="mix", path=str(path))
    assert (result["added"], result["duplicates_removed"], result["total_examples"]) == (4, 1, 7)
    detail = await call(client, "get_dataset", dataset="mix")
    assert detail["counts_by_source"] == {"seed": 3, "imported": 4}
    assert detail["dataset"]["version"] == 2


def bad_files(tmp_path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(path, words the error must contain) for every way a file can be wrong."""
    (tmp_path / "inner").mkdir(exist_ok=True)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.jsonl"
    write_jsonl(outside, SEEDS)
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text(json.dumps(SEEDS[0]) + "\n" + json.dumps(SEEDS[1]) + "\n{'input': 'a'}\n", encoding="utf-8")
    not_object = tmp_path / "list.jsonl"
    not_object.write_text(json.dumps(SEEDS[0]) + '\n["a", "b"]\n', encoding="utf-8")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('[\n  {"input": "a", "output": "b"},\n  {"input": "c" "output": "d"}\n]', encoding="utf-8")
    garbage = tmp_path / "garbage.json"
    garbage.write_text('[{"input": "a", "output": "b"}]\n[]', encoding="utf-8")
    object_json = tmp_path / "object.json"
    object_json.write_text(json.dumps(SEEDS[0]), encoding="utf-8")
    no_headers = write_csv(tmp_path / "headers.csv", ["question", "answer"], [["a", "b"]])
    typed = write_jsonl(tmp_path / "typed.jsonl", [SEEDS[0], {"input": "a", "output": 1}])
    long_row = write_jsonl(tmp_path / "long.jsonl", [SEEDS[0], {"input": "x" * 100_001, "output": "b"}])
    empty_output = write_csv(tmp_path / "empty.csv", ["input", "output"], [["a", "b"], ["c", ""]])
    unknown = tmp_path / "rows.txt"
    unknown.write_text(json.dumps(SEEDS[0]), encoding="utf-8")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("input,output\ncafé,b\n".encode("latin-1"))
    return [
        (str(bad_jsonl), ("bad.jsonl line 3", "not valid JSON", "one object like")),
        (str(not_object), ("list.jsonl line 2", "expected an object")),
        (str(bad_json), ("bad.json line 3", "not valid JSON", "after row 1")),
        (str(garbage), ("garbage.json line 2", "after the closing ']'")),
        (str(object_json), ("object.json", "must hold an array", ".jsonl")),
        (str(no_headers), ("headers.csv", "'input' and 'output' columns", "missing: input, output", "question")),
        (str(typed), ("typed.jsonl line 2", "'output' must be a string, got int")),
        (str(long_row), ("long.jsonl line 2", "'input' has 100,001 characters; the limit is 100,000")),
        (str(empty_output), ("empty.csv line 3", "'output' is empty")),
        (str(unknown), ("'path'", "unknown file type '.txt'", "use .json, .jsonl or .csv")),
        (str(latin), ("latin.csv", "not UTF-8", "Save the file with UTF-8")),
        (str(outside), ("'path'", "outside the allowed folders", str(tmp_path), "NANODISTILL_IMPORT_ROOTS")),
        (f"{tmp_path}/inner/../bad.jsonl", ("'path'", "must not contain '..'", "direct path")),
        ("../" + str(tmp_path / "bad.jsonl"), ("'path'", "must not contain '..'")),
        (str(tmp_path / "missing.jsonl"), ("'path'", "no file at", "missing.jsonl", "Check the path")),
        (str(tmp_path / "inner"), ("'path'", "no file at")),
        ("", ("'path' is empty",)),
    ]


async def test_bad_files_create_nothing(client: Client, home: Path, tmp_path: Path) -> None:
    await call(client, "create_dataset", name="existing", examples=SEEDS)
    for path, words in bad_files(tmp_path):
        message = await failing(client, home, "create_dataset", name="new", path=path)
        assert_words(message, *words)
        assert [d[0] for d in state(home)["datasets"]] == ["existing"]


async def test_bad_files_add_nothing(client: Client, home: Path, tmp_path: Path) -> None:
    await call(client, "create_dataset", name="existing", examples=SEEDS)
    for path, words in bad_files(tmp_path):
        message = await failing(client, home, "add_examples", dataset="existing", path=path)
        assert_words(message, *words)
    assert (await call(client, "get_dataset", dataset="existing"))["dataset"]["version"] == 1


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
async def test_bad_row_in_the_middle_of_a_large_file_keeps_nothing(
    client: Client, home: Path, tmp_path: Path, suffix: str
) -> None:
    n, bad = 30_000, 17_345  # the bad row comes after many committed-size batches
    rows: list[dict[str, Any]] = [{"input": f"question {i} " + "x" * 60, "output": f"answer {i}"} for i in range(n)]
    rows[bad] = {"input": f"question {bad}", "output": ""}
    path = tmp_path / f"large{suffix}"
    if suffix == ".jsonl":
        write_jsonl(path, rows)
        where = f"large.jsonl line {bad + 1}"
    elif suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
        where = f"large.json row {bad}"
    else:
        write_csv(path, ["input", "output"], [[r["input"], r["output"]] for r in rows])
        where = f"large.csv line {bad + 2}"
    await call(client, "create_dataset", name="existing", examples=SEEDS)
    message = await failing(client, home, "create_dataset", name="large", path=str(path))
    assert_words(message, where, "'output' is empty")
    message = await failing(client, home, "add_examples", dataset="existing", path=str(path))
    assert_words(message, where, "'output' is empty")
    assert example_count(home) == 3


async def test_more_than_100k_rows_in_one_call(client: Client, home: Path, tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    path.write_text("".join(f'{{"input": "i{i}", "output": "o"}}\n' for i in range(100_001)), encoding="utf-8")
    message = await failing(client, home, "create_dataset", name="many", path=str(path))
    assert_words(message, "'path'", "more than 100,000 rows", "several calls")
    assert example_count(home) == 0
    assert state(home)["datasets"] == []


async def test_more_than_100k_inline_rows(client: Client, home: Path) -> None:
    message = await failing(
        client,
        home,
        "create_dataset",
        name="many",
        examples=[{"input": f"i{i}", "output": "o"} for i in range(100_001)],
    )
    assert_words(message, "'examples'", "more than 100,000 rows", "several calls")
    assert example_count(home) == 0


# --- list_datasets --------------------------------------------------------------------------------


async def test_list_datasets_pages_with_a_cursor(client: Client, home: Path) -> None:
    names = ["b-set", "a-set", "g", "c.1", "E_upper", "d", "f"]
    for i, name in enumerate(names):
        await call(client, "create_dataset", name=name, examples=seeds(i + 1))
    seen: list[str] = []
    counts: dict[str, int] = {}
    cursor: str | None = None
    pages = 0
    while True:
        args: dict[str, Any] = {"limit": 3} if cursor is None else {"limit": 3, "cursor": cursor}
        page = await call(client, "list_datasets", **args)
        pages += 1
        assert len(page["datasets"]) <= 3
        seen += [d["name"] for d in page["datasets"]]
        counts.update({d["name"]: d["examples"] for d in page["datasets"]})
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(names)
    assert counts == {name: i + 1 for i, name in enumerate(names)}
    everything = await call(client, "list_datasets")
    assert [d["name"] for d in everything["datasets"]] == sorted(names)
    assert everything["next_cursor"] is None
    exact = await call(client, "list_datasets", limit=7)
    assert exact["next_cursor"] is None


async def test_list_datasets_empty_and_bad_arguments(client: Client, home: Path) -> None:
    assert await call(client, "list_datasets") == {"datasets": [], "next_cursor": None}
    for limit in (0, 501, -1):
        message = await failing(client, home, "list_datasets", limit=limit)
        assert_words(message, "'limit'", "between 1 and 500")
    message = await failing(client, home, "list_datasets", cursor="!!not a cursor!!")
    assert_words(message, "'cursor'", "next_cursor")


# --- get_dataset and delete_dataset ---------------------------------------------------------------


async def test_get_dataset_errors(client: Client, home: Path) -> None:
    message = await failing(client, home, "get_dataset", dataset="ghost")
    assert_words(message, "'dataset'", "no dataset named 'ghost'", "list_datasets")
    await call(client, "create_dataset", name="real", examples=SEEDS)
    for sample in (-1, 101):
        message = await failing(client, home, "get_dataset", dataset="real", sample=sample)
        assert_words(message, "'sample'", "between 0 and 100")


async def test_delete_dataset_removes_its_examples(client: Client, home: Path) -> None:
    await call(client, "create_dataset", name="gone", examples=seeds(12))
    await call(client, "create_dataset", name="kept", examples=SEEDS)
    assert await call(client, "delete_dataset", dataset="gone") == {"deleted": "gone", "examples_removed": 12}
    assert [d[0] for d in state(home)["datasets"]] == ["kept"]
    assert example_count(home) == 3
    assert state(home)["orphans"] == 0
    message = await failing(client, home, "get_dataset", dataset="gone")
    assert_words(message, "no dataset named 'gone'")
    message = await failing(client, home, "delete_dataset", dataset="gone")
    assert_words(message, "'dataset'", "no dataset named 'gone'", "list_datasets")
    # The name is free again.
    assert (await call(client, "create_dataset", name="gone", examples=SEEDS))["added"] == 3


# --- resources ------------------------------------------------------------------------------------


async def test_dataset_resource(client: Client, home: Path) -> None:
    await call(client, "create_dataset", name="res", examples=seeds(12), instruction="Answer.")
    body = await read_json(client, "nanodistill://datasets/res")
    assert body["dataset"]["name"] == "res"
    assert body["dataset"]["examples"] == 12
    assert body["counts_by_split"] == {"train": 10, "holdout": 2}
    assert len(body["sample"]) == 5
    with pytest.raises(MCPError, match="no dataset named 'nope'"):
        await client.read_resource("nanodistill://datasets/nope")


async def test_examples_resource_pages(client: Client, home: Path) -> None:
    await call(client, "create_dataset", name="pages", examples=seeds(8), holdout_fraction=0.0)
    first = await read_json(client, "nanodistill://datasets/pages/examples")
    assert (first["offset"], first["limit"]) == (0, 50)
    assert [e["input"] for e in first["examples"]] == [f"q {i}" for i in range(8)]
    page = await read_json(client, "nanodistill://datasets/pages/examples?offset=2&limit=3")
    assert (page["offset"], page["limit"]) == (2, 3)
    assert [e["position"] for e in page["examples"]] == [2, 3, 4]
    assert page["examples"][0] == {
        "position": 2,
        "input": "q 2",
        "output": "answer 2",
        "reasoning": None,
        "source": "seed",
        "split": "train",
    }
    only_limit = await read_json(client, "nanodistill://datasets/pages/examples?limit=2")
    assert [e["position"] for e in only_limit["examples"]] == [0, 1]
    tail = await read_json(client, "nanodistill://datasets/pages/examples?offset=6&limit=10")
    assert [e["position"] for e in tail["examples"]] == [6, 7]
    past = await read_json(client, "nanodistill://datasets/pages/examples?offset=100")
    assert past["examples"] == []


@pytest.mark.parametrize("query", ["offset=-1", "limit=0", "limit=1001", "offset=0&limit=-5"])
async def test_examples_resource_bad_paging(client: Client, home: Path, query: str) -> None:
    await call(client, "create_dataset", name="pages", examples=SEEDS)
    with pytest.raises(MCPError, match="offset must be >= 0 and limit between 1 and 1000"):
        await client.read_resource(f"nanodistill://datasets/pages/examples?{query}")


async def test_examples_resource_unknown_dataset(client: Client, home: Path) -> None:
    with pytest.raises(MCPError, match="no dataset named 'ghost'"):
        await client.read_resource("nanodistill://datasets/ghost/examples?offset=0&limit=5")


async def test_resource_templates_are_listed(client: Client) -> None:
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert {"nanodistill://datasets/{name}", "nanodistill://datasets/{name}/examples{?offset,limit}"} <= templates


# --- export_dataset -------------------------------------------------------------------------------


def lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


EXPORT_ROWS = [
    {"input": "The food was great", "output": "positive", "reasoning": "praises the food"},
    {"input": "Terrible service", "output": "negative"},
    {"input": 'Ünïcödé ☃ "quotes"\nnewline', "output": "neutral", "reasoning": "  spaced  "},
]


async def test_export_all_formats_to_artifacts(client: Client, home: Path) -> None:
    await call(client, "create_dataset", name="exp", examples=EXPORT_ROWS, instruction="Classify the sentiment.")
    written = {}
    for fmt in ("jsonl", "chat", "completions"):
        result = await call(client, "export_dataset", dataset="exp", format=fmt)
        path = Path(result["path"])
        assert (result["dataset"], result["format"], result["rows"]) == ("exp", fmt, 3)
        assert path.is_relative_to(home / "artifacts")
        assert path.name.endswith(f"-{fmt}.jsonl")
        assert not list(path.parent.glob("*.partial"))
        written[fmt] = lines(path)
    assert written["jsonl"] == [
        {"input": "The food was great", "output": "positive", "reasoning": "praises the food", "split": "train"},
        {"input": "Terrible service", "output": "negative", "split": "train"},
        {"input": 'Ünïcödé ☃ "quotes"\nnewline', "output": "neutral", "reasoning": "  spaced  ", "split": "train"},
    ]
    system = {"role": "system", "content": "Classify the sentiment."}
    assert written["chat"] == [
        {
            "messages": [
                system,
                {"role": "user", "content": "The food was great"},
                {"role": "assistant", "content": "<think>praises the food</think>\npositive"},
            ]
        },
        {
            "messages": [
                system,
                {"role": "user", "content": "Terrible service"},
                {"role": "assistant", "content": "negative"},
            ]
        },
        {
            "messages": [
                system,
                {"role": "user", "content": 'Ünïcödé ☃ "quotes"\nnewline'},
                {"role": "assistant", "content": "<think>spaced</think>\nneutral"},
            ]
        },
    ]
    assert written["completions"] == [
        {"prompt": "The food was great", "completion": "<think>praises the food</think>\npositive"},
        {"prompt": "Terrible service", "completion": "negative"},
        {"prompt": 'Ünïcödé ☃ "quotes"\nnewline', "completion": "<think>spaced</think>\nneutral"},
    ]
    default = await call(client, "export_dataset", dataset="exp")
    assert default["format"] == "jsonl"
    assert lines(Path(default["path"])) == written["jsonl"]


async def test_export_chat_without_instruction_has_no_system_message(client: Client, home: Path) -> None:
    await call(client, "create_dataset", name="plain", examples=SEEDS[1:2])
    result = await call(client, "export_dataset", dataset="plain", format="chat")
    assert lines(Path(result["path"])) == [
        {"messages": [{"role": "user", "content": "Terrible service"}, {"role": "assistant", "content": "negative"}]}
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "chat", "completions"])
async def test_export_to_a_path_under_an_allowed_root(client: Client, home: Path, tmp_path: Path, fmt: str) -> None:
    await call(client, "create_dataset", name="exp", examples=EXPORT_ROWS, instruction="Classify.")
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / f"train.{fmt}.jsonl"
    result = await call(client, "export_dataset", dataset="exp", format=fmt, path=str(target))
    assert result == {"dataset": "exp", "format": fmt, "path": str(target), "rows": 3}
    rows = lines(target)
    assert len(rows) == 3
    if fmt == "jsonl":
        assert [r["input"] for r in rows] == [r["input"] for r in EXPORT_ROWS]
    elif fmt == "chat":
        assert [r["messages"][1]["content"] for r in rows] == [r["input"] for r in EXPORT_ROWS]
        assert all(r["messages"][0] == {"role": "system", "content": "Classify."} for r in rows)
    else:
        assert [r["prompt"] for r in rows] == [r["input"] for r in EXPORT_ROWS]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [target.name]


async def test_export_a_large_dataset_in_order(client: Client, home: Path, tmp_path: Path) -> None:
    await call(client, "create_dataset", name="big", examples=seeds(2500), holdout_fraction=0.0)
    result = await call(client, "export_dataset", dataset="big", path=str(tmp_path / "big.jsonl"))
    assert result["rows"] == 2500
    assert [r["input"] for r in lines(tmp_path / "big.jsonl")] == [f"q {i}" for i in range(2500)]


async def test_export_errors(client: Client, home: Path, tmp_path: Path) -> None:
    await call(client, "create_dataset", name="exp", examples=SEEDS)
    (tmp_path / "out").mkdir()
    existing = tmp_path / "out" / "existing.jsonl"
    existing.write_text("keep me\n", encoding="utf-8")
    outside = tmp_path.parent / f"{tmp_path.name}-export.jsonl"
    cases: list[tuple[dict[str, Any], tuple[str, ...]]] = [
        ({"dataset": "ghost"}, ("'dataset'", "no dataset named 'ghost'", "list_datasets")),
        ({"dataset": "exp", "format": "xml"}, ("format", "'jsonl', 'chat' or 'completions'")),
        ({"dataset": "exp", "format": "CSV"}, ("format", "'jsonl', 'chat' or 'completions'")),
        (
            {"dataset": "exp", "path": str(outside)},
            ("'path'", "outside the allowed folders", "NANODISTILL_IMPORT_ROOTS"),
        ),
        ({"dataset": "exp", "path": f"{tmp_path}/out/../x.jsonl"}, ("'path'", "must not contain '..'")),
        ({"dataset": "exp", "path": str(tmp_path / "nodir" / "x.jsonl")}, ("'path'", "does not exist", "Create it")),
        ({"dataset": "exp", "path": str(existing)}, ("'path'", "already exists", "never overwrites", "new file name")),
        ({"dataset": "exp", "path": str(tmp_path / "out")}, ("'path'", "ending in .jsonl")),
        ({"dataset": "exp", "path": str(tmp_path / "out" / "x.csv")}, ("'path'", "ending in .jsonl")),
    ]
    for arguments, words in cases:
        message = await failing(client, home, "export_dataset", **arguments)
        assert_words(message, *words)
    assert not outside.exists()
    assert existing.read_text(encoding="utf-8") == "keep me\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["existing.jsonl"]
    assert not (tmp_path / "nodir").exists()


# --- the tool surface -----------------------------------------------------------------------------


async def test_dataset_tools_are_listed_with_annotations(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    expected = {
        "create_dataset": (False, False),
        "add_examples": (False, False),
        "list_datasets": (True, False),
        "get_dataset": (True, False),
        "delete_dataset": (False, True),
        "export_dataset": (False, False),
    }
    for name, (read_only, destructive) in expected.items():
        annotations = tools[name].annotations
        assert annotations is not None, name
        assert (annotations.read_only_hint, annotations.destructive_hint) == (read_only, destructive), name
        assert tools[name].description
        assert tools[name].output_schema is not None, name
