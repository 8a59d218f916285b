"""The stdio server as a host drives it, byte by byte: every request line gets an answer, and a home
it cannot use makes it exit with a message instead of hanging."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPLY_S = 5.0
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}


class RawServer:
    """A `python -m server.main` process spoken to in raw JSON-RPC lines."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def send(self, line: str | bytes) -> None:
        assert self.process.stdin is not None
        data = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
        self.process.stdin.write(data.rstrip(b"\n") + b"\n")
        self.process.stdin.flush()

    def reply(self, timeout_s: float = REPLY_S) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no reply within {timeout_s} s") from None
        message: dict[str, Any] = json.loads(line)
        return message


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANODISTILL_")}
    env.update(NANODISTILL_HOME=str(home), NANODISTILL_IMPORT_ROOTS=str(home.parent))
    return env


@contextmanager
def raw_server(home: Path) -> Iterator[RawServer]:
    process = subprocess.Popen(
        [sys.executable, "-m", "server.main"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env_for(home),
        cwd=str(Path(__file__).absolute().parent.parent),
    )
    try:
        server = RawServer(process)
        server.send(json.dumps(INITIALIZE))
        assert server.reply(timeout_s=60)["id"] == 0  # a cold start imports the server first
        server.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        yield server
    finally:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawServer]:
    with raw_server(tmp_path_factory.mktemp("stdio") / "home") as running:
        yield running


def test_a_lone_surrogate_gets_an_error_with_the_request_id(server: RawServer) -> None:
    line = '{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "get_dataset", '
    server.send(line + '"arguments": {"dataset": "\\ud800"}}}')
    reply = server.reply()
    assert reply["id"] == 7
    assert reply["error"]["code"] == -32602
    assert "surrogate" in reply["error"]["message"]


@pytest.mark.parametrize("depth", [250, 5000])
def test_deep_nesting_gets_an_error_with_the_request_id(server: RawServer, depth: int) -> None:
    deep = "[" * depth + "]" * depth
    server.send(f'{{"jsonrpc": "2.0", "method": "tools/call", "params": {{"name": "x", "a": {deep}}}, "id": {depth}}}')
    reply = server.reply()
    assert reply["id"] == depth
    assert reply["error"]["code"] == -32602
    assert "nests 200 or more levels deep" in reply["error"]["message"]


def test_bad_json_inside_params_gets_an_error_with_the_request_id(server: RawServer) -> None:
    server.send('{"jsonrpc": "2.0", "id": 13, "method": "ping", "params": {"x": "\\q"}}')
    reply = server.reply()
    assert (reply["id"], reply["error"]["code"]) == (13, -32602)
    assert "not valid JSON" in reply["error"]["message"]


def test_nan_in_an_argument_gets_a_readable_error(server: RawServer) -> None:
    params = '{"name": "get_dataset", "arguments": {"dataset": "n", "sample": NaN}}'
    server.send(f'{{"jsonrpc": "2.0", "id": 14, "method": "tools/call", "params": {params}}}')
    reply = server.reply()
    assert reply["result"]["isError"]
    assert "'sample' is nan; give a finite number" in reply["result"]["content"][0]["text"]


def test_a_request_without_a_method_is_an_invalid_request(server: RawServer) -> None:
    server.send('{"jsonrpc": "2.0", "id": "abc"}')
    reply = server.reply()
    assert (reply["id"], reply["error"]["code"]) == ("abc", -32600)


@pytest.mark.parametrize("line", ["not json", '{"jsonrpc": "2.0", "id": 9, "method": ', "[1, 2", '"\\ud800'])
def test_unreadable_json_gets_a_parse_error(server: RawServer, line: str) -> None:
    server.send(line)
    reply = server.reply()
    assert reply["id"] is None
    assert reply["error"]["code"] == -32700


def test_invalid_utf8_gets_an_answer(server: RawServer) -> None:
    server.send(b'{"jsonrpc": "2.0", "id": 10, "method": "ping", "params": {"x": "\xed\xa0\x80\xff"}}')
    assert server.reply()["id"] == 10


def test_the_server_still_answers_after_bad_lines(server: RawServer) -> None:
    server.send('{"jsonrpc": "2.0", "id": 11, "method": "ping"}')
    assert server.reply() == {"jsonrpc": "2.0", "id": 11, "result": {}}


def test_a_bad_line_without_an_id_is_answered_only_when_unreadable(server: RawServer) -> None:
    server.send('{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"x": "\\udfff"}}')
    server.send('{"jsonrpc": "2.0", "id": 12, "method": "ping"}')
    assert server.reply()["id"] == 12


def unusable_home(tmp_path: Path, kind: str) -> Path:
    """A home the server cannot write, in ways that hold even for root."""
    if kind == "database is a folder":
        home = tmp_path / "home"
        (home / "nanodistill.db").mkdir(parents=True)
        return home
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "home"


@pytest.mark.parametrize("kind", ["database is a folder", "home under a file"])
def test_an_unusable_home_exits_with_a_message(tmp_path: Path, kind: str) -> None:
    home = unusable_home(tmp_path, kind)
    done = subprocess.run(
        [sys.executable, "-m", "server.main"],
        input=(json.dumps(INITIALIZE) + "\n").encode(),
        capture_output=True,
        env=env_for(home),
        timeout=30,
        check=False,
    )
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert str(home) in err
    assert "NANODISTILL_HOME" in err
    assert "Traceback" not in err
