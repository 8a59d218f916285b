"""The `train` job kind's contract: what a user asks, what the job stores, and every check before it starts.

`distill` reuses `check_training` for its train stage, so it checks exactly what train_student does.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from nanodistill.jobs.plan import Plan, Problems
from nanodistill.settings import Settings
from nanodistill.store import datasets as ds
from nanodistill.store import models as models_db
from nanodistill.store.db import Store
from nanodistill.student.ref import base_problems
from nanodistill.train.data import split_sizes
from nanodistill.train.distributed import host_problems
from nanodistill.train.options import TrainOptions, option_problems


class TrainRequest(TrainOptions):
    """train_student's arguments: the dataset, the base, the model's name, and the training options."""

    dataset: str = Field(description="The dataset to train on (its train split).")
    base_model: str = Field(
        description="A local MLX/HF model folder, a Hugging Face id (e.g. mlx-community/Qwen2.5-0.5B-Instruct-4bit), "
        "a .gguf file, ollama:NAME[:TAG], smollm2-135m, or a base registered by import_model."
    )
    name: str | None = Field(default=None, description="Name of the trained model (default <dataset>-<method>).")


class TrainParams(TrainOptions):
    """What a train job stores: the options, the dataset and the resolved base model; `init_adapter`, an
    adapter folder whose weights the training starts from (improve's next round), is set by jobs only."""

    dataset_id: str
    dataset: str
    base_model: str
    name: str
    init_adapter: str | None = None


def options_of(params: TrainOptions) -> dict[str, Any]:
    """Just the training options of a request or params record."""
    return params.model_dump(include=set(TrainOptions.model_fields))


async def check_training(
    store: Store,
    settings: Settings,
    base_model: str,
    field: str,
    opts: TrainOptions,
    n_train: int | None,
    problems: Problems,
) -> str:
    """Every problem with a base model (a path must be inside `settings.import_roots`) and training
    options (and, when known, the number of training rows); returns the base model with a registered
    name resolved to its folder."""
    resolved, found = await base_problems(store, base_model, field, settings.import_roots)
    for problem in found:
        problems.add(problem)
    for problem in option_problems(opts) + host_problems(opts, settings.import_roots):
        problems.add(problem)
    if n_train is not None:
        problems.check(lambda: split_sizes(n_train, val_fraction=opts.val_fraction, batch_size=opts.batch_size))
    return resolved


async def free_model_name(store: Store, name: str | None, default: str, problems: Problems) -> str:
    """The given name if valid and free, else the default with the first free numeric suffix."""
    if name is None:
        candidate, suffix = default, 2
        while await models_db.name_taken(store, candidate):
            candidate, suffix = f"{default}-{suffix}", suffix + 1
        return candidate
    if problems.check(lambda: ds.check_name(name)) is not None and await models_db.name_taken(store, name):
        problems.add(f"'name': a model named {name!r} already exists. Pick another name")
    return name


async def plan_train(store: Store, settings: Settings, request: TrainRequest) -> Plan:
    problems = Problems()
    found = await problems.check_async(lambda: ds.get_dataset(store, request.dataset))
    n_train: int | None = None
    if found is not None:
        n_train = (await ds.dataset_counts(store, found.id))["by_split"].get("train", 0)
        if n_train == 0:
            problems.add(f"'dataset' {found.name!r} has no training examples; add examples or amplify it")
            n_train = None
    base = await check_training(store, settings, request.base_model, "base_model", request, n_train, problems)
    name = await free_model_name(store, request.name, f"{request.dataset}-{request.method}", problems)
    problems.raise_if_any("train_student")
    assert found is not None
    params = TrainParams(**options_of(request), dataset_id=found.id, dataset=found.name, base_model=base, name=name)
    return Plan("train", params)
