"""Where nanodistill keeps its state, read once from the environment.

Everything lives under one home folder (``NANODISTILL_HOME``, default ``~/.nanodistill``):
the SQLite database and an ``artifacts/`` tree of files named by engine-generated ids.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() not in {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Settings:
    home: Path
    import_roots: tuple[Path, ...]
    token: str | None = None
    model_cache_size: int = 2
    fast_blas: bool = True

    @property
    def db_path(self) -> Path:
        return self.home / "nanodistill.db"

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"

    def artifact_dir(self, *parts: str) -> Path:
        """A folder under artifacts, created on demand; parts are engine ids, never user strings."""
        path = self.artifacts.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path


def load_settings() -> Settings:
    """Read the settings from the environment (called per process, cheap)."""
    home = Path(os.environ.get("NANODISTILL_HOME") or "~/.nanodistill").expanduser().resolve()
    roots_env = os.environ.get("NANODISTILL_IMPORT_ROOTS")
    if roots_env:
        roots = tuple(Path(p).expanduser().resolve() for p in roots_env.split(os.pathsep) if p)
    else:
        roots = (home, Path.cwd().resolve())
    home.mkdir(parents=True, exist_ok=True)
    return Settings(
        home=home,
        import_roots=roots,
        token=os.environ.get("NANODISTILL_TOKEN") or None,
        model_cache_size=int(os.environ.get("NANODISTILL_MODEL_CACHE", "2")),
        fast_blas=_env_flag("NANODISTILL_FAST_BLAS", True),
    )
