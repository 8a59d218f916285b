"""Prompts: a guided distillation, and a next round for a student that is not good enough yet."""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from nanodistill.errors import NanodistillError
from nanodistill.runtime import runtime_of
from nanodistill.store import models as models_db


def distill_workflow(task_description: str) -> list[Message]:
    """Walk through making a small model for a task: seeds, cost quote, run, follow, report."""
    return [
        UserMessage(
            f"""I want a small, fast model for this task: {task_description}

Please drive nanodistill's tools to make it, step by step:
1. Collect at least 10 seed examples from me (input and the exact output I expect), covering the
   variety of real inputs, plus a one-sentence instruction describing the task. Ask me for more if the
   examples are too similar. Create the dataset with create_dataset (20% of the seeds are set aside
   for the report card when there are 10 or more).
2. Ask which teacher model to use (any LiteLLM model, e.g. anthropic/claude-sonnet-4-5, or a local
   OpenAI-compatible server via api_base) and which student (default smollm2-135m; larger, e.g.
   mlx-community/Qwen2.5-0.5B-Instruct-4bit, for harder tasks). Quote the cost with
   amplify_dataset(dry_run=True) and show me the projected calls, tokens, cost and time; ask me to
   confirm and suggest a max_cost_usd.
3. Start the work with distill (or amplify_dataset, then train_student, then evaluate_student).
4. Follow the job with get_job(job_id, wait_s=15, events_after=<cursor>) and tell me briefly what
   happens at each stage (amplification count and agreement, training loss, evaluation).
5. When it finishes, read the report card (nanodistill://models/<id>/card) and summarise it: student
   vs base score with intervals, the verdict, and the worst examples. Then try the model on two or
   three new inputs with query_student.
If anything fails, read the error: it names the field to change."""
        )
    ]


async def improve_student(model: str, ctx: Context) -> list[Message]:
    """Read a model's report card, name its failure patterns, and run the improve_student tool on them."""
    try:
        found = await models_db.get_model(runtime_of(ctx).store, model)
    except NanodistillError as exc:
        # An MCPError reaches the client as it is; any other exception becomes "Error rendering prompt" or
        # "Internal server error", and the user never learns the model name was wrong.
        raise MCPError(INVALID_PARAMS, str(exc)) from exc
    if not found.report:
        worst_text = "(no report card yet: run evaluate_student first)"
        summary = "not evaluated"
    else:
        lines = []
        for source in found.report.get("sources", []):
            for row in source.get("worst", [])[:5]:
                lines.append(
                    f"- [{source.get('name')}] input: {row.get('input')!r} | expected: {row.get('gold')!r} | "
                    f"student: {row.get('student')!r}"
                )
        worst_text = "\n".join(lines) or "(no failing examples listed)"
        summary = str(found.report.get("verdict"))
    params = found.params
    return [
        UserMessage(
            f"""Help me improve the student model {found.name} (id {found.id}).

Report card verdict: {summary}
Training: method {found.method}, reasoning format {found.reasoning}, iterations {params.get("iters")},
learning rate {params.get("learning_rate")}, best validation loss {found.metrics.get("best_val_loss")}.

Its worst held-out answers:
{worst_text}

Look for what the failures have in common (a kind of input, a length, a label, a format slip) and
tell me. Then, with my agreement, call the improve_student tool (model "{found.id}", a teacher, and a
max_cost_usd I accept): it describes these failure patterns to the teacher (never the held-out rows
themselves), adds new examples of those kinds to a new dataset version, trains the next round with the
same options, evaluates it on the same held-out rows and keeps the better model. Follow it with get_job
and compare the report cards it lists side by side. If the failures need what a teacher cannot write
(new seed examples only I can give, another reasoning format: "full" thinks before answering, "none"
answers directly, or a longer training run or another learning rate), propose add_examples and
train_student instead."""
        )
    ]


def register(app: MCPServer) -> None:
    app.prompt(title="Distill a small model, step by step")(distill_workflow)
    app.prompt(title="Improve a student from its report card")(improve_student)
