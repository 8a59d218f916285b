"""A real OpenSSH server on 127.0.0.1 for a test: its own host key, one authorised client key, a
free port, and an ssh config whose alias reaches it (`ssh -F config stagehost`).

Skips with the reason (and the install command) where Debian's openssh-server is not there or
cannot run here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
ALIAS = "stagehost"
START_DEADLINE_S = 60
INSTALL = "apt-get install -y openssh-server openssh-client"


@dataclass(frozen=True)
class Sshd:
    """A running server and how to reach it."""

    alias: str
    port: int
    config_file: Path  # the client's ssh config, for `ssh -F`
    identity_file: Path
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _privilege_separation_dir() -> None:
    """sshd refuses to start without /run/sshd; only root can make it (and only root's sshd needs it)."""
    if Path("/run/sshd").is_dir():
        return
    if os.geteuid() != 0:
        pytest.skip("sshd needs /run/sshd, which only root can create here")
    Path("/run/sshd").mkdir(mode=0o755, parents=True)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sshd exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"sshd did not listen on {port} within {START_DEADLINE_S} s: {log.read_text()[-2000:]}")


def run_sshd(folder: Path) -> Iterator[Sshd]:
    """Start sshd with everything under `folder`; yield it; stop it."""
    if not SSHD.exists() or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip(f"OpenSSH server or client not installed (/usr/sbin/sshd, ssh, ssh-keygen): {INSTALL}")
    _privilege_separation_dir()
    folder.mkdir(parents=True, exist_ok=True)
    host_key, client_key = folder / "host_key", folder / "client_key"
    _keygen(host_key)
    _keygen(client_key)
    authorized = folder / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    port = _free_port()
    server_config = folder / "sshd_config"
    server_config.write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {host_key}\nAuthorizedKeysFile {authorized}\n"
        f"PidFile {folder / 'sshd.pid'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        "AcceptEnv LANG LC_*\n"
    )
    client_config = folder / "ssh_config"
    client_config.write_text(
        f"Host {ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n  User {_user()}\n  IdentityFile {client_key}\n"
        "  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    log = folder / "sshd.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(server_config)], stdout=out, stderr=out)
    try:
        _wait_for_port(port, process, log)
        yield Sshd(ALIAS, port, client_config, client_key, process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name
