"""nanodistill: turn a handful of examples into a small fine-tuned model.

`from nanodistill import distill` gives `nanodistill.api.distill`, loaded on first access so that
importing any engine module stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nanodistill.api import distill

__all__ = ["distill"]


def __getattr__(name: str) -> Any:
    if name == "distill":
        from nanodistill.api import distill

        return distill
    raise AttributeError(f"module 'nanodistill' has no attribute {name!r}")
