"""`python -m server.bundle`: pack nanodistill as an MCP Bundle, `dist/nanodistill.mcpb`, which a user
installs in Claude Desktop by opening it.

The bundle uses mcpb's `uv` server type: it carries our sources, bundle/manifest.json, bundle/launch.py
and a pyproject listing the dependencies, and the host runs `uv run`, which fetches a Python (3.11, the
version we test) and installs the dependencies for the user's own machine on first start. The other
choice, a `python` bundle with the dependencies vendored into lib/, would weigh hundreds of MB (MLX,
LiteLLM, numpy, matplotlib), hold compiled wheels for one platform and Python only, and still need a
matching Python on the user's Mac; `uv` keeps the bundle to a few hundred KB and works on any Mac.

The packing itself is mcpb's CLI, pinned in bundle/package.json: `npm ci --prefix bundle` first.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BUNDLE_SOURCES = REPO / "bundle"
MANIFEST = BUNDLE_SOURCES / "manifest.json"
MCPB = BUNDLE_SOURCES / "node_modules" / ".bin" / "mcpb"
OUTPUT = REPO / "dist" / "nanodistill.mcpb"
PACKAGES = ("nanodistill", "server", "tools", "resources")
PYTHON_VERSION = "3.11"
"""The Python the bundle asks uv for (`.python-version`): the one CI tests."""


class BundleError(Exception):
    """Packing cannot go on; the message says what to fix."""


def project() -> dict[str, Any]:
    """The `[project]` table of the repository's pyproject.toml."""
    with (REPO / "pyproject.toml").open("rb") as file:
        table: dict[str, Any] = tomllib.load(file)["project"]
    return table


def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return loaded


def bundle_pyproject(source: dict[str, Any]) -> str:
    """A pyproject for uv that installs the dependencies only (`package = false`): launch.py imports
    the sources from the bundle itself, so nothing is built on the user's machine."""
    dependencies = "".join(f"    {json.dumps(dependency)},\n" for dependency in source["dependencies"])
    return (
        "[project]\n"
        f"name = {json.dumps(source['name'])}\n"
        f"version = {json.dumps(source['version'])}\n"
        f"requires-python = {json.dumps(source['requires-python'])}\n"
        f"dependencies = [\n{dependencies}]\n\n"
        "[tool.uv]\n"
        "package = false\n"
    )


def check_version(bundle: dict[str, Any], source: dict[str, Any]) -> None:
    if bundle["version"] != source["version"]:
        raise BundleError(
            f"bundle/manifest.json has version {bundle['version']} but pyproject.toml has {source['version']}: "
            "set the manifest's version to pyproject's"
        )


def stage(target: Path) -> Path:
    """Lay out the bundle's files in `target`: manifest, entry point, uv project, our packages."""
    source = project()
    check_version(manifest(), source)
    target.mkdir(parents=True)
    shutil.copy2(MANIFEST, target / "manifest.json")
    shutil.copy2(BUNDLE_SOURCES / "launch.py", target / "launch.py")
    (target / "pyproject.toml").write_text(bundle_pyproject(source), encoding="utf-8")
    (target / ".python-version").write_text(PYTHON_VERSION + "\n", encoding="utf-8")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for package in PACKAGES:
        shutil.copytree(REPO / package, target / package, ignore=skip)
    return target


def mcpb(*args: str) -> str:
    """Run the pinned mcpb CLI; its output, or a BundleError with it."""
    if not MCPB.is_file():
        raise BundleError(f"the mcpb CLI is not installed at {MCPB}: run `npm ci --prefix bundle` (needs Node.js)")
    done = subprocess.run([str(MCPB), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BundleError(f"mcpb {args[0]} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def pack(output: Path = OUTPUT) -> Path:
    """Stage the bundle in a temporary folder, validate its manifest and pack it into `output`."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="nanodistill-mcpb-") as temp:
        staged = stage(Path(temp) / "nanodistill")
        mcpb("validate", str(staged / "manifest.json"))
        mcpb("pack", str(staged), str(output))
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.bundle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where to write the bundle (default {OUTPUT})")
    args = parser.parse_args(argv)
    try:
        written = pack(args.output.resolve())
    except BundleError as exc:
        print(f"python -m server.bundle: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {written} ({written.stat().st_size // 1024} KiB): open it in Claude Desktop to install")
    return 0


if __name__ == "__main__":
    sys.exit(main())
