"""`nanodistill-mcp`: run the server over stdio (default) or streamable HTTP."""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import threading
from pathlib import Path

from nanodistill.settings import Settings, load_settings
from nanodistill.store.db import check_writable
from server.loopback import is_loopback


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nanodistill-mcp", description="nanodistill MCP server")
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    return parser.parse_args(argv)


def prepare_fast_blas(settings: Settings) -> None:
    """Give the server's own query path the fast BLAS: re-exec now when it is built and checked,
    else build and check it in the background so job processes and the next start have it."""
    from nanodistill.platform.blas import blas_status, fast_blas_env, reexec_with_fast_blas

    status = blas_status(settings)
    if not (status.applicable and status.enabled):
        return
    if status.self_check == "passed":
        reexec_with_fast_blas(settings)
    elif status.self_check == "not run" and status.compiler:
        threading.Thread(target=fast_blas_env, args=(settings,), daemon=True, name="fast-blas-build").start()


def warm_teacher_imports() -> None:
    """Import LiteLLM in the background once the server is up: startup stays fast, and the first
    amplify_dataset call (which checks the teacher through LiteLLM) does not pay seconds for it."""
    from nanodistill.teacher.provider import load_litellm

    load_litellm()


def home_message(folder: Path | str, reason: str) -> str:
    return (
        f"nanodistill-mcp: cannot keep state in the home folder {folder}: {reason}. Set NANODISTILL_HOME "
        "to a folder this user can create and write (default ~/.nanodistill), or fix its permissions."
    )


def home_problem(settings: Settings) -> str | None:
    """Open the database and take its write lock before serving: failing inside the stdio session
    instead leaves the host waiting on a server that will never answer."""
    try:
        check_writable(settings.db_path)
    except sqlite3.Error as exc:
        return home_message(settings.home, f"the database {settings.db_path} cannot be opened or written ({exc})")
    except OSError as exc:
        return home_message(settings.home, exc.strerror or str(exc))
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except OSError as exc:
        folder = exc.filename or os.environ.get("NANODISTILL_HOME") or "~/.nanodistill"
        print(home_message(folder, exc.strerror or str(exc)), file=sys.stderr)
        return 2
    if problem := home_problem(settings):
        print(problem, file=sys.stderr)
        return 2
    if args.transport == "http" and not is_loopback(args.host) and not settings.token:
        print(
            f"nanodistill-mcp: refusing to listen on {args.host} without a token. Set NANODISTILL_TOKEN "
            "to a long random secret (clients send it as 'Authorization: Bearer <token>'), or bind to "
            "127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    prepare_fast_blas(settings)
    warm = threading.Timer(1.0, warm_teacher_imports)
    warm.daemon = True
    warm.start()
    from server.app import build_server

    app = build_server(settings)
    if args.transport == "stdio":
        from server.stdio import serve_stdio

        asyncio.run(serve_stdio(app))
        return 0
    from server.http import serve_http

    serve_http(app, settings, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
