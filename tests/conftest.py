"""Shared fixtures: an isolated home folder per test and an in-memory MCP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client

from server.app import build_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """NANODISTILL_HOME in a temp folder; files under tmp_path may be imported."""
    path = tmp_path / "home"
    monkeypatch.setenv("NANODISTILL_HOME", str(path))
    monkeypatch.setenv("NANODISTILL_IMPORT_ROOTS", str(tmp_path))
    return path


@pytest.fixture
async def client(home: Path) -> AsyncIterator[Client]:
    async with Client(build_server()) as connected:
        yield connected
