"""A tool's arguments come from its request model: one declaration of names, types, defaults and help.

`takes(Model)` gives a tool function the signature the MCP SDK builds its input schema from: the
model's fields (with their descriptions and advertised bounds) plus the function's own extra
parameters. The function receives them as keyword arguments and builds the request with
`Model.model_validate`, so the tool, `distill()` and the CLI never restate a default.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field

F = TypeVar("F", bound=Callable[..., Any])


def takes(model: type[BaseModel]) -> Callable[[F], F]:
    def apply(fn: F) -> F:
        own = inspect.signature(fn, eval_str=True)
        context = [p for p in own.parameters.values() if p.name == "ctx"]
        extra = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in own.parameters.values()
            if p.name != "ctx" and p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        fields = []
        for name, field in model.model_fields.items():
            meta = Field(description=field.description, json_schema_extra=field.json_schema_extra)
            default = inspect.Parameter.empty if field.is_required() else field.default
            annotation = Annotated[field.annotation, meta]  # type: ignore[name-defined]
            fields.append(
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            )
        # The request's own fields lead (dataset before teacher, name before the training options).
        mine = set(model.__annotations__)
        fields.sort(key=lambda p: (p.default is not inspect.Parameter.empty, p.name not in mine))
        fn.__signature__ = own.replace(parameters=[*context, *fields, *extra])  # type: ignore[attr-defined]
        return fn

    return apply
