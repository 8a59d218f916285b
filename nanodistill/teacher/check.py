"""Cheap checks of a teacher configuration, run before a job starts so mistakes fail fast."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from nanodistill.errors import NanodistillError
from nanodistill.teacher.provider import api_key, load_litellm, route_model

PROBE_TIMEOUT_S = 3.0


def check_teacher(model: str, api_base: str | None, api_key_env: str | None) -> None:
    """Raise NanodistillError when LiteLLM cannot route `model` or its API key is missing."""
    if not model.strip():
        raise NanodistillError("teacher model is empty: pass a model such as 'anthropic/claude-sonnet-4-5'")
    api_key(api_key_env, api_base)  # raises when api_key_env names an unset variable
    litellm = load_litellm()
    routed = route_model(model, api_base)
    try:
        _, provider, _, _ = litellm.get_llm_provider(model=routed, api_base=api_base)
    except Exception:
        raise NanodistillError(
            f"unknown teacher model {model!r}: LiteLLM cannot tell which provider serves it. "
            "Prefix it with its provider (e.g. 'anthropic/claude-sonnet-4-5', 'openai/gpt-4o-mini', "
            "'gemini/gemini-2.0-flash', 'ollama/llama3.1'), or pass api_base for an OpenAI-compatible server"
        ) from None
    if api_base or api_key_env:
        return
    missing = [
        name for name in litellm.validate_environment(model=routed)["missing_keys"] if not name.endswith("_API_BASE")
    ]
    if missing:
        names = " or ".join(missing)
        raise NanodistillError(
            f"teacher model {model!r} (provider {provider}) needs an API key: set the environment variable "
            f"{names} in the environment of the server, or pass api_key_env naming the variable that holds it"
        )


async def probe_api_base(api_base: str) -> None:
    """Raise NanodistillError unless something answers HTTP at `api_base` within a few seconds."""
    parts = urlsplit(api_base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NanodistillError(
            f"api_base {api_base!r} is not an http(s) URL: pass something like 'http://127.0.0.1:11434/v1'"
        )
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
            await client.get(api_base.rstrip("/") + "/models")
    except httpx.HTTPError as exc:
        raise NanodistillError(
            f"teacher api_base {api_base} is unreachable ({type(exc).__name__}): start the server there, "
            "or fix api_base"
        ) from None
