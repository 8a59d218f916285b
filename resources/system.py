"""`nanodistill://system`: the doctor's report (platform, versions, device, BLAS speed, disk)."""

from __future__ import annotations

import json

import anyio
from mcp.server.mcpserver import MCPServer

from nanodistill.settings import load_settings


async def system_resource() -> str:
    from nanodistill.platform.doctor import doctor_report

    report = await anyio.to_thread.run_sync(doctor_report, load_settings())
    return json.dumps(report, indent=2, default=str)


def register(app: MCPServer) -> None:
    app.resource(
        "nanodistill://system",
        title="System report",
        description="What `nanodistill doctor` reports: platform, mlx versions, device, active BLAS and its "
        "GFLOP/s, compiler, memory, home folder and free space. Takes a few seconds (it measures).",
        mime_type="application/json",
    )(system_resource)
