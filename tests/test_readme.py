"""The README's contract: its two commands match .ci/run, and its reference matches the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.docs import END, README, START, reference

pytestmark = pytest.mark.anyio


def test_the_second_readme_command_is_what_ci_runs() -> None:
    blocks = README.read_text(encoding="utf-8").split("```bash\n")
    test_command = blocks[2].split("```")[0].strip()
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()
    assert blocks[1].split("```")[0].strip() == "python3 -m pip install -e . && nanodistill-mcp"


async def test_the_reference_is_generated_from_the_server(home: Path) -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split(START, 1)[1].split(END, 1)[0]
    assert section.strip() == (await reference()).strip(), "run: python -m server.docs --write"
