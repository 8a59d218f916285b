"""Which folders a request may read and write user files in, and the one check every user path passes.

A desktop host may start the server in `/`, and an HTTP client is remote: so the folders are never
the working directory, a remote client never widens them, and a path outside them gets one error
that names only the rule and how to change it, never whether the path exists or what it holds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from nanodistill.errors import NanodistillError
from nanodistill.settings import Settings


def file_root(uri: str) -> Path | None:
    """The local folder of a `file://` root URI (resolved), or None for any other URI."""
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path:
        return None
    return Path(os.path.realpath(unquote(parts.path)))


def allowed_folders(settings: Settings, client_roots: Sequence[str] | None, *, remote: bool) -> tuple[Path, ...]:
    """The folders one request may touch: the `file://` roots the client declares, when it declares any
    and is local (stdio); else the operator's (`settings.import_roots`). Client roots come with the
    server's own artifacts folder, where fused exports and converted bases live."""
    declared = [] if remote else [path for uri in client_roots or () if (path := file_root(uri)) is not None]
    if not declared:
        return settings.import_roots
    return (*dict.fromkeys(declared), settings.artifacts)


def local_path(text: str | Path) -> Path:
    """Where a user's path points: `~` expanded, relative to the working directory, symlinks resolved
    (expanduser and realpath never raise: an unknown ~user or a symlink loop must not answer differently)."""
    return Path(os.path.realpath(os.path.expanduser(text)))


def is_inside(path: Path, folders: Sequence[Path]) -> bool:
    """Whether a resolved path is one of `folders` or under one (resolve it first: see local_path)."""
    return any(path == folder or path.is_relative_to(folder) for folder in folders)


def outside_error(field: str, text: str, folders: Sequence[Path]) -> NanodistillError:
    """The one error for a path outside the allowed folders: it quotes the path as given (its resolved
    form would show where links outside lead) and says nothing about what is there."""
    shown = ", ".join(str(folder) for folder in folders) or "none"
    return NanodistillError(
        f"'{field}' {text!r} is outside the allowed folders ({shown}). Move it into one of them, declare "
        "its folder as a root in your MCP client (local clients only), or have the server's operator add "
        "it to NANODISTILL_IMPORT_ROOTS."
    )


def checked_path(text: str, folders: Sequence[Path], field: str) -> Path:
    """`text` as a resolved path inside the allowed folders, else the outside error (nothing is read)."""
    path = local_path(text)
    if not is_inside(path, folders):
        raise outside_error(field, text, folders)
    return path
