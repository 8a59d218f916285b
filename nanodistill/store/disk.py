"""A full disk or a read-only folder, told as such: which folder, how much space is left, what to do.

SQLite reports these as SQLITE_FULL (ENOSPC), SQLITE_READONLY (EROFS) or a failed write (EFBIG,
EDQUOT); the operating system as OSError. Both become one NanodistillError a user can act on.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nanodistill.errors import NanodistillError

DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG}
_SQLITE_WRITE_FAILURES = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR_WRITE", "SQLITE_IOERR_FSYNC")


def is_disk_error(exc: BaseException) -> bool:
    """True when a write failed for want of space or permission to write, not for a bug."""
    if isinstance(exc, OSError):
        return exc.errno in DISK_ERRNOS
    if isinstance(exc, sqlite3.OperationalError):
        name = getattr(exc, "sqlite_errorname", "")
        return name.startswith(_SQLITE_WRITE_FAILURES)
    return False


def free_space(folder: Path) -> str:
    """The free space on the disk that holds `folder`, e.g. '1.2 MiB', or 'unknown'."""
    for candidate in (folder, *folder.parents):
        try:
            free = float(shutil.disk_usage(candidate).free)
        except OSError:
            continue
        for unit in ("bytes", "KiB", "MiB", "GiB"):
            if free < 1024 or unit == "GiB":
                return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
            free /= 1024
    return "unknown"


def failed_folder(exc: BaseException, default: Path) -> Path:
    """The folder of the file a write failed on when the error names one (an OSError), else `default`."""
    name = getattr(exc, "filename", None)
    return Path(name).parent if isinstance(name, str) else default


def disk_error(exc: BaseException, folder: Path, then: str = "try again") -> NanodistillError:
    """The readable form of a failed write under `folder`; `then` says what to do once space is back."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return NanodistillError(
        f"could not write to {str(folder)!r} ({reason}; {free_space(folder)} free on that disk): the disk is "
        f"full or the folder is read-only. Free some space or make the folder writable, then {then}."
    )


@contextmanager
def readable_disk_errors(folder: Path, then: str = "try again") -> Iterator[None]:
    """Turn a full disk or read-only folder met inside the block into `disk_error`, naming the folder of the
    file that failed or else `folder`; other errors pass."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as exc:
        if not is_disk_error(exc):
            raise
        raise disk_error(exc, failed_folder(exc, folder), then) from None
