"""Data-parallel training over mlx.distributed: the train job becomes the launcher of its ranks.

The job process starts `mlx.launch` (in a session of its own, so one signal reaches every local rank)
running `python -m nanodistill.train.rank SPEC` once per host. Ranks never open the store: rank 0
appends its reports to `reports.jsonl` and its outcome to `result.json` in the job's `ranks/` folder,
and this side turns them into job events and the result. A cancel becomes a `stop` file that rank 0
reads and every rank agrees on at a step boundary, so all stop after the same step with a checkpoint.
A rank that dies ends the launch; the job then fails naming the rank, its host and how it ended.

mlx.launch reaches a remote host's rank with a bare `ssh HOST CMD`. When the operator names an ssh
config or identity (NANODISTILL_SSH_CONFIG, NANODISTILL_SSH_IDENTITY), the launcher puts an `ssh` first
on mlx.launch's PATH that adds them, so the ranks' ssh reaches the hosts the way staging does.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

from nanodistill.errors import NanodistillError
from nanodistill.platform.ssh import SSH_FAILED, SshOptions, quoted
from nanodistill.reach import checked_path
from nanodistill.settings import Settings
from nanodistill.train.options import TrainOptions
from nanodistill.train.trainer import TrainConfig, TrainResult

LOCAL_HOST = "127.0.0.1"
POLL_S = 0.5
STOP_GRACE_S = 300.0
REPORTS_FILE = "reports.jsonl"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
RANKS_FILE = "ranks.json"
STOP_FILE = "stop"
LAUNCH_LOG = "launch.log"
SSH_WRAPPER_DIR = "bin"  # under ranks/: the `ssh` mlx.launch finds first, when the operator set one up
RANK_MODULE = "nanodistill.train.rank"
_RANK_END = re.compile(r"Node with rank (\d+) (?:exited with code (-?\d+)|was killed)")


class RankSpec(BaseModel):
    """What every rank is told on its command line: the config and where its inputs and outputs are."""

    config: dict[str, Any]
    backend: str
    hosts: list[str]
    base_model: dict[str, str]  # host -> the base model folder as that host sees it
    data_dir: dict[str, str]  # host -> the prepared data folder as that host sees it
    out_dir: str  # rank 0's (local) adapter folder
    ranks_dir: str  # rank 0's (local) exchange folder with the launcher
    launcher_pid: int

    def encoded(self) -> str:
        return base64.urlsafe_b64encode(self.model_dump_json().encode()).decode()

    @classmethod
    def decoded(cls, text: str) -> RankSpec:
        return cls.model_validate_json(base64.urlsafe_b64decode(text.encode()))


def host_list(hosts: list[str] | str, folders: tuple[Path, ...], field: str = "hosts") -> list[str]:
    """The ssh names of the ranks' hosts, in rank order: the list itself, or the hostfile's `ssh` entries."""
    if isinstance(hosts, list):
        return hosts
    try:
        path = checked_path(hosts, folders, field)
        text = path.read_text() if path.is_file() else None
    except NanodistillError:
        raise
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a file that cannot be read
        raise NanodistillError(f"'{field}': the hostfile {hosts!r} cannot be read ({exc}).") from None
    if text is None:
        raise NanodistillError(f"'{field}': the hostfile {hosts!r} is not a file; give a list of hosts or a hostfile.")
    try:
        data = json.loads(text)
        entries = data["hosts"] if isinstance(data, dict) else data
        return [str(entry["ssh"]) for entry in entries]
    except (ValueError, KeyError, TypeError) as exc:
        raise NanodistillError(
            f"'{field}': {hosts!r} is not an mlx.launch hostfile ({type(exc).__name__}: {exc}); it holds "
            '{"hosts": [{"ssh": "name", "ips": ["10.0.0.2"]}, ...]} or just that list.'
        ) from None


def host_problems(opts: TrainOptions, folders: tuple[Path, ...]) -> list[str]:
    """Every problem with `hosts`, `backend` and `shared_folder`, each naming the option and the fix."""
    if opts.hosts is None:
        return []
    try:
        hosts = host_list(opts.hosts, folders)
    except NanodistillError as exc:
        return [str(exc)]
    problems = []
    if not hosts:
        return ["'hosts' is empty; give one host per rank (e.g. ['127.0.0.1', '127.0.0.1'])"]
    if hosts[0] != LOCAL_HOST:
        problems.append(
            f"'hosts': the first host runs rank 0, which writes the job's checkpoints and reports; list this "
            f"machine ({LOCAL_HOST!r}) first, got {hosts[0]!r}"
        )
    if opts.backend == "ring" and isinstance(opts.hosts, list):
        names = [h for h in hosts if not _is_ip(h)]
        if names:
            problems.append(
                f"'hosts': the ring backend connects by IP address, got {', '.join(map(repr, names))}; give IPs, "
                'or a hostfile with "ips" for each host'
            )
    others = hosts[0] == LOCAL_HOST and set(hosts) != {LOCAL_HOST}
    if opts.backend == "ring" and isinstance(opts.hosts, list) and others:
        problems.append(
            f"'hosts': with other machines, rank 0 must listen on an address they reach, not {LOCAL_HOST}; give a "
            f'hostfile whose first entry is {{"ssh": "{LOCAL_HOST}", "ips": ["<this machine\'s LAN IP>"]}}'
        )
    if opts.backend == "mpi" and shutil.which("mpirun") is None:
        problems.append("'backend': mpi needs mpirun (Open MPI) on this machine's PATH; install it or use 'ring'")
    if opts.batch_size % len(hosts):
        problems.append(
            f"'batch_size' ({opts.batch_size}) is split across the {len(hosts)} ranks of 'hosts' and must be a "
            f"multiple of {len(hosts)}"
        )
    if opts.shared_folder is not None:
        try:
            if not checked_path(opts.shared_folder, folders, "shared_folder").is_dir():
                problems.append(f"'shared_folder' {opts.shared_folder!r} is not a folder on this machine")
        except NanodistillError as exc:
            problems.append(str(exc))
        except (OSError, ValueError) as exc:  # a NUL byte, a name too long
            problems.append(f"'shared_folder' {opts.shared_folder!r} cannot be used ({exc})")
    return problems


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def ssh_options(settings: Settings) -> SshOptions:
    """How this server reaches other hosts: the operator's ssh config and identity, else ssh's defaults."""
    return SshOptions(config_file=settings.ssh_config, identity_file=settings.ssh_identity)


def input_paths(
    hosts: list[str], base_model: str, data_dir: Path, shared_folder: str | None, settings: Settings
) -> tuple[dict[str, str], dict[str, str], str]:
    """Where each host finds the base model and the data: here for local hosts; for remote ones, what
    staging copied there (content-addressed, under the operator's remote_dir), or the same paths when
    every host sees `shared_folder`; and staging's one-line summary."""
    from nanodistill.reach import local_path
    from nanodistill.train.staging import stage_inputs

    base, data = local_path(base_model), local_path(data_dir)
    shared = Path(shared_folder) if shared_folder else None
    try:
        staging = stage_inputs(hosts, [base, data], shared, ssh_options(settings), settings.remote_dir)
    except NanodistillError as exc:
        if "over ssh" not in str(exc):
            raise
        config = settings.ssh_config or "~/.ssh/config"
        raise NanodistillError(
            f"{exc} (The server's ssh reads {config}; the operator names another config or key with "
            "NANODISTILL_SSH_CONFIG or NANODISTILL_SSH_IDENTITY, which the training ranks' ssh uses too.)"
        ) from None
    staged = staging.paths
    base_paths = {host: staged.get(host, {}).get(base, str(base)) for host in hosts}
    data_paths = {host: staged.get(host, {}).get(data, str(data)) for host in hosts}
    return base_paths, data_paths, staging.summary()


def launch_command(spec: RankSpec, hosts_option: list[str] | str, folders: tuple[Path, ...]) -> list[str]:
    """`mlx.launch` for the ranks: its hosts (or hostfile), backend and a free port for the ring."""
    command = [sys.executable, "-c", "from mlx._distributed_utils.launch import main; main()"]
    if isinstance(hosts_option, list):
        command += ["--hosts", ",".join(hosts_option)]
    else:
        command += ["--hostfile", str(checked_path(hosts_option, folders, "hosts"))]
    command += ["--backend", spec.backend, "--starting-port", str(free_port_run(len(spec.hosts)))]
    return [*command, "--", sys.executable, "-m", RANK_MODULE, spec.encoded()]


def free_port_run(count: int) -> int:
    """A port where `count` consecutive ports were free a moment ago (the ring listens on one per rank)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((LOCAL_HOST, 0))
            start = int(probe.getsockname()[1])
        if start + count < 65536 and all(_port_free(start + i) for i in range(count)):
            return start
    raise NanodistillError("no free ports on 127.0.0.1 for the ring backend; free some ports and resume_job.")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((LOCAL_HOST, port))
        except OSError:
            return False
    return True


def ssh_flags(ssh: SshOptions) -> list[str]:
    """What the ranks' ssh adds to mlx.launch's `ssh HOST CMD`: the operator's config and identity, and
    batch mode so a missing key fails at once; nothing when neither is set."""
    flags = ["-F", str(ssh.config_file)] if ssh.config_file is not None else []
    if ssh.identity_file is not None:
        flags += ["-i", str(ssh.identity_file), "-o", "IdentitiesOnly=yes"]
    return [*flags, "-o", "BatchMode=yes"] if flags else []


def ssh_wrapper(ranks_dir: Path, ssh: SshOptions) -> Path | None:
    """A folder holding an `ssh` that execs the system's ssh with `ssh_flags` first, to put first on
    mlx.launch's PATH (it has no option for them); None when there is nothing to add."""
    flags = ssh_flags(ssh)
    if not flags:
        return None
    real = shutil.which("ssh")
    if real is None:
        raise NanodistillError("no `ssh` command on this machine: install the OpenSSH client.")
    folder = ranks_dir / SSH_WRAPPER_DIR
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "ssh"
    script.write_text(f'#!/bin/sh\nexec {quoted([real, *flags])} "$@"\n')
    script.chmod(0o755)
    return folder


class Launch:
    """One run of `mlx.launch` and the files its rank 0 shares with this process."""

    def __init__(self, ranks_dir: Path, command: list[str], hosts: list[str], ssh: SshOptions) -> None:
        self.dir = ranks_dir
        self.hosts = hosts
        end_stale_ranks(ranks_dir)
        ranks_dir.mkdir(parents=True, exist_ok=True)
        for name in (REPORTS_FILE, RESULT_FILE, ERROR_FILE, RANKS_FILE, STOP_FILE):
            (ranks_dir / name).unlink(missing_ok=True)
        env = _rank_env(hosts.count(LOCAL_HOST))
        if (wrapper := ssh_wrapper(ranks_dir, ssh)) is not None:
            env["PATH"] = os.pathsep.join([str(wrapper), env.get("PATH", os.defpath)])
        with (ranks_dir / LAUNCH_LOG).open("wb") as log:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,  # mlx.launch forwards stdin; a pipe nobody writes keeps it idle
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(ranks_dir),
                env=env,
            )
        self.read_at = 0

    def new_reports(self) -> list[dict[str, Any]]:
        """Complete report lines rank 0 appended since the last call."""
        path = self.dir / REPORTS_FILE
        if not path.is_file():
            return []
        with path.open("rb") as f:
            f.seek(self.read_at)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.read_at += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def ranks(self) -> list[dict[str, Any]] | None:
        path = self.dir / RANKS_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def ask_stop(self) -> None:
        (self.dir / STOP_FILE).write_text("stop")

    def kill_all(self) -> None:
        """SIGKILL the launcher's whole session: mlx.launch and every local rank (and ssh to remote ones)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=30)

    def outcome(self, config: TrainConfig) -> TrainResult:
        """The result rank 0 wrote, or an error naming the rank that failed and how."""
        result = self.dir / RESULT_FILE
        if self.proc.returncode == 0 and result.is_file():
            data = json.loads(result.read_text())
            return TrainResult(**{**data, "adapter_path": Path(data["adapter_path"])})
        error = self.dir / ERROR_FILE
        if error.is_file():
            raise NanodistillError(json.loads(error.read_text())["error"])
        raise NanodistillError(self._failure())

    def _failure(self) -> str:
        log = (self.dir / LAUNCH_LOG).read_text(errors="replace") if (self.dir / LAUNCH_LOG).is_file() else ""
        ends = [(int(rank), int(code) if code else None) for rank, code in _RANK_END.findall(log)]
        # The cause first: a remote rank's ssh that ended (255), a rank killed by anything but the SIGTERM
        # mlx.launch sends the others once one has ended, then any signal, then any failure.
        remote = [end for end in ends if end[1] == SSH_FAILED and self._host(end[0]) != LOCAL_HOST]
        signalled = [end for end in ends if end[1] is not None and end[1] < 0]
        killed = [end for end in signalled if end[1] != -signal.SIGTERM]
        failed = [end for end in ends if end[1] != 0]
        hint = "; resume_job continues from the last checkpoint. The ranks' output is in " + str(self.dir / LAUNCH_LOG)
        if failed:
            rank, code = (remote or killed or signalled or failed)[0]
            host = self._host(rank)
            how = "was terminated" if code is None else _exit_text(code)
            if code == SSH_FAILED and host != LOCAL_HOST:
                how += (
                    f" (its ssh ended: it could not connect or log in, or the rank was killed there; check that "
                    f"`ssh {host} true` works from this machine without a prompt, or set NANODISTILL_SSH_CONFIG / "
                    "NANODISTILL_SSH_IDENTITY for the server)"
                )
            return f"training rank {rank} on {host} {how}{hint}"
        return f"mlx.launch {_exit_text(self.proc.returncode or 0)} before the ranks finished{hint}"

    def _host(self, rank: int) -> str:
        return self.hosts[rank] if rank < len(self.hosts) else "?"


def _rank_env(local_ranks: int) -> dict[str, str]:
    """This process's environment (the fast BLAS included) with OpenBLAS's threads shared out among the
    ranks on this machine, which would otherwise each spin as many threads as the machine has cores."""
    from nanodistill.platform.blas import blas_threads

    threads = max(1, blas_threads(os.environ) // max(1, local_ranks))
    return {**os.environ, "OPENBLAS_NUM_THREADS": str(threads)}


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"exited (killed by {signal.Signals(-code).name})"
        return f"exited (killed by signal {-code})"
    return f"exited with code {code}"


def end_stale_ranks(ranks_dir: Path) -> None:
    """Kill ranks an earlier attempt left running (its launcher was killed); they would write the same
    checkpoints as this attempt's ranks."""
    path = ranks_dir / RANKS_FILE
    if not path.is_file():
        return
    with contextlib.suppress(ValueError, KeyError, TypeError):
        for entry in json.loads(path.read_text()):
            if entry.get("host") == LOCAL_HOST and _is_rank_process(int(entry["pid"])):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry["pid"]), signal.SIGKILL)


def _is_rank_process(pid: int) -> bool:
    done = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True)
    return done.returncode == 0 and RANK_MODULE in done.stdout


async def train_on_hosts(
    config: TrainConfig,
    *,
    hosts: list[str],
    base_paths: dict[str, str],
    data_paths: dict[str, str],
    out_dir: Path,
    ranks_dir: Path,
    folders: tuple[Path, ...],
    ssh: SshOptions,
    on_report: Callable[[dict[str, Any]], Awaitable[None]],
    on_ranks: Callable[[list[dict[str, Any]]], Awaitable[None]],
    should_stop: Callable[[], bool],
) -> TrainResult:
    """Run the ranks to the end and return rank 0's result; every rank is gone when this returns."""
    assert config.hosts is not None
    spec = RankSpec(
        config=config.model_dump(mode="json"),
        backend=config.backend,
        hosts=hosts,
        base_model=base_paths,
        data_dir=data_paths,
        out_dir=str(out_dir),
        ranks_dir=str(ranks_dir),
        launcher_pid=os.getpid(),
    )
    launch = Launch(ranks_dir, launch_command(spec, config.hosts, folders), hosts, ssh)
    try:
        announced = False
        stop_asked_at: float | None = None
        while True:
            running = launch.proc.poll() is None
            for entry in launch.new_reports():
                await on_report(entry)
            if not announced and (ranks := launch.ranks()) is not None:
                await on_ranks(ranks)
                announced = True
            if not running:
                break
            if should_stop() and stop_asked_at is None:
                launch.ask_stop()
                stop_asked_at = anyio.current_time()
            if stop_asked_at is not None and anyio.current_time() - stop_asked_at > STOP_GRACE_S:
                break
            await anyio.sleep(POLL_S)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(launch.kill_all)
    return launch.outcome(config)
