"""The MCP Bundle (`python -m server.bundle` -> nanodistill.mcpb): its manifest passes mcpb's validator, and
the packed file, unpacked as a host does, starts its own copy of the server over stdio."""

from __future__ import annotations

import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from nanodistill.teacher.keys import PROVIDER_KEY_ENVS
from server.bundle import MANIFEST, MCPB, manifest, pack, project
from tests.mcp_helpers import call, call_error

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        shutil.which("node") is None or not MCPB.is_file(),
        reason="the bundle tests need Node.js and mcpb: run `npm ci --prefix bundle`",
    ),
]

SEEDS = [{"input": f"question {i}", "output": f"answer {i}"} for i in range(12)]
CLAUDE_TEACHER = "anthropic/claude-3-5-haiku-latest"
PLACEHOLDER = re.compile(r"\$\{user_config\.([^}]+)\}")


def mcpb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MCPB), *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle packed by our script, then unpacked with mcpb as a host installs it."""
    folder = tmp_path_factory.mktemp("mcpb")
    bundle = pack(folder / "nanodistill.mcpb")
    done = mcpb("unpack", str(bundle), str(folder / "installed"))
    assert done.returncode == 0, done.stdout + done.stderr
    return folder / "installed"


def host_env(declared: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    """The environment a host gives the server: the manifest's mcp_config.env with each
    `${user_config.x}` replaced by the user's value, or the field's default when left alone."""
    fields = declared["user_config"]
    chosen = {name: values.get(name, str(field.get("default", ""))) for name, field in fields.items()}
    env = declared["server"]["mcp_config"]["env"]
    return {name: PLACEHOLDER.sub(lambda m: chosen[m.group(1)], value) for name, value in env.items()}


def field_of(value: str) -> str:
    """The user_config field an env entry carries; each entry is exactly one field."""
    match = PLACEHOLDER.fullmatch(value)
    assert match, f"{value!r} is not one ${{user_config.x}} placeholder"
    return match.group(1)


def test_manifest_passes_mcpb_validate() -> None:
    done = mcpb("validate", str(MANIFEST))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passes" in done.stdout


def test_manifest_version_and_dependencies_are_pyprojects(unpacked: Path) -> None:
    source = project()
    assert manifest()["version"] == source["version"]
    with (unpacked / "pyproject.toml").open("rb") as file:
        shipped = tomllib.load(file)
    assert shipped["project"]["dependencies"] == source["dependencies"]
    assert shipped["project"]["requires-python"] == source["requires-python"]
    assert shipped["tool"]["uv"]["package"] is False
    assert (unpacked / "manifest.json").read_text(encoding="utf-8") == MANIFEST.read_text(encoding="utf-8")


def test_user_config_asks_for_teacher_keys_as_secrets_and_for_the_data_folder() -> None:
    declared = manifest()
    fields = declared["user_config"]
    env = declared["server"]["mcp_config"]["env"]
    used = {name: field_of(value) for name, value in env.items()}
    keys = {name: field for name, field in used.items() if name.endswith("_API_KEY")}
    assert keys and set(keys) <= PROVIDER_KEY_ENVS
    for field in keys.values():
        assert fields[field]["type"] == "string"
        assert fields[field]["sensitive"] is True
        assert fields[field]["required"] is False
    data_folder = fields[used["NANODISTILL_HOME"]]
    assert data_folder["type"] == "directory"
    assert data_folder["default"] == "${HOME}/.nanodistill"
    assert set(used.values()) == set(fields), "every user_config field reaches the server"


async def test_packed_bundle_starts_its_own_code_over_stdio(unpacked: Path, client: Client, tmp_path: Path) -> None:
    """The unpacked entry point, run with an interpreter that cannot import the repository's nanodistill
        (`-S` skips the editable install's hook; the dependencies come from site-packages), answers tools/list
        with the in-process server's tools, keeps its state in the data folder the user chose, and treats a key
    left empty as no key."""
    # Every site folder (a venv with system site packages has two), without the .pth hooks -S skips.
    libraries = {*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    isolated = {"PYTHONPATH": ":".join(sorted(libraries))}
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    probe = [sys.executable, "-S", "-c", "import nanodistill"]
    assert subprocess.run(probe, env=isolated, cwd=elsewhere, capture_output=True, check=False).returncode != 0

    data_folder = tmp_path / "chosen data"
    env = host_env(manifest(), {"data_folder": str(data_folder)}) | isolated
    assert env["OPENAI_API_KEY"] == ""  # a key the user left empty arrives blank
    env["ANTHROPIC_API_KEY"] = "${user_config.anthropic_api_key}"  # or unreplaced, from a less careful host
    params = StdioServerParameters(
        command=sys.executable, args=["-S", str(unpacked / "launch.py")], env=env, cwd=str(elsewhere)
    )
    async with Client(params, read_timeout_seconds=120) as bundled:
        tools = {tool.name for tool in (await bundled.list_tools()).tools}
        await call(bundled, "create_dataset", name="seeds", examples=SEEDS, instruction="Answer.")
        refused = await call_error(bundled, "amplify_dataset", dataset="seeds", teacher=CLAUDE_TEACHER)
        assert "needs an API key" in refused and "ANTHROPIC_API_KEY" in refused
    expected = {tool.name for tool in (await client.list_tools()).tools}
    assert tools == expected
    assert (data_folder / "nanodistill.db").is_file()
