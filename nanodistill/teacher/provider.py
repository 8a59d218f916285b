"""How a teacher model name, `api_base` and key environment variable become a LiteLLM call.

LiteLLM is imported here, lazily, and only here (the MCP server must start without it). Keys
are read from the environment at call time and only handed to LiteLLM; `redact` scrubs them
from any text that leaves the client.
"""

from __future__ import annotations

import gc
import os
import re
import sys
from types import ModuleType

from nanodistill.errors import NanodistillError

PLACEHOLDER_KEY = "sk-nanodistill-no-key"
_KEY_LIKE = re.compile(r"\b(sk|key|pk|rk|api)[-_][A-Za-z0-9_\-]{8,}")


def load_litellm() -> ModuleType:
    """Import LiteLLM quietly, with its bundled price map (no network fetch at import).

    The first import creates ~400,000 long-lived objects: the collector is paused while it runs (its
    full collections would stall the process, the MCP server's event loop included, 0.1-0.2 s each),
    and they are frozen out of later collections (each would scan them: 0.3-0.7 s stalls)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    first = "litellm" not in sys.modules
    if first:
        gc.disable()
    try:
        import litellm
    finally:
        if first:
            gc.enable()
            gc.freeze()

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def route_model(model: str, api_base: str | None) -> str:
    """With an `api_base`, a name without a known provider prefix is an OpenAI-compatible model."""
    if not api_base:
        return model
    prefix = model.split("/", 1)[0] if "/" in model else ""
    if prefix and prefix in load_litellm().provider_list:
        return model
    return f"openai/{model}"


def api_key(api_key_env: str | None, api_base: str | None) -> str | None:
    """The key to send: from `api_key_env`; a placeholder for a custom `api_base` without one
    (so a provider key from the environment is never sent to a custom URL); else None, letting
    LiteLLM read its provider's default variable."""
    if api_key_env:
        value = os.environ.get(api_key_env)
        if not value:
            raise NanodistillError(
                f"api_key_env names {api_key_env}, but that environment variable is not set: "
                f"set {api_key_env} in the environment of the server, or drop api_key_env"
            )
        return value
    return PLACEHOLDER_KEY if api_base else None


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with the given secrets and anything key-shaped replaced by `***`."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEY_LIKE.sub("***", text)
