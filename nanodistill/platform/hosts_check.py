"""`nanodistill doctor --hosts`: can each training host run a rank of this machine's job?

One ssh call per host runs a small Python script there that reports the Python, mlx and mlx-lm
versions and the free memory and disk; each is compared with this machine's, since ranks that run
different versions fail in ways that do not name the cause.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from nanodistill.errors import NanodistillError
from nanodistill.platform.ssh import SshOptions, quoted, run_remote

MIN_FREE_MEMORY_BYTES = 2 * 2**30
MIN_FREE_DISK_BYTES = 5 * 2**30

# Run by the host's Python: the facts to compare, as one JSON line. Memory from /proc/meminfo
# (Linux) or vm_stat's free+inactive pages (macOS); disk where the staged inputs go (the home).
FACTS_SCRIPT = r"""
import json, os, platform, shutil, subprocess, sys
from importlib import metadata

def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None

def free_memory():
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        out = subprocess.run(["vm_stat"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    page = int(out.split("page size of")[1].split()[0]) if "page size of" in out else 4096
    pages = {k.strip(): int(v.strip().rstrip(".")) for k, _, v in (l.partition(":") for l in out.splitlines()[1:]) if v}
    return (pages.get("Pages free", 0) + pages.get("Pages inactive", 0)) * page

print(json.dumps({
    "python": platform.python_version(),
    "executable": sys.executable,
    "system": platform.system(),
    "mlx": version("mlx"),
    "mlx_lm": version("mlx-lm"),
    "free_memory_bytes": free_memory(),
    "free_disk_bytes": shutil.disk_usage(os.path.expanduser("~")).free,
}))
"""


@dataclass(frozen=True)
class HostReport:
    """What one host said (`facts`, empty when it could not be asked) and what is wrong with it."""

    host: str
    facts: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def local_facts() -> dict[str, object]:
    """This machine's answers to the same script, to compare the hosts with."""
    proc = subprocess.run([sys.executable, "-c", FACTS_SCRIPT], capture_output=True, text=True, timeout=60)
    facts: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return facts


def _remote_script(pythons: Sequence[str]) -> str:
    """Run the facts script with the first of `pythons` the host has."""
    return (
        f"for py in {quoted(pythons)}; do\n"
        '  if command -v "$py" >/dev/null 2>&1; then exec "$py" -c ' + quoted([FACTS_SCRIPT]) + "; fi\n"
        "done\n"
        f"echo 'none of {' '.join(pythons)} is on the PATH of a non-interactive ssh login' >&2\nexit 2\n"
    )


def _short(version: object) -> str:
    return ".".join(str(version).split(".")[:2])


def _problems(host: str, facts: dict[str, object], local: dict[str, object], free: tuple[int, int]) -> list[str]:
    problems: list[str] = []
    if _short(facts.get("python")) != _short(local["python"]):
        problems.append(
            f"Python {facts.get('python')} on {host}, {local['python']} here: use Python {_short(local['python'])} "
            "there (or name its interpreter with --remote-python)"
        )
    for key, package in (("mlx", "mlx"), ("mlx_lm", "mlx-lm")):
        if facts.get(key) is None:
            problems.append(
                f"{package} is not installed for {facts.get('executable')} on {host}: "
                f"pip install {package}=={local[key]}"
            )
        elif facts.get(key) != local[key]:
            problems.append(f"{package} {facts[key]} on {host}, {local[key]} here: pip install {package}=={local[key]}")
    for key, least, what in (
        ("free_memory_bytes", free[0], "memory"),
        ("free_disk_bytes", free[1], "disk in the home folder"),
    ):
        value = facts.get(key)
        if isinstance(value, int) and value < least:
            problems.append(f"only {value / 2**30:.1f} GiB free {what} (at least {least / 2**30:.1f} GiB wanted)")
    return problems


def check_host(
    host: str,
    ssh: SshOptions,
    local: dict[str, object],
    pythons: Sequence[str],
    free: tuple[int, int] = (MIN_FREE_MEMORY_BYTES, MIN_FREE_DISK_BYTES),
) -> HostReport:
    """Ask one host over ssh; an unreachable host is a report with that one problem, not an exception."""
    try:
        lines = run_remote(host, ssh, _remote_script(pythons), timeout_s=60 + ssh.connect_timeout_s).splitlines()
        facts: dict[str, object] = json.loads(lines[-1])
    except NanodistillError as exc:
        return HostReport(host, problems=[str(exc)])
    except (json.JSONDecodeError, IndexError):
        return HostReport(host, problems=[f"{host} answered the version check with something that is not JSON"])
    return HostReport(host, facts, _problems(host, facts, local, free))


def check_hosts(
    hosts: Sequence[str],
    ssh: SshOptions | None = None,
    python: str | None = None,
    free: tuple[int, int] = (MIN_FREE_MEMORY_BYTES, MIN_FREE_DISK_BYTES),
) -> tuple[dict[str, object], list[HostReport]]:
    """This machine's facts and one report per distinct host, checked in parallel.

    The host's Python is `python`, else the one at this machine's interpreter path (mlx.launch's
    layout: the same venv path on every host), else `python3`. `free` is the least free memory and
    disk (bytes) a host should have."""
    options = ssh or SshOptions()
    local = local_facts()
    pythons = [python] if python else [sys.executable, "python3"]
    distinct = list(dict.fromkeys(hosts))
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(distinct)))) as pool:
        reports = list(pool.map(lambda host: check_host(host, options, local, pythons, free), distinct))
    return local, reports


def _gib(value: object) -> str:
    return f"{value / 2**30:.1f} GiB" if isinstance(value, int) else "-"


def format_hosts(local: dict[str, object], reports: Sequence[HostReport]) -> str:
    """A table, this machine first, then each host's problems under it."""
    header = ("host", "python", "mlx", "mlx-lm", "free memory", "free disk", "status")
    rows = [header, ("(this machine)", *_cells(local), "reference")]
    rows += [(report.host, *_cells(report.facts), "ok" if report.ok else "PROBLEM") for report in reports]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    for report in reports:
        lines.extend(f"{report.host}: {problem}" for problem in report.problems)
    return "\n".join(lines)


def _cells(facts: dict[str, object]) -> tuple[str, ...]:
    return (
        str(facts.get("python") or "-"),
        str(facts.get("mlx") or "-"),
        str(facts.get("mlx_lm") or "-"),
        _gib(facts.get("free_memory_bytes")),
        _gib(facts.get("free_disk_bytes")),
    )
