"""File reach: which files a client can make the server read or write, and what its errors give away.

The desktop case first: a host starts the server in `/` with no NANODISTILL_IMPORT_ROOTS. The
allowed folders are then the user's home (HOME points into tmp_path here) and the server's own
artifacts, never the working directory. A local client that declares MCP roots gets exactly those;
an HTTP client never widens the operator's folders. A path outside them gets one error whatever is
there (a secret file, a folder, nothing), and it is never opened.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from server.app import build_server
from tests.mcp_helpers import call, call_error
from tests.test_transports import REPO, http_server, server_command

pytestmark = pytest.mark.anyio

SEEDS = [{"input": f"question {i}", "output": f"answer {i}"} for i in range(12)]
DISTILL = {"name": "x", "instruction": "Answer."}
OUTSIDE_WORDS = ("outside the allowed folders", "NANODISTILL_IMPORT_ROOTS", "root")
# What an error about a path outside the allowed folders must never say: that would tell whether it exists.
TELLING = ("does not exist", "no file", "not a model folder", "already exists", "unknown file type", "config.json")


def user_home(tmp_path: Path) -> Path:
    folder = tmp_path / "user"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def desktop(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A server process as a desktop host starts it: working directory `/`, no NANODISTILL_IMPORT_ROOTS,
    the user's home in tmp_path. Returns the user's home."""
    user = user_home(tmp_path)
    monkeypatch.delenv("NANODISTILL_IMPORT_ROOTS")
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.chdir("/")
    return user


@pytest.fixture
async def desktop_client(desktop: Path) -> AsyncIterator[Client]:
    async with Client(build_server()) as connected:
        await call(connected, "create_dataset", name="d", examples=SEEDS, instruction="Answer.")
        yield connected


def roots_answer(*folders: Path) -> Any:
    """A client's roots/list handler declaring `folders`."""

    async def answer(_context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri=folder.as_uri(), name=folder.name) for folder in folders])

    return answer


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def assert_outside(message: str, given: str) -> None:
    for words in OUTSIDE_WORDS:
        assert words in message, f"{words!r} not in {message!r}"
    for words in TELLING:
        assert words not in message, f"{words!r} tells about {given!r}: {message!r}"


# --- the desktop case: working directory `/`, default folders ------------------------------------


async def test_a_server_started_in_root_reads_no_system_file(desktop_client: Client, desktop: Path) -> None:
    client = desktop_client
    for path in ("/etc/passwd", "etc/passwd"):
        assert_outside(await call_error(client, "create_dataset", name="x", path=path), path)
        assert_outside(await call_error(client, "add_examples", dataset="d", path=path), path)
    for model in ("/etc/passwd", "/etc", "/etc/passwd.gguf"):
        assert_outside(await call_error(client, "import_model", source=model), model)
        assert_outside(await call_error(client, "query_student", model=model, prompt="hi"), model)
        assert_outside(await call_error(client, "train_student", dataset="d", base_model=model), model)
        assert_outside(
            await call_error(client, "distill", **DISTILL, seeds=SEEDS, training_data=SEEDS, student=model),
            model,
        )
    # The user's home is allowed by default; the artifacts of the server too (a default export lands there).
    own = write_jsonl(desktop / "data" / "seeds.jsonl", SEEDS)
    assert (await call(client, "create_dataset", name="mine", path=str(own)))["added"] == 12
    exported = await call(client, "export_dataset", dataset="mine")
    assert (await call(client, "create_dataset", name="again", path=exported["path"]))["added"] == 12
    written = await call(client, "export_dataset", dataset="mine", path=str(desktop / "data" / "out.jsonl"))
    assert written["rows"] == 12


async def test_outside_errors_are_the_same_whether_or_not_the_path_exists(
    desktop_client: Client, tmp_path: Path
) -> None:
    client = desktop_client
    elsewhere = tmp_path / "elsewhere"
    victim = write_jsonl(elsewhere / "victim.jsonl", SEEDS)
    (elsewhere / "model").mkdir()
    (elsewhere / "model" / "config.json").write_text("{}", encoding="utf-8")
    file_pairs = [("/etc/shadow", "/etc/no-such-file"), (str(victim), str(elsewhere / "none.jsonl"))]
    model_pairs = [*file_pairs, ("/etc", "/no-such-folder"), (str(elsewhere / "model"), str(elsewhere / "gone"))]
    calls: list[tuple[str, dict[str, Any], str, list[tuple[str, str]]]] = [
        ("create_dataset", {"name": "x"}, "path", file_pairs),
        ("add_examples", {"dataset": "d"}, "path", file_pairs),
        ("export_dataset", {"dataset": "d"}, "path", [(str(victim), str(elsewhere / "none" / "x.jsonl"))]),
        ("distill", {**DISTILL, "training_data": SEEDS}, "path", file_pairs),
        ("distill", {**DISTILL, "seeds": SEEDS}, "training_data", file_pairs),
        ("distill", {**DISTILL, "seeds": SEEDS, "training_data": SEEDS}, "student", model_pairs),
        ("train_student", {"dataset": "d"}, "base_model", model_pairs),
        ("import_model", {}, "source", model_pairs),
        ("query_student", {"prompt": "hi"}, "model", model_pairs),
    ]
    for tool, arguments, field, pairs in calls:
        for there, missing in pairs:
            seen = await call_error(client, tool, **arguments, **{field: there})
            unseen = await call_error(client, tool, **arguments, **{field: missing})
            assert_outside(seen, there)
            assert seen.replace(there, "PATH") == unseen.replace(missing, "PATH"), (tool, field, seen, unseen)
    assert victim.read_text(encoding="utf-8").count("\n") == len(SEEDS)


async def test_a_csv_outside_is_refused_without_a_word_of_it(desktop_client: Client, tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere" / "secrets.csv"
    secret.parent.mkdir()
    secret.write_text("aws_secret_access_key,hunter2\nAKIA,x\n", encoding="utf-8")
    for tool, arguments in (("create_dataset", {"name": "x"}), ("add_examples", {"dataset": "d"})):
        message = await call_error(desktop_client, tool, **arguments, path=str(secret))
        assert_outside(message, str(secret))
        assert "aws_secret" not in message and "hunter2" not in message and "AKIA" not in message


async def test_a_symlink_inside_to_a_file_outside_is_outside(desktop_client: Client, desktop: Path) -> None:
    link = desktop / "data" / "passwd.jsonl"
    link.symlink_to("/etc/passwd")
    message = await call_error(desktop_client, "create_dataset", name="x", path=str(link))
    assert_outside(message, str(link))
    assert "/etc/passwd" not in message  # the link's target is not shown either


async def test_model_references_obey_the_operators_folders(client: Client, tmp_path: Path) -> None:
    """conftest's server: NANODISTILL_IMPORT_ROOTS is tmp_path. Model paths used to skip that check."""
    await call(client, "create_dataset", name="d", examples=SEEDS)
    for model in ("/etc", "/etc/shadow", "/etc/no-such.gguf", str(tmp_path.parent)):
        assert_outside(await call_error(client, "import_model", source=model), model)
        assert_outside(await call_error(client, "train_student", dataset="d", base_model=model), model)
        assert_outside(await call_error(client, "query_student", model=model, prompt="hi"), model)
        assert_outside(
            await call_error(client, "distill", **DISTILL, seeds=SEEDS, training_data=SEEDS, student=model), model
        )
    assert "no GGUF file" in await call_error(client, "import_model", source=str(tmp_path / "none.gguf"))


# --- roots a local client declares ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_clients_roots_are_its_reach(desktop: Path, tmp_path: Path, mode: str) -> None:
    project = tmp_path / "project"
    inside = write_jsonl(project / "seeds.jsonl", SEEDS)
    in_home = write_jsonl(desktop / "data" / "seeds.jsonl", SEEDS)
    async with Client(build_server(), list_roots_callback=roots_answer(project), mode=mode) as client:
        assert (await call(client, "create_dataset", name="d", path=str(inside)))["added"] == 12
        # The user's home is allowed by default, but this client named its own roots: only those.
        assert_outside(await call_error(client, "create_dataset", name="x", path=str(in_home)), str(in_home))
        assert_outside(await call_error(client, "add_examples", dataset="d", path="/etc/passwd"), "/etc/passwd")
        exported = await call(client, "export_dataset", dataset="d", path=str(project / "out.jsonl"))
        assert exported["rows"] == 12
        outside_export = str(desktop / "data" / "out.jsonl")
        assert_outside(await call_error(client, "export_dataset", dataset="d", path=outside_export), outside_export)
        # Models too: inside, the error may be precise; outside, it is the outside error.
        gguf = project / "missing.gguf"
        assert "no GGUF file" in await call_error(client, "import_model", source=str(gguf))
        home_gguf = str(desktop / "data" / "model.gguf")
        assert_outside(await call_error(client, "import_model", source=home_gguf), home_gguf)
        assert_outside(await call_error(client, "train_student", dataset="d", base_model=str(desktop)), str(desktop))


# --- real processes: a desktop host over stdio, a remote client over HTTP ------------------------


def process_env(tmp_path: Path) -> dict[str, str]:
    """The default folders (no NANODISTILL_IMPORT_ROOTS), HOME in tmp_path, and this checkout's code
    first on the path: started in `/`, the process would otherwise import whatever copy is installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANODISTILL_")}
    path = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.update(NANODISTILL_HOME=str(tmp_path / "home"), HOME=str(user_home(tmp_path)), PYTHONPATH=path)
    return env


async def test_stdio_server_started_in_root(tmp_path: Path) -> None:
    project = tmp_path / "project"
    inside = write_jsonl(project / "seeds.jsonl", SEEDS)
    command = server_command()
    params = StdioServerParameters(command=command[0], args=command[1:], env=process_env(tmp_path), cwd="/")
    async with Client(params, read_timeout_seconds=60, list_roots_callback=roots_answer(project)) as client:
        assert (await call(client, "create_dataset", name="d", path=str(inside)))["added"] == 12
        for path in ("/etc/passwd", "etc/passwd"):
            assert_outside(await call_error(client, "add_examples", dataset="d", path=path), path)
        assert_outside(await call_error(client, "import_model", source="/etc/passwd"), "/etc/passwd")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_http_client_roots_do_not_widen_reach(tmp_path: Path, mode: str) -> None:
    elsewhere = write_jsonl(tmp_path / "elsewhere" / "seeds.jsonl", SEEDS)
    in_home = write_jsonl(user_home(tmp_path) / "data" / "seeds.jsonl", SEEDS)
    asked: list[int] = []
    declare = roots_answer(Path("/"), elsewhere.parent)

    async def counting(context: Any) -> types.ListRootsResult:
        asked.append(1)
        result: types.ListRootsResult = await declare(context)
        return result

    with http_server(tmp_path, cwd="/", environment=process_env(tmp_path)) as url:
        async with Client(url, list_roots_callback=counting, mode=mode) as client:
            for path in (str(elsewhere), "/etc/passwd", "etc/passwd"):
                assert_outside(await call_error(client, "create_dataset", name="x", path=path), path)
            assert_outside(await call_error(client, "import_model", source="/etc/passwd"), "/etc/passwd")
            assert_outside(await call_error(client, "query_student", model="/etc", prompt="hi"), "/etc")
            # The operator's folders (here the default, the user's home) still serve.
            assert (await call(client, "create_dataset", name="d", path=str(in_home)))["added"] == 12
    assert not asked, "an HTTP client was asked for its roots"
