"""Entry point of the nanodistill MCP Bundle: serve this bundle's own copy of the code over stdio.

The host runs it as `uv run --project <bundle> python <bundle>/launch.py` (see manifest.json): uv
provides Python and the dependencies, this file puts the bundled packages first on the import path,
for the server and for the job processes it starts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

BUNDLE = Path(__file__).resolve().parent


def drop_blank_settings() -> None:
    """Remove the manifest's variables that the user left empty: the host passes '' (or, from some
    hosts, the unreplaced `${user_config.…}` placeholder), which must not stand for a key or a folder."""
    manifest = json.loads((BUNDLE / "manifest.json").read_text(encoding="utf-8"))
    for name in manifest["server"]["mcp_config"].get("env", {}):
        value = os.environ.get(name)
        if value is not None and (not value.strip() or value.startswith("${")):
            del os.environ[name]


def use_bundled_code() -> None:
    """Import nanodistill from this bundle, here and in job processes (`python -m nanodistill.worker`)."""
    sys.path.insert(0, str(BUNDLE))
    inherited = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(BUNDLE), inherited] if inherited else [str(BUNDLE)])


def main() -> int:
    drop_blank_settings()
    use_bundled_code()
    from server.main import main as serve

    return serve(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
