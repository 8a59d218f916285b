"""A fast BLAS for MLX on Linux CPUs.

The ``mlx-cpu`` wheel links the netlib reference BLAS it bundles: single-threaded and some
60x slower at matrix multiplication than the OpenBLAS numpy already ships. A ten-line shim
that defines ``cblas_sgemm``/``cblas_dgemm``/``cblas_cgemm`` and forwards them to that
OpenBLAS (64-bit integer ABI, suffixed symbols) is compiled once per (mlx, OpenBLAS, shim)
into ``NANODISTILL_HOME/blas/<key>/`` and preloaded (``LD_PRELOAD``) into the processes that
run MLX. A self-check in a subprocess compares mlx matmuls against an independent reference
first; on any failure nanodistill keeps the stock BLAS and records why. Nothing here imports
mlx: detection reads package metadata and files.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata as metadata
import json
import math
import mmap
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nanodistill.settings import Settings

SHIM_NAME = "libnanodistill_blas.so"
REEXEC_MARKER = "NANODISTILL_BLAS_REEXEC"
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
CHECK_TIMEOUT_S = 180

# Resolved lazily on the first call, so preloading it into processes that never multiply
# matrices (compilers, git, ...) costs nothing. If OpenBLAS cannot be loaded at run time,
# calls go to the stock BLAS; if neither loads, the process stops rather than compute nothing.
SHIM_SOURCE = (Path(__file__).parent / "blas_shim.c").read_text(encoding="utf-8")

# Runs in a subprocess with the shim preloaded. The reference is numpy's einsum without
# optimisation (its own loops, no BLAS), in float64, so a broken OpenBLAS cannot agree with
# itself. Errors are measured against |A|@|B|, the scale rounding errors grow with.
CHECK_SCRIPT = Path(__file__).parent / "blas_check.py"


@dataclass(frozen=True)
class Target:
    """What the shim is built against: mlx's stock BLAS and the OpenBLAS to forward to."""

    mlx_version: str
    stock_lib: Path
    fast_lib: Path | None
    fast_version: str | None


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    reason: str | None
    worst_error: dict[str, float]


@dataclass(frozen=True)
class BlasStatus:
    """Where the fast BLAS stands, for the doctor, the system resource and job events.

    ``applicable``: Linux mlx-cpu on its reference BLAS. ``active``: the shim is loaded in this
    very process. ``library``: the BLAS that MLX processes nanodistill starts will use.
    ``self_check``: "passed", "failed", "not run" or "not applicable". ``fallback_reason``: why
    the stock BLAS stays, if it does (say it once, e.g. in a job's events).
    """

    applicable: bool
    enabled: bool
    active: bool
    library: str | None
    stock_library: str | None
    shim: str | None
    self_check: str
    fallback_reason: str | None
    compiler: str | None
    threads: int | None


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _dist_file(dist_name: str, prefix: str, needle: str) -> Path | None:
    """The first file of an installed distribution under ``prefix`` whose name contains ``needle``."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if str(entry).startswith(prefix) and needle in entry.name and ".so" in entry.name:
            path = Path(str(dist.locate_file(entry))).resolve()
            if path.is_file():
                return path
    return None


def _contains(path: Path, needle: bytes) -> bool:
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data.rfind(needle) != -1


def detect() -> tuple[Target | None, str | None]:
    """The build target when mlx is the Linux CPU build on the reference BLAS, else why not."""
    if not sys.platform.startswith("linux"):
        return None, f"not Linux ({sys.platform}): mlx uses Accelerate or the GPU"
    if any(_dist_version(name) for name in ("mlx-cuda-12", "mlx-cuda-13", "mlx-cuda")):
        return None, "mlx is the CUDA build"
    mlx_version = _dist_version("mlx-cpu")
    if mlx_version is None:
        return None, "mlx-cpu is not installed"
    stock = _dist_file("mlx-cpu", "mlx_cpu.libs/", "libblas")
    libmlx = _dist_file("mlx-cpu", "mlx/lib/", "libmlx")
    if stock is None or libmlx is None:
        return None, "mlx-cpu bundles no libblas, so it is not the reference BLAS"
    if _contains(stock, b"openblas") or not _contains(libmlx, stock.name.encode()):
        return None, f"mlx does not use a reference BLAS ({stock.name})"
    for dist_name, prefix in (("numpy", "numpy.libs/"), ("scipy-openblas64", "scipy_openblas64/lib/")):
        fast = _dist_file(dist_name, prefix, "openblas64")
        if fast is not None:
            return Target(mlx_version, stock, fast, f"{dist_name} {_dist_version(dist_name)}"), None
    return Target(mlx_version, stock, None, None), None


def shim_source(target: Target) -> str:
    """The shim's C source for this target (library paths are compiled in)."""
    return SHIM_SOURCE.replace("@FAST_LIB@", json.dumps(str(target.fast_lib))).replace(
        "@STOCK_LIB@", json.dumps(str(target.stock_lib))
    )


def shim_dir(settings: Settings, target: Target) -> Path:
    """The cache folder for this target: a new mlx, OpenBLAS or shim gets a new build."""
    recipe = json.dumps([target.mlx_version, str(target.fast_lib), target.fast_version, shim_source(target)]).encode()
    return settings.blas_dir / hashlib.sha256(recipe).hexdigest()[:16]


def find_compiler() -> list[str] | None:
    """The C compiler: ``$CC`` when set (and nothing else), else ``cc`` or ``gcc`` on PATH."""
    chosen = os.environ.get("CC", "").strip()
    if chosen:
        words = shlex.split(chosen)
        found = shutil.which(words[0])
        return [found, *words[1:]] if found else None
    for name in ("cc", "gcc"):
        found = shutil.which(name)
        if found:
            return [found]
    return None


def build_shim(source: str, out: Path, compiler: list[str]) -> str | None:
    """Compile ``source`` into the shared library ``out``; the compiler's complaint on failure."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        src = Path(tmp) / "shim.c"
        src.write_text(source)
        built = Path(tmp) / out.name
        cmd = [*compiler, "-O2", "-shared", "-fPIC", "-o", str(built), str(src), "-ldl", "-lpthread"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{shlex.join(cmd)}: {exc}"
        if proc.returncode != 0:
            return f"{shlex.join(cmd)} failed: {proc.stderr.strip()[-500:]}"
        os.replace(built, out)
    return None


def _affinity() -> set[int]:
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def _cpu_quota() -> int | None:
    """Whole CPUs allowed by a cgroup v2 CPU quota (a container's --cpus), if there is one."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """Logical CPUs this process may use: its affinity, capped by a cgroup CPU quota."""
    cpus = len(_affinity())
    quota = _cpu_quota()
    return cpus if quota is None else min(cpus, quota)


def physical_cores() -> int:
    """Distinct physical cores among this process's CPUs (hyper-threads add nothing to a matmul)."""
    cores = set()
    for cpu in _affinity():
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text(), (topology / "core_id").read_text()))
        except OSError:
            cores.add((str(cpu), ""))
    quota = _cpu_quota()
    return len(cores) if quota is None else min(len(cores), quota)


def default_blas_threads() -> int:
    """OpenBLAS threads when the user sets none: the physical cores this process may use, less one.

    OpenBLAS threads spin while they wait for each other, so when they outnumber free cores
    (MLX's own threads, another job, a busy machine) a training step gets up to 10x slower,
    while the extra thread gains 15% at best. One core is left to MLX and everything else.
    """
    return max(1, physical_cores() - 1)


def preload_env(shim: Path, base: Mapping[str, str]) -> dict[str, str]:
    """Env additions that preload ``shim`` on top of ``base`` and size OpenBLAS's thread pool.

    The thread count is left to the user when they set one (``OPENBLAS_NUM_THREADS``);
    otherwise it is ``default_blas_threads()``.
    """
    preload = [p for p in base.get("LD_PRELOAD", "").replace(" ", ":").split(":") if p and p != str(shim)]
    env = {"LD_PRELOAD": ":".join([str(shim), *preload])}
    if not any(base.get(name) for name in THREAD_VARS):
        env["OPENBLAS_NUM_THREADS"] = str(default_blas_threads())
    return env


def without_fast_blas(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` that no longer preloads nanodistill's shim (for stock-BLAS baselines)."""
    out = dict(env)
    kept = [p for p in out.get("LD_PRELOAD", "").replace(" ", ":").split(":") if p and not p.endswith(SHIM_NAME)]
    if kept:
        out["LD_PRELOAD"] = ":".join(kept)
    else:
        out.pop("LD_PRELOAD", None)
    return out


def blas_threads(env: Mapping[str, str]) -> int:
    """OpenBLAS's thread count in a process with ``env``: the first variable it honours, else all CPUs."""
    for name in THREAD_VARS:
        value = env.get(name, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return usable_cpus()


def self_check(shim: Path) -> CheckResult:
    """Run mlx matmuls with ``shim`` preloaded in a subprocess and compare with a reference."""
    env = {**os.environ, **preload_env(shim, os.environ)}
    try:
        proc = subprocess.run(
            [sys.executable, "-P", str(CHECK_SCRIPT), str(shim)],
            env=env,
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CheckResult(False, f"self-check did not finish: {exc}", {})
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip()[-500:]
        return CheckResult(False, f"self-check process failed (exit {proc.returncode}): {tail}", {})
    found = json.loads(lines[-1])
    worst = {str(k): float(v) for k, v in found["worst"].items()}
    if not found["loaded"]:
        return CheckResult(False, f"the shim was not loaded: {proc.stderr.strip()[-300:]}", worst)
    if not found["fast"]:
        return CheckResult(False, "the shim could not load OpenBLAS and fell back to the stock BLAS", worst)
    if found["failures"]:
        return CheckResult(False, "mlx matmuls disagree with the reference: " + "; ".join(found["failures"]), worst)
    return CheckResult(True, None, worst)


def _read_verdict(folder: Path) -> dict[str, object] | None:
    try:
        verdict = json.loads((folder / "verdict.json").read_text())
    except (OSError, ValueError):
        return None
    if verdict.get("passed") and not (folder / SHIM_NAME).is_file():
        return None
    return verdict if isinstance(verdict, dict) else None


def _build_and_check(folder: Path, target: Target, compiler: list[str]) -> dict[str, object]:
    """Build and self-check once, under a lock so concurrent processes wait for one verdict."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = _read_verdict(folder)
        if cached is not None:
            return cached
        shim = folder / SHIM_NAME
        failure = build_shim(shim_source(target), shim, compiler)
        result = CheckResult(False, f"could not compile the shim: {failure}", {}) if failure else self_check(shim)
        retry = f" (delete {folder} to build and check again)"
        verdict: dict[str, object] = {
            "passed": result.passed,
            "reason": None if result.passed else f"{result.reason}{retry}",
            "worst_error": result.worst_error,
            "compiler": shlex.join(compiler),
            "fast_lib": str(target.fast_lib),
            "fast_version": target.fast_version,
            "mlx_version": target.mlx_version,
        }
        tmp = folder / "verdict.json.tmp"
        tmp.write_text(json.dumps(verdict, indent=2))
        os.replace(tmp, folder / "verdict.json")
        return verdict


def _verdict(settings: Settings, build: bool) -> tuple[Target | None, dict[str, object] | None, str | None]:
    """The target, its verdict (building it when asked) and why the fast path is off, if it is."""
    target, why_not = detect()
    if target is None:
        return None, None, why_not
    if not settings.fast_blas:
        return target, None, "disabled by NANODISTILL_FAST_BLAS=0"
    if target.fast_lib is None:
        return target, None, "no OpenBLAS found (numpy's bundled scipy-openblas64 or scipy-openblas64)"
    folder = shim_dir(settings, target)
    verdict = _read_verdict(folder)
    if verdict is None:
        compiler = find_compiler()
        if compiler is None:
            cc = os.environ.get("CC")
            missing = f"$CC ({cc}) not found" if cc else "no C compiler (cc or gcc) on PATH"
            return target, None, f"{missing}: install one or set CC to build the fast BLAS shim"
        if not build:
            return target, None, "the fast BLAS shim has not been built and checked yet"
        verdict = _build_and_check(folder, target, compiler)
    return target, verdict, None if verdict["passed"] else str(verdict["reason"])


def fast_blas_env(settings: Settings) -> dict[str, str]:
    """Env additions for a child process that will run MLX; ``{}`` when the stock BLAS stays.

    The first call for a new mlx/OpenBLAS builds and self-checks the shim (seconds, once);
    later calls read the cached verdict.
    """
    target, verdict, _ = _verdict(settings, build=True)
    if target is None or verdict is None or not verdict["passed"]:
        return {}
    return preload_env(shim_dir(settings, target) / SHIM_NAME, os.environ)


def shim_loaded(shim: Path) -> bool:
    """Whether ``shim`` is mapped into this process (preloaded at its start); maps show real paths."""
    real = str(shim.resolve())
    try:
        with open("/proc/self/maps") as maps:
            return any(line.rstrip().endswith(real) for line in maps)
    except OSError:
        return False


def reexec_with_fast_blas(settings: Settings) -> None:
    """Restart this process with the shim preloaded when it applies and is not loaded yet.

    For entry points whose own process runs MLX. Call it first thing, before reading stdin or
    starting threads: ``execve`` keeps the pid and open files but drops everything else. The
    marker holds the pid that re-executed, so the new image never execs again, while its
    children (other pids) still may.
    """
    if os.environ.get(REEXEC_MARKER) == str(os.getpid()) or not sys.orig_argv:
        return
    extra = fast_blas_env(settings)
    if not extra or shim_loaded(Path(extra["LD_PRELOAD"].split(":")[0])):
        return
    env = {**os.environ, **extra, REEXEC_MARKER: str(os.getpid())}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def blas_status(settings: Settings) -> BlasStatus:
    """The fast BLAS's state from cached facts only: never compiles, never imports mlx."""
    target, verdict, reason = _verdict(settings, build=False)
    compiler = find_compiler()
    compiler_text = shlex.join(compiler) if compiler else None
    if target is None:
        return BlasStatus(
            False, settings.fast_blas, False, None, None, None, "not applicable", reason, compiler_text, None
        )
    shim = shim_dir(settings, target) / SHIM_NAME
    passed = bool(verdict and verdict["passed"])
    active = shim_loaded(shim)
    check = "not run" if verdict is None else "passed" if passed else "failed"
    return BlasStatus(
        applicable=True,
        enabled=settings.fast_blas,
        active=active,
        library=str(target.fast_lib) if passed else str(target.stock_lib),
        stock_library=str(target.stock_lib),
        shim=str(shim) if passed else None,
        self_check=check,
        fallback_reason=reason,
        compiler=compiler_text,
        threads=blas_threads({**os.environ, **preload_env(shim, os.environ)}) if passed else None,
    )
