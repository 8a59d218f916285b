"""The `improve` job kind's contract: a trained model with a report card, a teacher, and the round limits.

The teacher options are checked by amplify's own `check_amplify_options`, so improve_student can never
check less than amplify_dataset; every problem is reported at once before anything starts.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

from pydantic import BaseModel, Field

from nanodistill.amplify.plan import AmplifyOptions, check_amplify_options
from nanodistill.evaluate.plan import stored_options
from nanodistill.jobs.plan import Plan, Problems
from nanodistill.settings import Settings
from nanodistill.store import datasets as ds
from nanodistill.store import models as models_db
from nanodistill.store.db import Store
from nanodistill.student.files import check_model_files

MAX_ROUNDS = 10
MAX_EXAMPLES_PER_ROUND = 2000
StartFrom = Literal["auto", "previous", "base"]


class ImproveRequest(BaseModel):
    """improve_student's arguments."""

    model: str = Field(description="A trained model's id or name; it needs a report card (evaluate_student).")
    teacher: str = Field(
        description="Any LiteLLM model (anthropic/claude-sonnet-4-5, openai/gpt-4o-mini, ollama/llama3.1, ...) "
        "or a model served at api_base: writes the new examples."
    )
    examples_per_round: int = Field(
        default=50, description=f"New teacher examples per round that target the failures (1-{MAX_EXAMPLES_PER_ROUND})."
    )
    max_rounds: int = Field(
        default=2, description=f"Rounds at most (1-{MAX_ROUNDS}); it stops earlier when a round does not improve."
    )
    max_cost_usd: float | None = Field(
        default=None,
        description="Stop cleanly, keeping the best model so far, once the teacher cost (the new examples, and "
        "grading them under metric judge) reaches this.",
    )
    start_from: StartFrom = Field(
        default="auto",
        description="What each round trains from: previous (the best model's adapter, trained on), base (fresh "
        "weights on the base model) or auto (previous when the best model's card shows it beat its base, else base).",
    )
    api_base: str | None = Field(default=None, description="URL of an OpenAI-compatible server (Ollama, vLLM, ...).")
    api_key_env: str | None = Field(
        default=None,
        description="Environment variable holding the API key: a provider's own or one the operator lists in "
        "NANODISTILL_KEY_ENVS.",
    )
    input_cost_per_token: float | None = Field(default=None, description="USD per input token, for unpriced models.")
    output_cost_per_token: float | None = Field(default=None, description="USD per output token, for unpriced models.")


class ImproveParams(BaseModel):
    """What an improve job stores: the model, the teacher settings (never a key) and the round limits."""

    model_id: str
    model_name: str
    amplify: AmplifyOptions
    examples_per_round: int
    max_rounds: int
    start_from: StartFrom = "auto"


def round_name(model_name: str, round_no: int) -> str:
    """The name of round `round_no`'s dataset and model: one name for both, so each model names its data."""
    return f"{model_name}-r{round_no}"


async def plan_improve(store: Store, settings: Settings, request: ImproveRequest) -> Plan:
    problems = Problems()
    found = await problems.check_async(lambda: models_db.get_model(store, request.model))
    if found is not None and found.kind != "trained":
        problems.add(
            f"'model': {found.name} is a base model; improve a trained student (train_student or distill first)"
        )
    elif found is not None:
        if not found.report:
            problems.add(f"'model': {found.name} has no report card yet; run evaluate_student first")
        if found.dataset_id is None or stored_options(found) is None:
            problems.add(f"'model': {found.name} has no stored training dataset or options to train the next round")
        problems.check(lambda: check_model_files(found.base_model, found.adapter_path))
        for n in range(1, request.max_rounds + 1 if 1 <= request.max_rounds <= MAX_ROUNDS else 1):
            name = round_name(found.name, n)
            if problems.check(partial(ds.check_name, name, "model")) is None:
                break
            if await ds.find_dataset(store, name) or await models_db.name_taken(store, name):
                problems.add(f"round {n} would create {name!r}, but a dataset or model of that name exists")
    problems.need(
        1 <= request.examples_per_round <= MAX_EXAMPLES_PER_ROUND,
        f"'examples_per_round' must be between 1 and {MAX_EXAMPLES_PER_ROUND}, got {request.examples_per_round}",
    )
    problems.need(
        1 <= request.max_rounds <= MAX_ROUNDS,
        f"'max_rounds' must be between 1 and {MAX_ROUNDS}, got {request.max_rounds}",
    )
    amplify = AmplifyOptions.model_validate(request.model_dump(include=set(AmplifyOptions.model_fields)))
    await check_amplify_options(amplify, None, problems)
    problems.raise_if_any("improve_student")
    assert found is not None
    params = ImproveParams(
        model_id=found.id,
        model_name=found.name,
        amplify=amplify,
        examples_per_round=request.examples_per_round,
        max_rounds=request.max_rounds,
        start_from=request.start_from,
    )
    return Plan("improve", params)
