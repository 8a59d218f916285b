"""Which API key a teacher call may carry, and to where: the rule that keeps server secrets home.

A client names a teacher, an `api_base` and an `api_key_env`, so without a rule it could make the
server send any environment variable to any URL. The operator decides instead: only variables in
an allow-list (the providers' own plus `NANODISTILL_KEY_ENVS`) may be named, and a key goes to a
custom `api_base` only when that URL is in `NANODISTILL_API_BASES`. Any other custom URL gets a
placeholder key, and only from providers whose sole credential is that key. Refusals read the same
whether or not a named variable exists.
"""

from __future__ import annotations

import os
from urllib.parse import SplitResult, urlsplit

from nanodistill.errors import NanodistillError
from nanodistill.settings import api_bases_from_env, key_envs_from_env

PLACEHOLDER_KEY = "sk-nanodistill-no-key"

PROVIDER_KEY_ENVS = frozenset(
    {
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "MISTRAL_API_KEY",
        "GROQ_API_KEY",
        "COHERE_API_KEY",
        "DEEPSEEK_API_KEY",
        "TOGETHERAI_API_KEY",
        "OPENROUTER_API_KEY",
        "FIREWORKS_AI_API_KEY",
        "XAI_API_KEY",
        "PERPLEXITYAI_API_KEY",
        "HUGGINGFACE_API_KEY",
        "DEEPINFRA_API_KEY",
        "CEREBRAS_API_KEY",
        "AZURE_API_KEY",
        "NVIDIA_NIM_API_KEY",
        "REPLICATE_API_KEY",
        "SAMBANOVA_API_KEY",
    }
)
"""The variables LiteLLM reads for its common providers: always allowed as `api_key_env`."""

KEY_ONLY_PROVIDERS = frozenset(
    {
        "openai",
        "openai_like",
        "custom_openai",
        "text-completion-openai",
        "hosted_vllm",
        "vllm",
        "lm_studio",
        "llamafile",
        "ollama",
        "ollama_chat",
        "xinference",
        "litellm_proxy",
        "anthropic",
        "gemini",
        "groq",
        "mistral",
        "deepseek",
        "together_ai",
        "openrouter",
        "fireworks_ai",
        "xai",
    }
)
"""Providers whose only credential is the `api_key` LiteLLM is handed. Others (Vertex, Bedrock,
Azure AD, watsonx, Copilot...) sign or authenticate with ambient credentials from the environment
or disk, which a placeholder key would not replace, so they may use only allowed URLs."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


def allowed_key_envs() -> frozenset[str]:
    return PROVIDER_KEY_ENVS | frozenset(key_envs_from_env())


def _origin(parts: SplitResult) -> tuple[str, str, int | None, str | None, str | None]:
    port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(parts.scheme.lower())
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.username, parts.password)


def base_allowed(api_base: str, allowed: tuple[str, ...] | None = None) -> bool:
    """Whether the operator lets keys go to `api_base`: an entry with the same scheme, host and port
    whose path is `api_base`'s path or a whole-segment prefix of it (so `/v1` does not allow `/v10`)."""
    try:
        candidate = urlsplit(api_base)
        origin = _origin(candidate)
    except ValueError:
        return False
    path = candidate.path.rstrip("/") + "/"
    for entry in api_bases_from_env() if allowed is None else allowed:
        try:
            parts = urlsplit(entry)
            entry_origin = _origin(parts)
        except ValueError:
            continue
        if entry_origin == origin and origin[1] and path.startswith(parts.path.rstrip("/") + "/"):
            return True
    return False


def check_key_env(api_key_env: str | None) -> None:
    """Refuse a variable name outside the allow-list, saying nothing about whether it is set."""
    if api_key_env is not None and api_key_env not in allowed_key_envs():
        raise NanodistillError(
            f"'api_key_env' {api_key_env!r} is not a key variable this server may read: name a provider's "
            "own variable (such as OPENAI_API_KEY or ANTHROPIC_API_KEY), or ask the operator to add the "
            "name to NANODISTILL_KEY_ENVS in the server's environment"
        )


def resolve_key(provider: str, api_base: str | None, api_key_env: str | None, has_default_key: bool) -> str | None:
    """The `api_key` to hand LiteLLM. None only where LiteLLM may read its provider's own variable:
    no `api_base` (the provider's URL) or an operator-allowed one. `has_default_key` says whether that
    variable is set (else an allowed local server gets the placeholder, which it ignores)."""
    check_key_env(api_key_env)
    if api_base is not None and not base_allowed(api_base):
        if api_key_env is not None:
            raise NanodistillError(
                f"'api_key_env' cannot be used with 'api_base' {api_base}: keys go only to URLs the operator "
                "lists in NANODISTILL_API_BASES. Ask the operator to add it there, or drop api_key_env "
                "(the server then sends no key)"
            )
        if provider not in KEY_ONLY_PROVIDERS:
            raise NanodistillError(
                f"teacher provider {provider!r} authenticates with the server's own credentials, so its "
                f"'api_base' must be a URL the operator lists in NANODISTILL_API_BASES; {api_base} is not. "
                "Ask the operator to add it, or drop api_base"
            )
        return PLACEHOLDER_KEY
    if api_key_env is not None:
        value = os.environ.get(api_key_env)
        if not value:
            raise NanodistillError(
                f"'api_key_env' names {api_key_env}, but that environment variable is not set: set it in "
                "the environment of the server, or drop api_key_env"
            )
        return value
    if api_base is not None and not has_default_key:
        return PLACEHOLDER_KEY
    return None
