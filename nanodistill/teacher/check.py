"""Cheap checks of a teacher configuration, run before a job starts so mistakes fail fast."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from nanodistill.errors import NanodistillError
from nanodistill.teacher.provider import api_key, missing_default_keys, provider_of

PROBE_TIMEOUT_S = 3.0


def check_teacher(model: str, api_base: str | None, api_key_env: str | None) -> None:
    """Raise NanodistillError when LiteLLM cannot route `model`, or its key is missing or may not go
    to `api_base` (see `keys`)."""
    if not model.strip():
        raise NanodistillError("teacher model is empty: pass a model such as 'anthropic/claude-sonnet-4-5'")
    provider = provider_of(model, api_base)
    api_key(model, api_base, api_key_env)
    if api_base or api_key_env:
        return
    missing = missing_default_keys(model, api_base)
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
