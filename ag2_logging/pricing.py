"""What an LLM call cost: provider detection, usage normalization and pricing.

Everything here is a pure function of its arguments (plus process-local caches): no ORM, no
Django settings. Callers pass the configured values in (``PROVIDER_BASE_URLS`` as
``base_url_map``, ``LOCAL_MODEL_RATE`` as ``local_rate``, the admin's overrides as
``overrides``).

Token convention used throughout the app (``normalize_usage`` converts a provider's raw report
to it):

* ``prompt_tokens`` INCLUDES ``cached_tokens`` (cache reads) and ``cache_write_tokens``;
* ``completion_tokens`` INCLUDES ``reasoning_tokens``;
* ``total_tokens`` = ``prompt_tokens`` + ``completion_tokens``.

This is also genai-prices' own convention: its ``input_tokens`` unit is the parent of
``cache_read_tokens`` and ``cache_write_tokens`` (the Anthropic extractor in its data adds
``cache_read_input_tokens`` and ``cache_creation_input_tokens`` into ``input_tokens``), and its
``output_tokens`` is the parent of ``output_reasoning_tokens``. When a model prices a child unit,
genai-prices charges the parent only for what is left after subtracting the children, so the
mapping below is one to one and nothing is counted twice::

    Usage(input_tokens=prompt_tokens, cache_read_tokens=cached_tokens,
          cache_write_tokens=cache_write_tokens, output_tokens=completion_tokens,
          output_reasoning_tokens=reasoning_tokens)

Prices come from the data bundled with the installed genai-prices only: nothing here calls
``UpdatePrices`` or touches the network, and a process that does enable ``UpdatePrices`` for
its own purposes does not change what this module charges.

Pricing a call with ``genai_prices.calc_price`` costs about 70 microseconds, so the first look-up
of a (provider, model) pair resolves the model once and compiles each of its price sets into a
small plan (per unit: which token counts it covers, the rate or tiered rate, the direction); the
following calls do the same Decimal arithmetic as ``calc_price`` (``rate * count / per`` per
unit, summed in genai-prices' order, the tier picked from the prompt size, time-conditional
prices picked with genai-prices' own ``ModelInfo.get_prices``). Every plan is checked against
``ModelPrice.calc_price`` on probe usages when it is built; a price set whose plan disagrees (a
future genai-prices with different rules, say) is priced by genai-prices itself on every call.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import urlsplit

from genai_prices import Usage
from genai_prices.types import TieredPrices

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo, ModelPrice, Provider
    from genai_prices.units import UnitRegistry

__all__ = [
    "GENAI_PRICES_PROVIDER_IDS",
    "LOCAL_PROVIDERS",
    "PROVIDER_IDS",
    "NormalizedUsage",
    "PriceOverride",
    "PriceResult",
    "PriceStatus",
    "canonical_model",
    "clear_caches",
    "detect_provider",
    "genai_prices_provider_id",
    "normalize_usage",
    "price_call",
    "select_override",
    "warn_unknown_once",
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


def _normalize_provider(provider: str) -> str:
    key = provider.strip().lower()
    return _PROVIDER_ALIASES.get(key, key)


def genai_prices_provider_id(provider: str) -> str | None:
    """The genai-prices provider id used to price ``provider``; None for local and unknown."""
    ours = _normalize_provider(provider)
    if ours in LOCAL_PROVIDERS or ours == "unknown":
        return None
    return GENAI_PRICES_PROVIDER_IDS.get(ours, ours)


# --------------------------------------------------------------------------------------------
# Usage normalization
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NormalizedUsage:
    """Token counts in the app's convention (see the module docstring).

    Raises ValueError for a negative count, for cache reads plus cache writes above the prompt,
    or for reasoning above the completion.
    """

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    total_tokens: int = field(init=False)

    def __post_init__(self) -> None:
        counts = (
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.reasoning_tokens,
            self.cache_write_tokens,
        )
        if any(count < 0 for count in counts):
            raise ValueError(f"token counts cannot be negative: {counts}")
        if self.cached_tokens + self.cache_write_tokens > self.prompt_tokens:
            raise ValueError(
                f"cached_tokens ({self.cached_tokens}) + cache_write_tokens ({self.cache_write_tokens}) "
                f"exceed prompt_tokens ({self.prompt_tokens})"
            )
        if self.reasoning_tokens > self.completion_tokens:
            raise ValueError(
                f"reasoning_tokens ({self.reasoning_tokens}) exceed completion_tokens "
                f"({self.completion_tokens})"
            )
        object.__setattr__(self, "total_tokens", self.prompt_tokens + self.completion_tokens)


# How each provider reports usage, as (prompt includes cache reads/writes, completion includes
# reasoning). Anything not listed reports the OpenAI way.
_USAGE_SHAPES: Final[Mapping[str, tuple[bool, bool]]] = {
    # OpenAI and the OpenAI-compatible APIs (Azure OpenAI, Groq, DeepSeek, Mistral, Together,
    # Cerebras, Ollama's and other local OpenAI-compatible servers): `prompt_tokens` includes
    # `prompt_tokens_details.cached_tokens` (DeepSeek: `prompt_cache_hit_tokens`), and
    # `completion_tokens` includes `completion_tokens_details.reasoning_tokens`.
    "openai": (True, True),
    "azure": (True, True),
    "groq": (True, True),
    "deepseek": (True, True),
    "mistral": (True, True),
    "together": (True, True),
    "cerebras": (True, True),
    "cohere": (True, True),
    "ollama": (True, True),
    "local": (True, True),
    # Anthropic: `input_tokens` EXCLUDES `cache_read_input_tokens` and
    # `cache_creation_input_tokens` (they are reported beside it), so both are added back;
    # `output_tokens` already includes extended-thinking tokens.
    "anthropic": (False, True),
    # Bedrock Converse: `inputTokens` excludes `cacheReadInputTokens` and `cacheWriteInputTokens`
    # (same shape as Anthropic); `outputTokens` includes reasoning.
    "aws-bedrock": (False, True),
    # Gemini (API and Vertex): `prompt_token_count` INCLUDES `cached_content_token_count`, but
    # `candidates_token_count` EXCLUDES `thoughts_token_count` (thinking is reported separately
    # and billed as output), so the thoughts are added to the completion.
    "google": (True, False),
    "google-vertex": (True, False),
}


def normalize_usage(
    provider: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    cached_tokens: int | None = 0,
    reasoning_tokens: int | None = 0,
    cache_write_tokens: int | None = 0,
    *,
    prompt_includes_cached: bool | None = None,
    completion_includes_reasoning: bool | None = None,
) -> NormalizedUsage:
    """Convert a provider's raw usage report to the app's convention.

    ``prompt_includes_cached`` (covers cache reads and cache writes) and
    ``completion_includes_reasoning`` default from ``provider``; pass them to override.

    Never raises on a bad report, so a provider quirk cannot lose a call's log: None and
    negative counts are read as 0, and a breakdown larger than its total (cache reads plus
    writes above the prompt, reasoning above the completion) is clipped to the total, cache
    reads first.
    """
    default_prompt, default_completion = _USAGE_SHAPES.get(_normalize_provider(provider), (True, True))
    if prompt_includes_cached is None:
        prompt_includes_cached = default_prompt
    if completion_includes_reasoning is None:
        completion_includes_reasoning = default_completion
    prompt = max(prompt_tokens or 0, 0)
    completion = max(completion_tokens or 0, 0)
    cached = max(cached_tokens or 0, 0)
    reasoning = max(reasoning_tokens or 0, 0)
    cache_write = max(cache_write_tokens or 0, 0)
    if not prompt_includes_cached:
        prompt += cached + cache_write
    if not completion_includes_reasoning:
        completion += reasoning
    cached = min(cached, prompt)
    cache_write = min(cache_write, prompt - cached)
    reasoning = min(reasoning, completion)
    return NormalizedUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        cache_write_tokens=cache_write,
    )


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
    compiled = [(_url_parts(prefix)[1], _normalize_provider(provider)) for prefix, provider in items]
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


# --------------------------------------------------------------------------------------------
# genai-prices look-ups
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _snapshot() -> DataSnapshot:
    # Our own snapshot of the bundled data: never the one UpdatePrices may install globally.
    from genai_prices.data import providers
    from genai_prices.data_snapshot import DataSnapshot

    return DataSnapshot(providers=providers, from_auto_update=False)


# -2024-08-06 and -20240806 (genai-prices rewrites a compact date to the dashed form itself, but
# only to match a dated alias it lists; this drops the date altogether).
_DATE_SUFFIX_RE: Final = re.compile(r"-20\d{2}-?(?:0[1-9]|1[0-2])-?(?:0[1-9]|[12]\d|3[01])$")
# -0613 (MMDD, OpenAI) and -2409 (YYMM, Mistral); not -8192 / -32768 (context sizes).
_SHORT_DATE_SUFFIX_RE: Final = re.compile(
    r"-(?:(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])|2[3-9](?:0[1-9]|1[0-2]))$"
)
# Azure deployment names cannot contain dots, so AG2 turns gpt-3.5-turbo into gpt-35-turbo.
_AZURE_DOTLESS_RE: Final = re.compile(r"^gpt-(\d)(\d)(?=-|$)")


def _model_candidates(provider: str, model: str) -> tuple[str, ...]:
    """Names to try, in order, for ``model``: each step undoes one more decoration.

    genai-prices already matches most snapshot names (gpt-4o-2024-08-06, claude-3-5-sonnet-20241022,
    gemini-1.5-pro-002, compact dates like gpt-4o-20240806, gpt-35-turbo on Azure); these are
    only tried when the name as given is unknown to it:

    * a ``models/`` prefix (Gemini SDK resource names);
    * an ``@version`` suffix (Vertex AI model versions);
    * a trailing date snapshot: ``-2024-08-06``, ``-20240806``, ``-0613`` or ``-2409``;
    * on Azure, dotless deployment-style names: ``gpt-41-mini`` -> ``gpt-4.1-mini``.
    """
    name = model.strip()
    candidates = [name]

    def add(value: str) -> None:
        nonlocal name
        if value and value != name:
            name = value
            candidates.append(value)

    add(name.removeprefix("models/"))
    add(name.split("@", 1)[0])
    add(_DATE_SUFFIX_RE.sub("", name))
    add(_SHORT_DATE_SUFFIX_RE.sub("", name))
    if provider == "azure":
        for candidate in tuple(candidates):
            dotted = _AZURE_DOTLESS_RE.sub(r"gpt-\1.\2", candidate)
            if dotted != candidate and dotted not in candidates:
                candidates.append(dotted)
    return tuple(candidates)


# One priced unit of a model price, compiled: (coefficients of its leaf count as (index into the
# usage tuple, coefficient) pairs, constant count (1 for the per-request unit), base rate, tiers as
# (start, rate) pairs highest start first, unit size, direction: 1 input, 2 output, 0 neither).
# Plain tuples: they unpack faster than attribute reads on the hot path.
_Term = tuple[tuple[tuple[int, int], ...], int, Decimal, tuple[tuple[int, Decimal], ...], Decimal, int]


@dataclass(frozen=True, slots=True)
class _Plan:
    terms: tuple[_Term, ...]


@dataclass(frozen=True, slots=True)
class _Entry:
    ours: str  # our provider id
    model_name: str  # the candidate name genai-prices matched
    model_ref: str  # genai-prices' model id
    info: ModelInfo
    provider: Provider
    fixed: ModelPrice | None  # the model's only price set; None for time-conditional prices
    plans: Mapping[int, _Plan | None]  # id(ModelPrice) -> plan, None = price with genai-prices


_LOCAL: Final = "local"
_UNKNOWN: Final = "unknown"

# Our usage tuple, in order, and the genai-prices usage key each one maps to.
_USAGE_KEYS: Final[tuple[str, ...]] = (
    "input_tokens",  # prompt_tokens (includes cache reads and writes)
    "cache_read_tokens",  # cached_tokens
    "cache_write_tokens",  # cache_write_tokens
    "output_tokens",  # completion_tokens (includes reasoning)
    "output_reasoning_tokens",  # reasoning_tokens
)
_MILLION: Final = Decimal(1_000_000)
_ZERO: Final = Decimal(0)
_PROBES: Final[tuple[tuple[int, int, int, int, int], ...]] = (
    (1_000, 300, 200, 500, 100),
    (456_789, 123_456, 65_432, 34_567, 12_345),
    (7, 0, 0, 3, 0),
    (0, 0, 0, 0, 0),
)


def _as_tuple(usage: NormalizedUsage) -> tuple[int, int, int, int, int]:
    return (
        usage.prompt_tokens,
        usage.cached_tokens,
        usage.cache_write_tokens,
        usage.completion_tokens,
        usage.reasoning_tokens,
    )


def _genai_usage(counts: tuple[int, int, int, int, int]) -> Usage:
    prompt, cached, cache_write, completion, reasoning = counts
    return Usage(
        input_tokens=prompt,
        cache_read_tokens=cached,
        cache_write_tokens=cache_write,
        output_tokens=completion,
        output_reasoning_tokens=reasoning,
    )


@lru_cache(maxsize=1)
def _registry() -> UnitRegistry:
    from genai_prices.data_units import unit_data
    from genai_prices.units import UnitRegistry

    return UnitRegistry(unit_data)


def _compile_plan(model_price: ModelPrice) -> _Plan | None:
    """Compile ``model_price`` the way ``ModelPrice.calc_price`` prices it, or None if unsure."""
    try:
        registry = _registry()
        priced = [
            (registry.unit_for_price_key(key), value)
            for key, value in vars(model_price).items()
            if not key.startswith("_") and value is not None
        ]
        width = len(_USAGE_KEYS) + 1  # the usage counts, then the constant
        raw: dict[str, list[int]] = {}
        for unit, _ in priced:
            vector = [0] * width
            if unit.usage_key in _USAGE_KEYS:
                vector[_USAGE_KEYS.index(unit.usage_key)] = 1
            elif unit.usage_key == "requests":
                vector[-1] = 1
            raw[unit.usage_key] = vector
        # Leaf counts: each unit minus its priced descendants' leaves, most specific first
        # (genai_prices.decompose.compute_leaf_values).
        units = [unit for unit, _ in priced if unit.usage_key != "requests"]
        leaves: dict[str, list[int]] = {}
        for unit in sorted(units, key=lambda u: (-len(u.dimensions), u.usage_key)):
            vector = list(raw[unit.usage_key])
            for other in units:
                if other is not unit and unit.dimensions.items() <= other.dimensions.items():
                    vector = [a - b for a, b in zip(vector, leaves[other.usage_key], strict=True)]
            leaves[unit.usage_key] = vector
        terms: list[_Term] = []
        for unit, price in priced:
            vector = leaves.get(unit.usage_key, raw[unit.usage_key])
            coefs = tuple((index, coef) for index, coef in enumerate(vector[:-1]) if coef)
            if not coefs and not vector[-1]:
                continue  # a unit our usage never reports (audio, web searches...): always 0
            if isinstance(price, TieredPrices):
                base = price.base
                tiers = tuple((tier.start, tier.price) for tier in reversed(price.tiers))
            elif isinstance(price, Decimal):
                base, tiers = price, ()
            else:
                return None
            direction = {"input": 1, "output": 2}.get(unit.dimensions.get("direction", ""), 0)
            terms.append((coefs, vector[-1], base, tiers, Decimal(unit.per), direction))
        plan = _Plan(terms=tuple(terms))
        for probe in _PROBES:
            expected = model_price.calc_price(_genai_usage(probe))
            got = _run_plan(plan, probe)
            if (got[0], got[1], got[2]) != (
                expected["total_price"],
                expected["input_price"],
                expected["output_price"],
            ):
                return None
    except Exception:
        return None
    return plan


def _run_plan(plan: _Plan, counts: tuple[int, int, int, int, int]) -> tuple[Decimal, Decimal, Decimal]:
    """(total, input, output) price of ``counts`` under ``plan``, as ``calc_price`` computes it."""
    total = input_price = output_price = _ZERO
    prompt = counts[0]
    for coefs, count, rate, tiers, per, direction in plan.terms:
        for index, coef in coefs:
            count += coef * counts[index]
        if count == 0:
            continue
        if count < 0:
            raise ValueError("invalid usage: a breakdown exceeds its total")
        # Threshold tiers: the whole count pays the rate of the highest tier whose start the
        # prompt (genai-prices' total input tokens) exceeds (genai_prices.types.calc_unit_price).
        for start, tier_rate in tiers:
            if prompt > start:
                rate = tier_rate
                break
        value = rate * Decimal(count) / per
        total += value
        if direction == 1:
            input_price += value
        elif direction == 2:
            output_price += value
    return total, input_price, output_price


def _find(ours: str, gp_provider: str, model: str) -> tuple[str, ModelInfo, Provider] | None:
    snapshot = _snapshot()
    for candidate in _model_candidates(ours, model):
        try:
            provider, info = snapshot.find_provider_model(candidate, None, gp_provider, None)
        except LookupError:
            continue
        return candidate, info, provider
    return None


@lru_cache(maxsize=4096)
def _lookup(provider: str, model: str) -> _Entry | str:
    """The compiled pricing entry for (provider, model), or ``_LOCAL`` / ``_UNKNOWN``."""
    ours = _normalize_provider(provider)
    if ours in LOCAL_PROVIDERS:
        return _LOCAL
    gp_provider = genai_prices_provider_id(ours)
    if gp_provider is None or not model.strip():
        return _UNKNOWN
    found = _find(ours, gp_provider, model)
    if found is None:
        return _UNKNOWN
    name, info, gp = found
    if isinstance(info.prices, list):
        price_sets = [conditional.prices for conditional in info.prices]
        fixed = None
    else:
        price_sets = [info.prices]
        fixed = info.prices
    plans = {id(price_set): _compile_plan(price_set) for price_set in price_sets}
    return _Entry(
        ours=ours,
        model_name=name,
        model_ref=info.id,
        info=info,
        provider=gp,
        fixed=fixed,
        plans=plans,
    )


def canonical_model(provider: str, model: str) -> str:
    """The name genai-prices knows ``model`` by for ``provider``, after the fallbacks.

    Returns the first of ``_model_candidates`` that genai-prices matches (``model`` itself when
    it is known as given), or ``model`` stripped when none is (and for local/unknown providers).
    """
    entry = _lookup(provider, model)
    if isinstance(entry, _Entry):
        return entry.model_name
    return model.strip()


def clear_caches() -> None:
    """Forget every cached look-up and every "unknown model" warning already logged."""
    _lookup.cache_clear()
    _compile_base_url_map.cache_clear()
    with _warned_lock:
        _warned.clear()


# --------------------------------------------------------------------------------------------
# Overrides and results
# --------------------------------------------------------------------------------------------

PriceStatus = Literal["priced", "override", "local", "unknown"]


def _utc_date(at: datetime) -> date:
    # Aware timestamps are compared in UTC, naive ones are taken as UTC (as genai-prices does).
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.date()


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceOverride:
    """An admin-set price, per million tokens, for models matching ``model_pattern``.

    ``provider`` '' or '*' matches any provider. ``model_pattern`` is an exact model name or an
    fnmatch pattern (``*``, ``?``, ``[...]``), both case-insensitive, compared with the model name
    as logged. ``cached_input`` and ``cache_write`` default to ``input``, ``reasoning`` to
    ``output``. The override applies from ``effective_from`` (inclusive) to ``effective_to``
    (exclusive), compared with the call's UTC date; None leaves that side open.
    """

    provider: str = ""
    model_pattern: str
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    effective_from: date | None = None
    effective_to: date | None = None

    @property
    def is_pattern(self) -> bool:
        return any(char in self.model_pattern for char in "*?[")

    @property
    def any_provider(self) -> bool:
        return self.provider.strip() in ("", "*")

    def matches(self, provider: str, model: str, at: datetime) -> bool:
        if not self.any_provider and _normalize_provider(self.provider) != _normalize_provider(provider):
            return False
        pattern = self.model_pattern.strip().lower()
        name = model.strip().lower()
        if self.is_pattern:
            if not fnmatch.fnmatchcase(name, pattern):
                return False
        elif name != pattern:
            return False
        day = _utc_date(at)
        if self.effective_from is not None and day < self.effective_from:
            return False
        return self.effective_to is None or day < self.effective_to

    def specificity(self) -> tuple[bool, date, bool]:
        """Sort key: exact model beats pattern, then latest ``effective_from``, then a named provider."""
        return (not self.is_pattern, self.effective_from or date.min, not self.any_provider)


def select_override(
    overrides: Sequence[PriceOverride], provider: str, model: str, at: datetime
) -> PriceOverride | None:
    """The most specific override that applies (see ``PriceOverride.specificity``).

    On a tie the first one in ``overrides`` wins.
    """
    best: PriceOverride | None = None
    best_key: tuple[bool, date, bool] | None = None
    for override in overrides:
        if not override.matches(provider, model, at):
            continue
        key = override.specificity()
        if best_key is None or key > best_key:
            best, best_key = override, key
    return best


@dataclass(frozen=True, slots=True)
class PriceResult:
    """The price of one call.

    ``status``: ``priced`` (genai-prices), ``override`` (an admin price), ``local`` (the local
    rate) or ``unknown`` (no price: ``cost`` is None, never 0). ``model_ref`` is the genai-prices
    model id that was matched (``priced`` only); ``override`` the override that was used.
    """

    cost: Decimal | None
    status: PriceStatus
    input_cost: Decimal | None
    output_cost: Decimal | None
    model_ref: str | None
    provider: str
    override: PriceOverride | None = None


def _price_override(override: PriceOverride, provider: str, usage: NormalizedUsage) -> PriceResult:
    uncached = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
    plain_output = usage.completion_tokens - usage.reasoning_tokens
    cached_rate = override.input if override.cached_input is None else override.cached_input
    write_rate = override.input if override.cache_write is None else override.cache_write
    reasoning_rate = override.output if override.reasoning is None else override.reasoning
    input_cost = (
        Decimal(uncached) * override.input
        + Decimal(usage.cached_tokens) * cached_rate
        + Decimal(usage.cache_write_tokens) * write_rate
    ) / _MILLION
    output_cost = (
        Decimal(plain_output) * override.output + Decimal(usage.reasoning_tokens) * reasoning_rate
    ) / _MILLION
    return PriceResult(
        cost=input_cost + output_cost,
        status="override",
        input_cost=input_cost,
        output_cost=output_cost,
        model_ref=None,
        provider=provider,
        override=override,
    )


def _unknown(provider: str) -> PriceResult:
    return PriceResult(
        cost=None, status="unknown", input_cost=None, output_cost=None, model_ref=None, provider=provider
    )


def price_call(
    provider: str,
    model: str,
    usage: NormalizedUsage,
    *,
    at: datetime | None = None,
    overrides: Sequence[PriceOverride] = (),
    local_rate: Decimal = Decimal(0),
) -> PriceResult:
    """What one call cost, in USD.

    1. The most specific applicable override (``select_override``) -> ``override``.
    2. ``ollama`` / ``local`` -> ``total_tokens * local_rate / 1e6``, ``local``.
    3. genai-prices' bundled data, the model name tried as given then through
       ``canonical_model``'s fallbacks -> ``priced``.
    4. Otherwise (unknown provider or model, or any failure) -> cost None, ``unknown``.

    ``at`` (default: now) selects overrides and genai-prices' time-dependent prices (DeepSeek's
    off-peak hours, announced price changes).
    """
    if overrides:
        override = select_override(overrides, provider, model, at or datetime.now(UTC))
        if override is not None:
            return _price_override(override, provider, usage)
    entry = _lookup(provider, model)
    if not isinstance(entry, _Entry):
        if entry == _LOCAL:
            return PriceResult(
                cost=Decimal(usage.total_tokens) * local_rate / _MILLION,
                status="local",
                input_cost=Decimal(usage.prompt_tokens) * local_rate / _MILLION,
                output_cost=Decimal(usage.completion_tokens) * local_rate / _MILLION,
                model_ref=None,
                provider=provider,
            )
        return _unknown(provider)
    try:
        model_price = entry.fixed
        if model_price is None:
            model_price = entry.info.get_prices(at or datetime.now(UTC))
        plan = entry.plans.get(id(model_price))
        counts = _as_tuple(usage)
        if plan is not None:
            total, input_cost, output_cost = _run_plan(plan, counts)
        else:
            calculation = entry.info.calc_price(
                _genai_usage(counts), entry.provider, genai_request_timestamp=at
            )
            total = calculation.total_price
            input_cost = calculation.input_price
            output_cost = calculation.output_price
    except Exception:
        return _unknown(provider)
    return PriceResult(
        cost=total,
        status="priced",
        input_cost=input_cost,
        output_cost=output_cost,
        model_ref=entry.model_ref,
        provider=provider,
    )


# --------------------------------------------------------------------------------------------
# Warnings
# --------------------------------------------------------------------------------------------

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()
_WARNED_MAX: Final = 10_000


def warn_unknown_once(provider: str, model: str, logger: logging.Logger) -> bool:
    """Log a warning that (provider, model) has no price, once per pair per process.

    Returns True when it logged. Past 10,000 distinct pairs it stops remembering new ones (and
    stops warning) so a stream of junk model names cannot grow memory without bound.
    """
    key = (provider, model)
    with _warned_lock:
        if key in _warned or len(_warned) >= _WARNED_MAX:
            return False
        _warned.add(key)
    logger.warning(
        "No price for model %r on provider %r: its calls are logged with an unknown cost. "
        "Add a price override in the admin to price them.",
        model,
        provider,
    )
    return True
