"""query_student: answers from a warm, cached student, formatted exactly as it was trained."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from nanodistill.data.chat import ReasoningMode
from nanodistill.errors import NanodistillError
from nanodistill.reach import outside_error
from nanodistill.runtime import Runtime
from nanodistill.store import models as models_db
from nanodistill.student.files import check_model_files
from nanodistill.student.ref import loadable_source, parse_model_ref
from tools._common import READ_ONLY, register_tools, runtime
from tools._roots import ClientRoots, request_settings

MAX_PROMPTS = 64


class StudentAnswer(BaseModel):
    prompt_index: int
    answer: str
    reasoning: str | None = Field(default=None, description="Only when show_reasoning is true.")
    tokens_generated: int
    tokens_per_s: float
    elapsed_s: float


class QueryResult(BaseModel):
    model: str
    base_model: str
    adapter: str | None
    already_loaded: bool = Field(description="True when the model was warm in the server's cache.")
    load_s: float
    answers: list[StudentAnswer]


async def student_target(
    rt: Runtime, model: str, folders: Sequence[Path]
) -> tuple[str, str | None, str, ReasoningMode, str]:
    """(base, adapter, instruction, reasoning format, display name) for a model id/name or a base path/id;
    a path must be inside `folders`, the request's allowed folders."""
    found = await models_db.find_model(rt.store, model)
    if found is not None:
        reasoning: ReasoningMode = "full" if found.reasoning == "full" else "none"
        return found.base_model, found.adapter_path, found.instruction, reasoning, found.name
    ref = parse_model_ref(model, folders)
    if ref.kind == "outside":
        raise outside_error("model", model, folders)
    if ref.needs_import:
        raise NanodistillError(
            f"'model': {model!r} must be imported first: call import_model(source={model!r}), then query the "
            "model it registers by name."
        )
    try:
        return loadable_source(model, "model", folders), None, "", "none", model
    except NanodistillError as exc:
        raise NanodistillError(
            f"'model': {model!r} is not a registered model (call list_models for ids and names) "
            f"nor a usable base model: {exc}"
        ) from None


async def query_student(
    model: str,
    ctx: Context,
    prompt: str | None = None,
    prompts: list[str] | None = None,
    max_tokens: int = 256,
    temperature: float = 0.0,
    show_reasoning: bool = False,
    roots: ClientRoots = None,
) -> QueryResult:
    """Ask a trained student (or any base model, to compare before and after) one prompt or a batch of
    up to 64. `model` is a model id or name from list_models, or a base model folder / Hugging Face id.
    Prompts are formatted exactly as in training (the model's instruction as system prompt, its chat
    template). The reasoning is split off and returned only when show_reasoning is true."""
    rt = runtime(ctx)
    if (prompt is None) == (prompts is None):
        raise NanodistillError("Give exactly one of 'prompt' (a string) or 'prompts' (a list of up to 64 strings).")
    batch = [prompt] if prompt is not None else list(prompts or [])
    if not batch:
        raise NanodistillError("'prompts' is empty; give at least one prompt.")
    if len(batch) > MAX_PROMPTS:
        raise NanodistillError(f"'prompts' has {len(batch)} prompts; the limit is {MAX_PROMPTS} per call. Split it.")
    if not all(isinstance(p, str) and p.strip() for p in batch):
        raise NanodistillError("every prompt must be a non-empty string.")
    if not 1 <= max_tokens <= 4096:
        raise NanodistillError(f"'max_tokens' must be between 1 and 4096, got {max_tokens}.")
    if not 0 <= temperature <= 2:
        raise NanodistillError(f"'temperature' must be between 0 and 2, got {temperature}.")
    folders = request_settings(ctx, roots).import_roots
    base, adapter, instruction, reasoning, name = await student_target(rt, model, folders)
    check_model_files(base, adapter)
    from nanodistill.student.cache import generate_off_loop

    student, warm = await rt.models.get(base, adapter)
    answers = await generate_off_loop(
        student, batch, instruction=instruction, reasoning=reasoning, max_tokens=max_tokens, temperature=temperature
    )
    return QueryResult(
        model=name,
        base_model=base,
        adapter=adapter,
        already_loaded=warm,
        load_s=round(student.load_s, 3),
        answers=[
            StudentAnswer(
                prompt_index=i,
                answer=a.text,
                reasoning=a.reasoning if show_reasoning else None,
                tokens_generated=a.tokens_generated,
                tokens_per_s=round(a.tokens_per_s, 2),
                elapsed_s=round(a.elapsed_s, 4),
            )
            for i, a in enumerate(answers)
        ],
    )


def register(app: MCPServer) -> None:
    register_tools(app, [(query_student, "Ask the student model", READ_ONLY)])
