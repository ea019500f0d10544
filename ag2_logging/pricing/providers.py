"""Which provider an LLM call went to: provider ids, their spellings, and detection.

:func:`detect_provider` reads an LLM config (AG2's ``api_type``, the base URL, the model name, and
the project's ``PROVIDER_BASE_URLS``) and returns one of :data:`PROVIDER_IDS`;
:func:`genai_prices_provider_id` says which genai-prices provider prices it. Pure functions: no
ORM, no Django settings, no genai-prices data.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "GENAI_PRICES_PROVIDER_IDS",
    "LOCAL_PROVIDERS",
    "PROVIDER_IDS",
    "clear_caches",
    "detect_provider",
    "genai_prices_provider_id",
    "normalize_provider",
]


# --------------------------------------------------------------------------------------------
# Provider ids
# --------------------------------------------------------------------------------------------

#: Every provider id ``detect_provider`` can return. ``cerebras`` is there because AG2 classic has
#: a ``cerebras`` api_type and genai-prices prices it.
PROVIDER_IDS: Final[tuple[str, ...]] = (
    "openai",
    "azure",
    "anthropic",
    "google",
    "google-vertex",
    "aws-bedrock",
    "mistral",
    "groq",
    "deepseek",
    "together",
    "cohere",
    "cerebras",
    "ollama",
    "local",
    "unknown",
)

#: Providers priced at the configured local rate instead of a price list.
LOCAL_PROVIDERS: Final[frozenset[str]] = frozenset({"ollama", "local"})

#: Our provider id -> genai-prices provider id. ``google-vertex`` shares genai-prices' ``google``
#: provider (its API pattern covers every ``*.googleapis.com`` host, and it falls back to Anthropic
#: prices for Claude on Vertex); Azure falls back to OpenAI's models inside genai-prices. A
#: provider id that is not listed here (``openrouter``, ``x-ai``... set through
#: ``PROVIDER_BASE_URLS``) is handed to genai-prices unchanged.
GENAI_PRICES_PROVIDER_IDS: Final[Mapping[str, str]] = {
    "openai": "openai",
    "azure": "azure",
    "anthropic": "anthropic",
    "google": "google",
    "google-vertex": "google",
    "aws-bedrock": "aws",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "together": "together",
    "cohere": "cohere",
    "cerebras": "cerebras",
}

# Spellings accepted for a provider id (in ``base_url_map`` values and ``price_call``).
_PROVIDER_ALIASES: Final[Mapping[str, str]] = {
    "openai": "openai",
    "azure": "azure",
    "azure-openai": "azure",
    "azure_openai": "azure",
    "anthropic": "anthropic",
    "google": "google",
    "gemini": "google",
    "google-vertex": "google-vertex",
    "google_vertex": "google-vertex",
    "vertex": "google-vertex",
    "vertex_ai": "google-vertex",
    "vertexai": "google-vertex",
    "aws-bedrock": "aws-bedrock",
    "aws_bedrock": "aws-bedrock",
    "bedrock": "aws-bedrock",
    "aws": "aws-bedrock",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "together": "together",
    "together-ai": "together",
    "together_ai": "together",
    "cohere": "cohere",
    "cerebras": "cerebras",
    "ollama": "ollama",
    "local": "local",
    "unknown": "unknown",
    "": "unknown",
}


def normalize_provider(provider: str) -> str:
    key = provider.strip().lower()
    return _PROVIDER_ALIASES.get(key, key)


def genai_prices_provider_id(provider: str) -> str | None:
    """The genai-prices provider id used to price ``provider``; None for local and unknown."""
    ours = normalize_provider(provider)
    if ours in LOCAL_PROVIDERS or ours == "unknown":
        return None
    return GENAI_PRICES_PROVIDER_IDS.get(ours, ours)


# --------------------------------------------------------------------------------------------
# Provider detection
# --------------------------------------------------------------------------------------------

# AG2 classic picks its client with `api_type.startswith(...)` (autogen/oai/client.py), so do the
# same, longest prefixes first. "openai", "openai_v2", "responses" and "responses_v2" are the
# default OpenAI client, also used for every OpenAI-compatible server: they are "weak" (below).
_API_TYPE_PREFIXES: Final[tuple[tuple[str, str], ...]] = (
    ("google_vertex", "google-vertex"),
    ("google", "google"),
    ("azure", "azure"),
    ("anthropic", "anthropic"),  # also anthropic_v2
    ("bedrock", "aws-bedrock"),  # also bedrock_v2
    ("mistral", "mistral"),
    ("groq", "groq"),
    ("deepseek", "deepseek"),
    ("together", "together"),
    ("cohere", "cohere"),
    ("ollama", "ollama"),
    ("cerebras", "cerebras"),
    ("openai", "openai"),  # also openai_v2
    ("responses", "openai"),  # also responses_v2
)

_EXACT_HOSTS: Final[Mapping[str, str]] = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "google",
    "aiplatform.googleapis.com": "google-vertex",
    "api.mistral.ai": "mistral",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.together.xyz": "together",
    "api.together.ai": "together",
    "api.cohere.com": "cohere",
    "api.cohere.ai": "cohere",
    "api.cerebras.ai": "cerebras",
    "localhost": "local",
    "host.docker.internal": "local",
}

_HOST_PATTERNS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"(?:^|\.)(?:openai\.azure\.com|cognitiveservices\.azure\.com)$"), "azure"),
    (re.compile(r"^[a-z0-9-]+-aiplatform\.googleapis\.com$"), "google-vertex"),
    (re.compile(r"^bedrock-runtime(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com$"), "aws-bedrock"),
    (re.compile(r"\.localhost$"), "local"),
)

# Bedrock model ids: "<vendor>.<model>", optionally behind a cross-region inference prefix
# ("us.", "eu.", "apac.", "global."): anthropic.claude-3-haiku-20240307-v1:0, us.amazon.nova-pro-v1:0.
_BEDROCK_MODEL_RE: Final = re.compile(
    r"^(?:[a-z]{2,6}\.)?(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|qwen|writer|openai)\.[a-z0-9]"
)
_OPENAI_MODEL_RE: Final = re.compile(r"^(?:gpt-|chatgpt|o[134](?:-|$))")
_MODEL_PREFIXES: Final[tuple[tuple[tuple[str, ...], str], ...]] = (
    (("claude",), "anthropic"),
    (("gemini",), "google"),
    (
        (
            "mistral",
            "mixtral",
            "codestral",
            "open-mistral",
            "open-mixtral",
            "ministral",
            "pixtral",
            "magistral",
            "devstral",
        ),
        "mistral",
    ),
    (("deepseek",), "deepseek"),
    (("command",), "cohere"),
)


def _url_parts(base_url: str) -> tuple[str, str]:
    """(host, scheme-less lower-cased URL without a trailing slash) of a base URL."""
    text = base_url.strip().lower()
    if "://" not in text:
        text = "//" + text
    try:
        host = urlsplit(text).hostname or ""
    except ValueError:
        host = ""
    return host, text.split("//", 1)[1].rstrip("/")


@lru_cache(maxsize=1024)
def _compile_base_url_map(items: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    compiled = [(_url_parts(prefix)[1], normalize_provider(provider)) for prefix, provider in items]
    # Longest prefix first: the first match is the most specific one.
    compiled.sort(key=lambda item: len(item[0]), reverse=True)
    return tuple((prefix, provider) for prefix, provider in compiled if prefix)


def _match_base_url_map(url: str, compiled: tuple[tuple[str, str], ...]) -> str | None:
    for prefix, provider in compiled:
        # The prefix must end at a boundary: "localhost" matches "localhost:11434/v1",
        # "api.example.com" does not match "api.example.community".
        if url.startswith(prefix) and (len(url) == len(prefix) or url[len(prefix)] in "/:?#"):
            return provider
    return None


def _provider_from_host(host: str) -> str | None:
    if not host:
        return None
    found = _EXACT_HOSTS.get(host)
    if found is not None:
        return found
    for pattern, provider in _HOST_PATTERNS:
        if pattern.search(host):
            return provider
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_loopback or address.is_unspecified:
        return "local"
    return None


def _provider_from_model(model: str | None) -> str | None:
    if not model:
        return None
    name = model.strip().lower().removeprefix("models/")
    if _BEDROCK_MODEL_RE.match(name):
        return "aws-bedrock"
    if _OPENAI_MODEL_RE.match(name):
        return "openai"
    for prefixes, provider in _MODEL_PREFIXES:
        if name.startswith(prefixes):
            return provider
    return None


def detect_provider(
    *,
    api_type: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
    base_url_map: Mapping[str, str] | None = None,
) -> str:
    """The provider id (one of ``PROVIDER_IDS``, or a ``base_url_map`` value) for an LLM config.

    Checked in order:

    1. ``base_url_map`` (``PROVIDER_BASE_URLS``): base URL prefix -> provider id, compared
       without scheme, case and trailing slash, ending at a ``/ : ? #`` boundary; the longest
       matching prefix wins. Values may be our ids, common aliases (``bedrock``, ``vertex``,
       ``gemini``...) or any genai-prices provider id (``openrouter``, ``x-ai``...).
    2. AG2's ``api_type`` (prefix match, as AG2 does). The OpenAI client types (``openai``,
       ``openai_v2``, ``responses``, ``responses_v2``) also serve OpenAI-compatible servers, so
       with a base URL that is not OpenAI's they defer to steps 3-4 and give ``unknown`` when
       neither recognises the endpoint.
    3. The base URL's host (official API hosts; loopback hosts -> ``local``).
    4. The model name (``gpt-``/``o1``/``o3``/``o4``/``chatgpt`` -> openai, ``claude`` ->
       anthropic, ``gemini`` -> google, Mistral family -> mistral, ``deepseek``, ``command`` ->
       cohere, Bedrock ids such as ``us.anthropic.claude-...`` -> aws-bedrock).
    5. ``unknown``.
    """
    host = url = ""
    if base_url:
        host, url = _url_parts(base_url)
        if base_url_map:
            mapped = _match_base_url_map(url, _compile_base_url_map(tuple(base_url_map.items())))
            if mapped is not None:
                return mapped

    if api_type:
        kind = api_type.strip().lower()
        for prefix, provider in _API_TYPE_PREFIXES:
            if kind.startswith(prefix):
                # An OpenAI client pointed somewhere else: let the host or model decide.
                if provider != "openai" or not url or host == "api.openai.com":
                    return provider
                break

    return _provider_from_host(host) or _provider_from_model(model) or "unknown"


def clear_caches() -> None:
    """Forget the compiled ``base_url_map`` tables."""
    _compile_base_url_map.cache_clear()
