"""The shape of a job kind's declaration; the table of kinds itself is `nanodistill.kinds.KINDS`."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from nanodistill.jobs.context import JobContext
from nanodistill.jobs.plan import Plan
from nanodistill.store.jobs import JobKindName

Handler = Callable[[JobContext], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class JobKind:
    """Everything about one kind of job, in one place.

    `params` is the typed record stored with the job; `plan` checks a request and returns the
    `Plan` to start; `handler` ("module:function", imported only in the job process) does the
    work; `compute` jobs wait for the machine's compute slot; `mlx` processes run MLX (fast BLAS,
    no interpreter teardown).
    """

    name: JobKindName
    params: type[BaseModel]
    plan: Callable[..., Awaitable[Plan]]
    handler: str
    compute: bool
    mlx: bool

    def load_handler(self) -> Handler:
        module_name, _, attr = self.handler.partition(":")
        handler: Handler = getattr(importlib.import_module(module_name), attr)
        return handler
