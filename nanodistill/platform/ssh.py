"""Running a shell script on another machine with the system's own `ssh`, never asking a person.

BatchMode makes a missing key fail at once instead of waiting for a password nobody will type, and
every failure becomes one error that names the host and says what to change.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from nanodistill.errors import NanodistillError

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
SSH_FAILED = 255  # ssh's own exit status when it could not connect or log in


@dataclass(frozen=True)
class SshOptions:
    """How to reach the hosts: what `ssh -F/-p/-i/-l` would say; unset fields leave ssh_config's word."""

    config_file: Path | None = None
    port: int | None = None
    identity_file: Path | None = None
    user: str | None = None
    connect_timeout_s: int = 10


def is_local(host: str) -> bool:
    """Whether `host` names this machine itself (its rank runs here, nothing is copied)."""
    return host.rpartition("@")[2] in LOCAL_HOSTS


def ssh_argv(host: str, options: SshOptions, script: str) -> list[str]:
    """The `ssh` command line that runs `script` with `sh` on `host` (whatever the login shell is)."""
    argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={options.connect_timeout_s}"]
    argv += ["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]  # a dead link fails, never hangs
    if options.config_file is not None:
        argv += ["-F", str(options.config_file)]
    if options.port is not None:
        argv += ["-p", str(options.port)]
    if options.identity_file is not None:
        argv += ["-i", str(options.identity_file), "-o", "IdentitiesOnly=yes"]
    if options.user is not None:
        argv += ["-l", options.user]
    return [*argv, "--", host, "sh -c " + shlex.quote(script)]


def _fix(host: str, reason: str) -> str:
    """What to change for an ssh failure, from ssh's own words."""
    if "Permission denied" in reason:
        return f"Add your public key to {host}'s ~/.ssh/authorized_keys or name an identity file."
    if "Host key verification failed" in reason or "REMOTE HOST IDENTIFICATION HAS CHANGED" in reason:
        return f"Run `ssh {host}` once by hand to check and accept its host key (batch mode cannot ask)."
    if "Could not resolve" in reason:
        return f"Check the name {host!r}, or give it a HostName in your ssh config."
    if "Connection refused" in reason:
        return f"Start sshd on {host}, or name the port it listens on."
    if "timed out" in reason or "No route to host" in reason:
        return f"Check that {host} is up and reachable from this machine (network, firewall, VPN)."
    return f"Check that `ssh {host} true` works from this machine without a password prompt."


def unreachable(host: str, stderr: str) -> NanodistillError:
    """The error for an ssh that could not connect or log in: the host, ssh's reason, the fix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("Warning:")]
    reason = lines[-1] if lines else "ssh exited without saying why"
    reason = reason.removeprefix("ssh: ")
    return NanodistillError(f"cannot reach {host} over ssh: {reason}. {_fix(host, reason)}")


def run_remote(host: str, options: SshOptions, script: str, *, timeout_s: float = 120) -> str:
    """Run `script` on `host` and return its stdout; a failed login or a failed script raises."""
    try:
        proc = subprocess.run(
            ssh_argv(host, options, script),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        raise NanodistillError("no `ssh` command on this machine: install the OpenSSH client.") from None
    except subprocess.TimeoutExpired:
        raise NanodistillError(
            f"{host} did not answer over ssh within {timeout_s:.0f} s; check it is not overloaded."
        ) from None
    return checked_output(host, proc.returncode, proc.stdout, proc.stderr)


def stream_to_remote(host: str, options: SshOptions, script: str, write: Callable[[IO[bytes]], None]) -> str:
    """Run `script` on `host` with what `write` writes as its stdin (no time limit: a big model takes
    what it takes; ServerAlive ends a dead link); return its stdout, or raise like `run_remote`."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(ssh_argv(host, options, script), stdin=subprocess.PIPE, stdout=out, stderr=err)
        except FileNotFoundError:
            raise NanodistillError("no `ssh` command on this machine: install the OpenSSH client.") from None
        assert proc.stdin is not None
        try:
            with proc.stdin:
                write(proc.stdin)
        except BrokenPipeError:
            pass  # the remote side stopped reading: its exit status and stderr say why
        finally:
            code = proc.wait()  # a failed write closed stdin, so the remote side ends too
        out.seek(0)
        err.seek(0)
        return checked_output(host, code, out.read(), err.read())


def checked_output(host: str, code: int, stdout: bytes, stderr: bytes) -> str:
    """stdout of a finished ssh, or the error: ssh's own failure, or the remote script's."""
    err = stderr.decode(errors="replace")
    if code == SSH_FAILED:
        raise unreachable(host, err)
    if code != 0:
        tail = err.strip()[-400:] or "no message"
        raise NanodistillError(f"on {host}, a command run over ssh failed (exit {code}): {tail}")
    return stdout.decode(errors="replace")


def quoted(words: Sequence[str]) -> str:
    """Words as one shell-safe string."""
    return " ".join(shlex.quote(word) for word in words)
