"""What a running server holds for its tools: settings, the store, and lazily the model cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nanodistill.settings import Settings
from nanodistill.store.db import Store

if TYPE_CHECKING:
    from nanodistill.student.cache import ModelCache


@dataclass
class Runtime:
    settings: Settings
    store: Store
    _models: ModelCache | None = field(default=None, repr=False)

    @property
    def models(self) -> ModelCache:
        """The LRU of loaded students, created on first use so startup never imports mlx."""
        if self._models is None:
            from nanodistill.student.cache import ModelCache

            self._models = ModelCache(self.settings.model_cache_size)
        return self._models


def runtime_of(ctx: Any) -> Runtime:
    """The Runtime the server's lifespan put in an MCP request context (tools, resources, prompts)."""
    state = ctx.request_context.lifespan_context
    assert isinstance(state, Runtime)
    return state
