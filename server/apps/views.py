"""The three ui:// resources, which tool renders in which view, and the middleware that shows the
bindings only to clients that announced MCP Apps."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from mcp.server.apps import Apps, ResourceCsp, client_supports_apps
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context

from nanodistill.store import models as models_db
from tools._common import READ_ONLY, engine_errors, runtime

JOB_URI = "ui://nanodistill/job"
CARD_URI = "ui://nanodistill/card"
DATASET_URI = "ui://nanodistill/dataset"

VIEW_FILES = {JOB_URI: "job.html", CARD_URI: "card.html", DATASET_URI: "dataset.html"}
VIEW_TITLES = {JOB_URI: "Job", CARD_URI: "Report card", DATASET_URI: "Dataset"}

BOUND = {
    "get_job": JOB_URI,
    "amplify_dataset": JOB_URI,
    "train_student": JOB_URI,
    "distill": JOB_URI,
    "improve_student": JOB_URI,
    "export_model": JOB_URI,
    "import_model": JOB_URI,
    "resume_job": JOB_URI,
    "get_model": CARD_URI,
    "evaluate_student": CARD_URI,
    "get_dataset": DATASET_URI,
}
"""Existing tools and the view each one renders in (evaluate_student's card follows its job)."""

APP_ONLY = ("get_report_card",)
"""Tools only the views call (visibility ["app"]); hidden from clients without Apps."""


BRIDGE_MARK = "/* @bridge: server/apps/bridge.js is inlined here when the view is served */"


def view_html(uri: str) -> str:
    """The view as served: its file with the shared bridge (`bridge.js`) inlined, one self-contained page."""
    folder = files("server.apps")
    page = folder.joinpath(VIEW_FILES[uri]).read_text(encoding="utf-8")
    assert page.count(BRIDGE_MARK) == 1, f"{VIEW_FILES[uri]} must hold the bridge mark once"
    return page.replace(BRIDGE_MARK, folder.joinpath("bridge.js").read_text(encoding="utf-8"))


def bound_tools() -> dict[str, str]:
    """Tool name -> the ui:// view it renders in, app-only tools included."""
    return {**BOUND, **dict.fromkeys(APP_ONLY, CARD_URI)}


async def get_report_card(model: str, ctx: Context) -> dict[str, Any]:
    """The full report card of a model (every source's intervals, label table, best and worst examples),
    for the card view; empty until the model is evaluated."""
    found = await models_db.get_model(runtime(ctx).store, model)
    return {"model_id": found.id, "name": found.name, "report": found.report}


def build_apps() -> Apps:
    """The extension: the three views (no network: an empty CSP allows no outside origin) and the
    app-only tool."""
    apps = Apps()
    for uri, title in VIEW_TITLES.items():
        apps.add_html_resource(uri, view_html(uri), name=uri, title=title, csp=ResourceCsp(), prefers_border=True)
    bind = apps.tool(
        resource_uri=CARD_URI, visibility=["app"], title="Full report card (for the card view)", annotations=READ_ONLY
    )
    bind(engine_errors(get_report_card))
    return apps


class AppViews:
    """Middleware: to a client that announced MCP Apps, tools/list carries each bound tool's
    `_meta.ui.resourceUri`; to any other client, app-only tools and ui:// resources are hidden, so it
    sees the same lists as before the views existed."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if not isinstance(result, dict):
            return result
        apps = client_supports_apps(ctx)
        if ctx.method == "tools/list":
            tools = result.get("tools", [])
            if apps:
                return {**result, "tools": [_bound(tool) for tool in tools]}
            return {**result, "tools": [tool for tool in tools if tool.get("name") not in APP_ONLY]}
        if ctx.method == "resources/list" and not apps:
            kept = [r for r in result.get("resources", []) if not str(r.get("uri", "")).startswith("ui://")]
            return {**result, "resources": kept}
        return result


def _bound(tool: dict[str, Any]) -> dict[str, Any]:
    """The tool's wire entry with `_meta.ui.resourceUri` set when it renders in a view."""
    uri = BOUND.get(tool.get("name", ""))
    if uri is None:
        return tool
    meta = dict(tool.get("_meta") or {})
    meta["ui"] = {**meta.get("ui", {}), "resourceUri": uri}
    return {**tool, "_meta": meta}
