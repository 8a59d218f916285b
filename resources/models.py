"""Model resources: the record, the report card as Markdown, and the loss curves as a PNG."""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from nanodistill.errors import NanodistillError
from nanodistill.runtime import runtime_of
from nanodistill.store import models as models_db
from nanodistill.views import model_view


async def _model(ctx: Context, ref: str) -> models_db.Model:
    try:
        return await models_db.get_model(runtime_of(ctx).store, ref)
    except NanodistillError as exc:
        raise ResourceError(str(exc)) from exc


async def model_resource(id: str, ctx: Context) -> str:
    return (await model_view(runtime_of(ctx).store, await _model(ctx, id))).model_dump_json(indent=2)


async def card_resource(id: str, ctx: Context) -> str:
    model = await _model(ctx, id)
    if not model.report:
        lines = [
            f"# {model.name}",
            "",
            "Not evaluated yet: run evaluate_student to get the report card.",
            "",
            f"- base model: {model.base_model}",
            f"- method: {model.method or 'none'}",
        ]
        for key in ("best_val_loss", "final_train_loss", "iterations_done", "trained_tokens", "wall_s"):
            if key in model.metrics:
                lines.append(f"- {key.replace('_', ' ')}: {model.metrics[key]}")
        return "\n".join(lines) + "\n"
    from nanodistill.evaluate.report import ReportCard, render_markdown

    return f"# {model.name}\n\n" + render_markdown(ReportCard.model_validate(model.report))


async def loss_png_resource(id: str, ctx: Context) -> bytes:
    from nanodistill.train.plot import loss_plot_png

    model = await _model(ctx, id)
    return loss_plot_png(model.metrics.get("loss_history", []))


def register(app: MCPServer) -> None:
    app.resource(
        "nanodistill://models/{id}",
        title="Model",
        description="A model's record, as get_model returns it.",
        mime_type="application/json",
    )(model_resource)
    app.resource(
        "nanodistill://models/{id}/card",
        title="Report card",
        description="The model's report card: base vs student vs teacher on held-out data.",
        mime_type="text/markdown",
    )(card_resource)
    app.resource(
        "nanodistill://models/{id}/loss.png",
        title="Loss curves",
        description="Training and validation loss by iteration.",
        mime_type="image/png",
    )(loss_png_resource)
