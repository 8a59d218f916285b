"""How a teacher model name, `api_base` and key environment variable become a LiteLLM call.

LiteLLM is imported here, lazily, and only here (the MCP server must start without it). Keys
are read from the environment at call time, under the operator's rules in `keys`, and only handed
to LiteLLM; `redact` scrubs them from any text that leaves the client.
"""

from __future__ import annotations

import gc
import os
import re
import sys
from types import ModuleType

from nanodistill.errors import NanodistillError
from nanodistill.teacher.keys import check_key_env, resolve_key

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


def provider_of(model: str, api_base: str | None) -> str:
    """The LiteLLM provider serving `model` (routed through `route_model`), or a NanodistillError."""
    try:
        _, provider, _, _ = load_litellm().get_llm_provider(model=route_model(model, api_base), api_base=api_base)
    except Exception:
        raise NanodistillError(
            f"unknown teacher model {model!r}: LiteLLM cannot tell which provider serves it. "
            "Prefix it with its provider (e.g. 'anthropic/claude-sonnet-4-5', 'openai/gpt-4o-mini', "
            "'gemini/gemini-2.0-flash', 'ollama/llama3.1'), or pass api_base for an OpenAI-compatible server"
        ) from None
    return str(provider)


def missing_default_keys(model: str, api_base: str | None) -> list[str]:
    """The provider's own key variables LiteLLM needs for `model` and finds unset."""
    found = load_litellm().validate_environment(model=route_model(model, api_base))
    return [name for name in found["missing_keys"] if not name.endswith("_API_BASE")]


def api_key(model: str, api_base: str | None, api_key_env: str | None) -> str | None:
    """The `api_key` for LiteLLM under the operator's rules (see `keys`); None lets LiteLLM read the
    provider's own variable, which happens only for the provider's URL or an allowed one."""
    check_key_env(api_key_env)
    api_base = api_base or None
    provider = provider_of(model, api_base)
    has_default = api_base is None or api_key_env is not None or not missing_default_keys(model, api_base)
    return resolve_key(provider, api_base, api_key_env, has_default)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with the given secrets and anything key-shaped replaced by `***`."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEY_LIKE.sub("***", text)
