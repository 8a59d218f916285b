"""Shared fixtures: an isolated home folder per test and an in-memory MCP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp import Client

from nanodistill.store.db import Store
from nanodistill.testing.teacher_server import TeacherServer, start_teacher_server
from server.app import build_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def blas_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fast-BLAS shim cache for the session: the first job process that runs MLX builds and checks
    the shim there, every later one reuses it, and tests that never run MLX never build it."""
    return tmp_path_factory.mktemp("blas-cache")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blas_cache: Path) -> Path:
    """NANODISTILL_HOME in a temp folder (sharing the session's BLAS shim cache); files under tmp_path may
    be imported."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("NANODISTILL_HOME", str(path))
    monkeypatch.setenv("NANODISTILL_BLAS_CACHE", str(blas_cache))
    monkeypatch.setenv("NANODISTILL_IMPORT_ROOTS", str(tmp_path))
    return path


@pytest.fixture
def server() -> Iterator[TeacherServer]:
    """The local stand-in teacher (OpenAI protocol on 127.0.0.1)."""
    with start_teacher_server() as running:
        yield running


@pytest.fixture
async def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Store]:
    """A store of its own in tmp_path, for engine tests that need no MCP server."""
    monkeypatch.setenv("NANODISTILL_HOME", str(tmp_path))
    opened = await Store.open(tmp_path / "nanodistill.db")
    yield opened
    await opened.close()


@pytest.fixture
async def client(home: Path) -> AsyncIterator[Client]:
    async with Client(build_server()) as connected:
        yield connected
