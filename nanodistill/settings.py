"""Where nanodistill keeps its state, read once from the environment.

Everything lives under one home folder (``NANODISTILL_HOME``, default ``~/.nanodistill``):
the SQLite database and an ``artifacts/`` tree of files named by engine-generated ids. The operator
also sets here the folders user files may be read from and written to (``NANODISTILL_IMPORT_ROOTS``),
which API-key variables a client may name (``NANODISTILL_KEY_ENVS``), which custom teacher URLs may
receive a key (``NANODISTILL_API_BASES``), the HTTP read timeouts, and how training reaches other hosts
(``NANODISTILL_SSH_CONFIG``, ``NANODISTILL_SSH_IDENTITY``, ``NANODISTILL_REMOTE_DIR``): operator settings,
never tool arguments, since a client must not point the server's ssh at a config of its choosing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() not in {"0", "false", "no", "off"}


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def key_envs_from_env() -> tuple[str, ...]:
    """NANODISTILL_KEY_ENVS: the variable names, beyond the provider defaults, a client may name as
    `api_key_env` (comma- or os.pathsep-separated)."""
    raw = os.environ.get("NANODISTILL_KEY_ENVS") or ""
    return tuple(name.strip() for name in re.split(rf"[,{re.escape(os.pathsep)}]", raw) if name.strip())


def api_bases_from_env() -> tuple[str, ...]:
    """NANODISTILL_API_BASES: the custom teacher URLs (prefixes) an API key may be sent to
    (comma- or whitespace-separated: URLs hold the os.pathsep ':')."""
    raw = os.environ.get("NANODISTILL_API_BASES") or ""
    return tuple(url for url in re.split(r"[,\s]+", raw) if url)


def import_roots_from_env(home: Path) -> tuple[Path, ...]:
    """The operator's allowed folders for user files: NANODISTILL_IMPORT_ROOTS (os.pathsep-separated),
    else the user's home folder; always the server's own artifacts folder. Never the working directory:
    a desktop host may start the server in `/`, which would open every file."""
    raw = os.environ.get("NANODISTILL_IMPORT_ROOTS") or ""
    given = [Path(os.path.realpath(os.path.expanduser(p))) for p in raw.split(os.pathsep) if p.strip()]
    if not given:
        user_home = Path(os.path.realpath(os.path.expanduser("~")))
        given = [] if user_home == Path(user_home.anchor) else [user_home]  # a service account's home may be /
    return (*dict.fromkeys(given), home / "artifacts")


@dataclass(frozen=True)
class Settings:
    home: Path
    import_roots: tuple[Path, ...]  # the operator's folders for user files; a request's own: reach.allowed_folders
    token: str | None = None
    model_cache_size: int = 2
    fast_blas: bool = True
    key_envs: tuple[str, ...] = ()
    api_bases: tuple[str, ...] = ()
    http_header_timeout_s: float = 10.0
    http_body_timeout_s: float = 60.0
    blas_cache: Path | None = None
    ssh_config: Path | None = None  # `ssh -F` for staging and for mlx.launch's ssh to remote ranks
    ssh_identity: Path | None = None  # `ssh -i`, likewise
    remote_dir: str | None = None  # the staged folder on remote hosts (absolute, or under their home)

    @property
    def blas_dir(self) -> Path:
        """Where fast-BLAS shims are built and cached (NANODISTILL_BLAS_CACHE, else the home's blas/):
        one build serves every home that shares the folder."""
        return self.blas_cache or self.home / "blas"

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


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def load_settings() -> Settings:
    """Read the settings from the environment (called per process, cheap)."""
    home = Path(os.environ.get("NANODISTILL_HOME") or "~/.nanodistill").expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return Settings(
        home=home,
        import_roots=import_roots_from_env(home),
        token=os.environ.get("NANODISTILL_TOKEN") or None,
        model_cache_size=int(os.environ.get("NANODISTILL_MODEL_CACHE", "2")),
        fast_blas=_env_flag("NANODISTILL_FAST_BLAS", True),
        key_envs=key_envs_from_env(),
        api_bases=api_bases_from_env(),
        http_header_timeout_s=_env_float("NANODISTILL_HTTP_HEADER_TIMEOUT", 10.0),
        http_body_timeout_s=_env_float("NANODISTILL_HTTP_BODY_TIMEOUT", 60.0),
        blas_cache=_env_path("NANODISTILL_BLAS_CACHE"),
        ssh_config=_env_path("NANODISTILL_SSH_CONFIG"),
        ssh_identity=_env_path("NANODISTILL_SSH_IDENTITY"),
        remote_dir=os.environ.get("NANODISTILL_REMOTE_DIR") or None,
    )
