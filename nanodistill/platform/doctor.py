"""What this machine offers nanodistill: versions, device, BLAS speed, compiler, memory, disk.

MLX is only imported in subprocesses, so the report can be built inside the MCP server, and
the BLAS is measured both ways (stock and fast) on the same machine in the same call.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from nanodistill.platform.blas import (
    blas_status,
    fast_blas_env,
    find_compiler,
    usable_cpus,
    without_fast_blas,
)
from nanodistill.settings import Settings

PROBE_TIMEOUT_S = 120

# The best of a few 1024x1024 float32 matmuls on the CPU stream, for about a second at most.
PROBE_SCRIPT = r"""
import json, time
import mlx.core as mx

cuda = getattr(mx, "cuda", None)
info = {
    "default_device": str(mx.default_device()),
    "metal": bool(mx.metal.is_available()),
    "cuda": bool(cuda is not None and cuda.is_available()),
}
if info["cuda"] and hasattr(mx, "device_info"):
    info["cuda_device"] = {k: v for k, v in mx.device_info(mx.gpu).items() if isinstance(v, (str, int, float))}
n = 1024
a = mx.random.normal((n, n), stream=mx.cpu)
b = mx.random.normal((n, n), stream=mx.cpu)
mx.eval(mx.matmul(a, b, stream=mx.cpu))
best, runs, start = float("inf"), 0, time.perf_counter()
while runs < 2 or (runs < 20 and time.perf_counter() - start < 1.0):
    tick = time.perf_counter()
    mx.eval(mx.matmul(a, b, stream=mx.cpu))
    best = min(best, time.perf_counter() - tick)
    runs += 1
info["gflops"] = 2 * n**3 / best / 1e9
print(json.dumps(info))
"""


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _mlx_build() -> str | None:
    """Which mlx wheel is installed, from package metadata."""
    if _version("mlx-metal"):
        return "metal"
    if any(_version(name) for name in ("mlx-cuda-12", "mlx-cuda-13", "mlx-cuda")):
        return "cuda"
    if _version("mlx-cpu"):
        return "cpu"
    return "unknown" if _version("mlx") else None


def _probe(env: Mapping[str, str]) -> dict[str, object]:
    """Ask a fresh process with ``env`` about mlx's device and its CPU matmul speed."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", PROBE_SCRIPT],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    found: dict[str, object] = json.loads(lines[-1])
    return found


def _compiler() -> dict[str, object]:
    compiler = find_compiler()
    if compiler is None:
        return {"command": None, "version": None}
    try:
        proc = subprocess.run([*compiler, "--version"], capture_output=True, text=True, timeout=10)
        version = proc.stdout.strip().partition("\n")[0] or None
    except (OSError, subprocess.TimeoutExpired) as exc:
        version = f"error: {exc}"
    return {"command": shlex.join(compiler), "version": version}


def _memory() -> dict[str, int | None]:
    """Total and available RAM in bytes (available from /proc/meminfo, Linux only)."""
    total: int | None = None
    available: int | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "MemTotal":
                total = int(value.split()[0]) * 1024
            elif key == "MemAvailable":
                available = int(value.split()[0]) * 1024
    except OSError:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"total_bytes": total, "available_bytes": available}


def doctor_report(settings: Settings) -> dict[str, object]:
    """Everything worth knowing before training here; builds the fast BLAS shim if it is due."""
    fast_env = fast_blas_env(settings)
    status = blas_status(settings)
    stock = _probe(without_fast_blas(os.environ))
    fast = _probe({**os.environ, **fast_env}) if fast_env else None
    stock_gflops = stock.get("gflops")
    blas: dict[str, object] = {**asdict(status), "stock_gflops": stock_gflops}
    if fast is not None:
        fast_gflops = blas["fast_gflops"] = fast.get("gflops")
        if isinstance(fast_gflops, float) and isinstance(stock_gflops, float):
            blas["speedup"] = fast_gflops / stock_gflops
        if "error" in fast:
            blas["fast_error"] = fast["error"]
    device = {k: v for k, v in stock.items() if k != "gflops"}
    if "error" not in device:
        device["device"] = "metal" if device["metal"] else "cuda" if device["cuda"] else "cpu"
    settings.home.mkdir(parents=True, exist_ok=True)
    return {
        "platform": {
            "system": platform.system(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "usable_cpus": usable_cpus(),
        },
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "packages": {
            "nanodistill": _version("nanodistill"),
            "mlx": _version("mlx"),
            "mlx_build": _mlx_build(),
            "mlx_lm": _version("mlx-lm"),
            "numpy": _version("numpy"),
        },
        "device": device,
        "blas": blas,
        "compiler": _compiler(),
        "memory": _memory(),
        "home": {"path": str(settings.home), "free_bytes": shutil.disk_usage(settings.home).free},
    }


def _show(key: str, value: object) -> str:
    if value is None:
        return "-"
    if key.endswith("_bytes") and isinstance(value, int):
        return f"{value / 2**30:.1f} GiB"
    if key.endswith("gflops") and isinstance(value, float):
        return f"{value:.1f} GFLOP/s"
    if key == "speedup" and isinstance(value, float):
        return f"{value:.1f}x"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
    return str(value)


def format_doctor(report: Mapping[str, object]) -> str:
    """The report as aligned text for a terminal, one section per block."""
    lines: list[str] = []
    for section, body in report.items():
        lines.append(section)
        items = body.items() if isinstance(body, dict) else [("value", body)]
        lines.extend(f"  {key:<16} {_show(key, value)}" for key, value in items)
    return "\n".join(lines)
