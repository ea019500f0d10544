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
from typing import Final, NamedTuple
from urllib.parse import urlsplit

__all__ = [
    "GENAI_PRICES_PROVIDER_IDS",
    "LOCAL_ENDPOINT_SUFFIX",
    "LOCAL_PROVIDERS",
    "PROVIDER_IDS",
    "UrlKey",
    "canonical_host",
    "clear_caches",
    "detect_endpoint",
    "detect_provider",
    "genai_prices_provider_id",
    "is_local_host",
    "local_endpoint_provider",
    "normalize_provider",
    "normalize_url",
    "split_local",
    "table_provider",
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

#: ``<provider>@local``: a call to a local host (loopback, ``localhost``, ``host.docker.internal``)
#: that ``PROVIDER_BASE_URLS`` does not map, for a model name genai-prices knows from
#: ``<provider>`` (``openai@local`` for ``gpt-4o-mini`` through a LiteLLM proxy on 127.0.0.1). It is
#: priced at ``<provider>``'s price with ``price_status`` ``inferred`` (the local rate if that
#: provider does not know the name), and keeps that meaning when the call is repriced.
LOCAL_ENDPOINT_SUFFIX: Final = "@local"

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
    # genai-prices ids, other spellings.
    "xai": "x-ai",
    "x_ai": "x-ai",
    "grok": "x-ai",
    "fireworks-ai": "fireworks",
    "fireworks_ai": "fireworks",
    "open-router": "openrouter",
    "open_router": "openrouter",
}


def _alias(key: str) -> str:
    return _PROVIDER_ALIASES.get(key, key)


def normalize_provider(provider: str) -> str:
    """Our spelling of a provider id: trimmed, lower-cased, aliases resolved (``gemini`` ->
    ``google``, ``bedrock`` -> ``aws-bedrock``), also before an ``@local`` suffix
    (``Gemini@local`` -> ``google@local``)."""
    key = provider.strip().lower()
    base, local = split_local(key)
    if local and base:
        return _alias(base) + LOCAL_ENDPOINT_SUFFIX
    return _alias(key)


def split_local(provider: str) -> tuple[str, bool]:
    """``(provider without its @local suffix, normalized; whether it had one)``:
    ``("anthropic", True)`` for ``anthropic@local``, ``("openai", False)`` for ``openai``.

    THE way every table keyed by provider (usage shapes and reports, genai-prices look-ups,
    overrides) reads an ``<provider>@local`` id: as ``<provider>``. A bare ``@local`` gives
    ``("", True)``.

    Answers are remembered (up to 4,096 ids, then forgotten whole): every LLM call reads its
    provider through several tables.
    """
    found = _split_memo.get(provider)
    if found is not None:
        return found
    key = provider.strip().lower()
    if not key.endswith(LOCAL_ENDPOINT_SUFFIX):
        found = (_alias(key), False)
    else:
        base = key.removesuffix(LOCAL_ENDPOINT_SUFFIX).strip()
        found = ((_alias(base) if base else ""), True)
    if len(_split_memo) >= 4_096:
        _split_memo.clear()
    _split_memo[provider] = found
    return found


_split_memo: dict[str, tuple[str, bool]] = {}


def table_provider(provider: str) -> str:
    """The provider id to look ``provider`` up by in a per-provider table: ``split_local``'s
    first part (``anthropic`` for ``anthropic@local``; ``unknown`` for ``''``)."""
    return split_local(provider)[0] or "unknown"


def local_endpoint_provider(provider: str) -> str | None:
    """The provider whose prices an ``<provider>@local`` id borrows (``openai`` for
    ``openai@local``), normalized; None for any other id (and for ``local@local``,
    ``unknown@local``)."""
    base, local = split_local(provider)
    if not local:
        return None
    return base if base and base not in LOCAL_PROVIDERS and base != "unknown" else None


def genai_prices_provider_id(provider: str) -> str | None:
    """The genai-prices provider id used to price ``provider``; None for local and unknown.

    ``<provider>@local`` ids are priced with ``<provider>``'s id (``openai@local`` -> ``openai``).
    """
    ours = local_endpoint_provider(provider) or normalize_provider(provider)
    if ours in LOCAL_PROVIDERS or ours == "unknown" or ours.endswith(LOCAL_ENDPOINT_SUFFIX):
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


# --------------------------------------------------------------------------------------------
# URLs and hosts, read the way the resolver and the HTTP client read them
# --------------------------------------------------------------------------------------------


class UrlKey(NamedTuple):
    """A base URL normalized for comparison (:func:`normalize_url`).

    ``host``: lower-case, without a trailing dot, an IP literal in its canonical form (any
    ``inet_aton`` spelling of an IPv4 address, ``127.1`` or ``2130706433``, as dotted quad; an
    IPv4-mapped IPv6 address as its IPv4 address; IPv6 compressed, without brackets). ``port``:
    None when absent or the scheme's default (80 for http, 443 for https). ``path``: the path's
    segments, without empty and ``.`` segments, ``..`` applied, percent-escapes of unreserved
    characters decoded (the others upper-cased). Scheme, user info, query and fragment are not
    part of it.
    """

    host: str
    port: int | None
    path: tuple[str, ...]

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port is None else f":{self.port}"
        return f"{host}{port}/" + "/".join(self.path)


_DEFAULT_PORTS: Final[Mapping[str, int]] = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_INET_PART: Final = re.compile(r"^(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$")
_ESCAPE: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any form ``inet_aton`` (so the resolver) accepts: 1 to 4 parts, each
    decimal, octal (leading 0) or hex (0x), the last filling the remaining bytes
    (``127.1``, ``0``, ``2130706433``, ``0x7f.0.0.1``, ``0177.0.0.1``); None for anything else."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_INET_PART.match(part) for part in parts):
        return None
    values = [
        int(part, 16) if part[:2] in ("0x", "0X") else int(part, 8) if part.startswith("0") else int(part)
        for part in parts
    ]
    *head, last = values
    if any(value > 255 for value in head) or last >= 256 ** (5 - len(values)):
        return None
    number = 0
    for value in head:
        number = number << 8 | value
    return ipaddress.IPv4Address(number << (8 * (4 - len(head))) | last)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address ``host`` (already lower-case, without brackets) spells, or None for a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return _inet_aton(host) if ":" not in host else None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def canonical_host(host: str) -> str:
    """``host`` as :class:`UrlKey` keeps it (lower-case, no trailing dot, IP literals canonical)."""
    name = host.strip().lower().removeprefix("[").removesuffix("]")
    if name.endswith(".") and not name.endswith(".."):
        name = name[:-1]
    address = _ip(name)
    return name if address is None else str(address)


def _segment(raw: str) -> str:
    def fix(match: re.Match[str]) -> str:
        char = chr(int(match[1], 16))
        return char if char in _UNRESERVED else "%" + match[1].upper()

    return _ESCAPE.sub(fix, raw)


def _segments(path: str) -> tuple[str, ...]:
    out: list[str] = []
    for raw in path.split("/"):
        segment = _segment(raw)
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    return tuple(out)


def normalize_url(url: str) -> UrlKey | None:
    """``url`` (with or without a scheme) as a :class:`UrlKey`; None when it has no host or
    cannot be parsed (a non-numeric port, say). ``PROVIDER_BASE_URLS``' keys and a client's base
    URL go through this same function before they are compared."""
    text = url.strip()
    if "://" not in text:
        text = "//" + text.removeprefix("//")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    host = canonical_host(parts.hostname or "")
    if not host:
        return None
    if port is not None and _DEFAULT_PORTS.get(parts.scheme.lower()) == port:
        port = None
    return UrlKey(host, port, _segments(parts.path))


@lru_cache(maxsize=1024)
def _compile_base_url_map(items: tuple[tuple[str, str], ...]) -> tuple[tuple[UrlKey, str], ...]:
    compiled = [
        (key, normalize_provider(provider))
        for prefix, provider in items
        if (key := normalize_url(prefix)) is not None
    ]
    # The most specific first: more path segments, then an explicit port.
    compiled.sort(key=lambda item: (len(item[0].path), item[0].port is not None), reverse=True)
    return tuple(compiled)


def _match_base_url_map(url: UrlKey, compiled: tuple[tuple[UrlKey, str], ...]) -> str | None:
    for key, provider in compiled:
        # Same host; same port unless the key names none; the key's path a whole-segment
        # prefix of the URL's ("/v1" matches "/v1/chat", never "/v10").
        if key.host == url.host and key.port in (None, url.port) and url.path[: len(key.path)] == key.path:
            return provider
    return None


def is_local_host(host: str) -> bool:
    """Whether ``host`` names this machine the way the resolver reads it: ``localhost``,
    ``*.localhost``, ``host.docker.internal`` (each with or without a trailing dot), and every
    spelling of a loopback or unspecified address (``127.1``, ``2130706433``, ``0``,
    ``0.0.0.0``, ``[::]``, ``[::1]``, ``[::ffff:127.0.0.1]``)."""
    return _provider_from_host(canonical_host(host)) == "local"


def _provider_from_host(host: str) -> str | None:
    """The provider of a canonical host (:func:`canonical_host`)."""
    if not host:
        return None
    found = _EXACT_HOSTS.get(host)
    if found is not None:
        return found
    for pattern, provider in _HOST_PATTERNS:
        if pattern.search(host):
            return provider
    address = _ip(host)
    if address is not None and (address.is_loopback or address.is_unspecified):
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

    1. ``base_url_map`` (``PROVIDER_BASE_URLS``): base URL prefix -> provider id. Keys and the
       base URL are both normalized by :func:`normalize_url` (host case, trailing dot, user
       info, default port, IP spellings, empty and dot path segments, trailing slash, query;
       the scheme is not compared); a key matches a URL with the same host, the same port
       (any port when the key names none) and a path that starts with the key's whole
       segments (``/v1`` matches ``/v1/chat``, never ``/v10``). The key with the most path
       segments wins. Values may be our ids, common aliases (``bedrock``, ``vertex``,
       ``gemini``...) or any genai-prices provider id (``openrouter``, ``x-ai``...).
    2. AG2's ``api_type`` (prefix match, as AG2 does). The OpenAI client types (``openai``,
       ``openai_v2``, ``responses``, ``responses_v2``) also serve OpenAI-compatible servers, so
       with a base URL that is not OpenAI's they defer to steps 3-4 and give ``unknown`` when
       neither recognises the endpoint.
    3. The base URL's host (official API hosts; local hosts -> ``local``: see
       :func:`is_local_host`, every spelling of a loopback or unspecified address included).
    4. The model name (``gpt-``/``o1``/``o3``/``o4``/``chatgpt`` -> openai, ``claude`` ->
       anthropic, ``gemini`` -> google, Mistral family -> mistral, ``deepseek``, ``command`` ->
       cohere, Bedrock ids such as ``us.anthropic.claude-...`` -> aws-bedrock).
    5. ``unknown``.

    A pure function: it never reads genai-prices' data, so a local host always gives ``local``
    here. ``pricing.detect_provider`` (what the integrations call) goes one step further and
    turns a local host into ``<provider>@local`` for a model name genai-prices knows.
    """
    return detect_endpoint(api_type=api_type, base_url=base_url, model=model, base_url_map=base_url_map)[0]


def detect_endpoint(
    *,
    api_type: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
    base_url_map: Mapping[str, str] | None = None,
) -> tuple[str, bool]:
    """``(detect_provider(...), local_host)``: ``local_host`` is True when the provider is
    ``local`` only because the base URL's host is local (step 3), not because ``base_url_map``
    or ``api_type`` said so."""
    url = normalize_url(base_url) if base_url else None
    host = url.host if url is not None else ""
    if url is not None and base_url_map:
        mapped = _match_base_url_map(url, _compile_base_url_map(tuple(base_url_map.items())))
        if mapped is not None:
            return mapped, False

    if api_type:
        kind = api_type.strip().lower()
        for prefix, provider in _API_TYPE_PREFIXES:
            if kind.startswith(prefix):
                # An OpenAI client pointed somewhere else: let the host or model decide.
                if provider != "openai" or url is None or host == "api.openai.com":
                    return provider, False
                break

    from_host = _provider_from_host(host)
    if from_host is not None:
        return from_host, from_host == "local"
    return _provider_from_model(model) or "unknown", False


def clear_caches() -> None:
    """Forget the compiled ``base_url_map`` tables and the remembered provider ids."""
    _compile_base_url_map.cache_clear()
    _split_memo.clear()
