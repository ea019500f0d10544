"""Token counts in the app's one convention, from whatever shape a provider reports.

:data:`USAGE_SHAPES` is THE table of provider usage shapes (does the prompt count include cache
reads and writes, does the completion count include reasoning); :func:`normalize_usage` maps a
raw report through it to a :class:`NormalizedUsage`:

* ``prompt_tokens`` INCLUDES ``cached_tokens`` (cache reads) and ``cache_write_tokens``;
* ``completion_tokens`` INCLUDES ``reasoning_tokens``;
* ``total_tokens`` = ``prompt_tokens`` + ``completion_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ag2_logging.pricing.providers import table_provider

__all__ = [
    "USAGE_REPORTS",
    "USAGE_SHAPES",
    "NormalizedUsage",
    "UsageReport",
    "normalize_usage",
    "usage_from_report",
    "usage_report",
]


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
        if (
            min(
                self.prompt_tokens,
                self.completion_tokens,
                self.cached_tokens,
                self.reasoning_tokens,
                self.cache_write_tokens,
            )
            < 0
        ):
            counts = (
                self.prompt_tokens,
                self.completion_tokens,
                self.cached_tokens,
                self.reasoning_tokens,
                self.cache_write_tokens,
            )
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
USAGE_SHAPES: Final[Mapping[str, tuple[bool, bool]]] = {
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
    ``completion_includes_reasoning`` default from ``provider``'s :data:`USAGE_SHAPES` row
    (``<provider>@local`` reads ``<provider>``'s); pass them to override.

    Never raises on a bad report, so a provider quirk cannot lose a call's log: None and
    negative counts are read as 0, and a breakdown larger than its total (cache reads plus
    writes above the prompt, reasoning above the completion) is clipped to the total, cache
    reads first.
    """
    if prompt_includes_cached is None or completion_includes_reasoning is None:
        default_prompt, default_completion = USAGE_SHAPES.get(table_provider(provider), (True, True))
        if prompt_includes_cached is None:
            prompt_includes_cached = default_prompt
        if completion_includes_reasoning is None:
            completion_includes_reasoning = default_completion
    # max(x or 0, 0) and min(a, b), as expressions: five calls of max and three of min cost as
    # much as the rest of the conversion (every LLM call reads its usage through here).
    prompt = prompt_tokens if prompt_tokens and prompt_tokens > 0 else 0
    completion = completion_tokens if completion_tokens and completion_tokens > 0 else 0
    cached = cached_tokens if cached_tokens and cached_tokens > 0 else 0
    reasoning = reasoning_tokens if reasoning_tokens and reasoning_tokens > 0 else 0
    cache_write = cache_write_tokens if cache_write_tokens and cache_write_tokens > 0 else 0
    if not prompt_includes_cached:
        prompt += cached + cache_write
    if not completion_includes_reasoning:
        completion += reasoning
    if cached > prompt:
        cached = prompt
    if cache_write > prompt - cached:
        cache_write = prompt - cached
    if reasoning > completion:
        reasoning = completion
    # Valid by construction (clipped above): the checks of __post_init__ cannot fail here.
    return valid_usage(prompt, completion, cached, reasoning, cache_write)


_new = object.__new__
# The slots' own setters (what object.__setattr__ ends in, without its look-up).
_SLOTS: Mapping[str, Any] = vars(NormalizedUsage)
_set_prompt = _SLOTS["prompt_tokens"].__set__
_set_completion = _SLOTS["completion_tokens"].__set__
_set_cached = _SLOTS["cached_tokens"].__set__
_set_reasoning = _SLOTS["reasoning_tokens"].__set__
_set_cache_write = _SLOTS["cache_write_tokens"].__set__
_set_total = _SLOTS["total_tokens"].__set__


def valid_usage(
    prompt: int, completion: int, cached: int, reasoning: int, cache_write: int
) -> NormalizedUsage:
    """A ``NormalizedUsage`` of counts known to be valid (none negative, cache reads plus writes
    within the prompt, reasoning within the completion), built without re-checking them: every
    LLM call builds a few, and the checks cost as much as the rest of reading its usage."""
    usage = _new(NormalizedUsage)
    _set_prompt(usage, prompt)
    _set_completion(usage, completion)
    _set_cached(usage, cached)
    _set_reasoning(usage, reasoning)
    _set_cache_write(usage, cache_write)
    _set_total(usage, prompt + completion)
    return usage


# --------------------------------------------------------------------------------------------
# Raw usage reports (OpenAI-compatible endpoints)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Where one provider's ``usage`` object keeps each count.

    Each entry is a tuple of dotted paths (``"prompt_tokens_details.cached_tokens"``) tried in
    order: the FIRST one present is used and the others are ignored, so a provider that sends the
    same tokens under two names (DeepSeek's ``prompt_cache_hit_tokens`` beside
    ``prompt_tokens_details.cached_tokens``) is never counted twice. ``prompt`` pairs each path with
    whether that count already includes cache reads and writes (Anthropic's native ``input_tokens``
    does not; every ``prompt_tokens`` does). ``reasoning_outside_total``: the provider leaves
    reasoning out of ``completion_tokens`` and reports no reasoning field, but counts it in
    ``total_tokens`` (Gemini's OpenAI-compatible endpoint), so reasoning is
    ``total - prompt - completion``.
    """

    prompt: tuple[tuple[str, bool], ...] = (("prompt_tokens", True), ("input_tokens", True))
    completion: tuple[str, ...] = ("completion_tokens", "output_tokens")
    cached: tuple[str, ...] = ("prompt_tokens_details.cached_tokens", "input_tokens_details.cached_tokens")
    cache_write: tuple[str, ...] = ()
    reasoning: tuple[str, ...] = (
        "completion_tokens_details.reasoning_tokens",
        "output_tokens_details.reasoning_tokens",
    )
    completion_includes_reasoning: bool = True
    reasoning_outside_total: bool = False


_OPENAI: Final = UsageReport()
# A provider not in the table (an unmapped gateway, a local server): every name that can only
# mean cache reads inside prompt_tokens, first present wins.
_GENERIC: Final = UsageReport(
    cached=(
        "prompt_tokens_details.cached_tokens",
        "input_tokens_details.cached_tokens",
        "prompt_cache_hit_tokens",
    ),
    cache_write=("prompt_tokens_details.cache_write_tokens",),
)
_ANTHROPIC: Final = UsageReport(
    prompt=(("prompt_tokens", True), ("input_tokens", False)),
    cached=("cache_read_input_tokens", "prompt_tokens_details.cached_tokens"),
    cache_write=("cache_creation_input_tokens", "prompt_tokens_details.cache_write_tokens"),
)

#: Provider id (ours, or a genai-prices id set through ``PROVIDER_BASE_URLS``) -> its usage
#: object on the OpenAI-compatible chat-completions endpoint. Anything not listed is read the
#: OpenAI way, also accepting DeepSeek's and OpenRouter's cache names (``_GENERIC``). One row per provider, each with the documentation it follows.
USAGE_REPORTS: Final[Mapping[str, UsageReport]] = {
    # OpenAI: https://platform.openai.com/docs/api-reference/chat/object (usage):
    # prompt_tokens includes prompt_tokens_details.cached_tokens, completion_tokens includes
    # completion_tokens_details.reasoning_tokens. The Responses API names them input_/output_.
    "openai": _OPENAI,
    # Azure OpenAI: the same object as OpenAI
    # (https://learn.microsoft.com/azure/ai-services/openai/how-to/prompt-caching).
    "azure": _OPENAI,
    # DeepSeek: https://api-docs.deepseek.com/guides/kv_cache - prompt_tokens =
    # prompt_cache_hit_tokens + prompt_cache_miss_tokens; newer replies may also carry
    # prompt_tokens_details.cached_tokens for the same hits (read once, hit field first);
    # deepseek-reasoner: completion_tokens_details.reasoning_tokens, inside completion_tokens.
    "deepseek": UsageReport(cached=("prompt_cache_hit_tokens", "prompt_tokens_details.cached_tokens")),
    # Anthropic's OpenAI SDK compatibility (https://docs.anthropic.com/en/api/openai-sdk) and
    # the proxies in front of Claude (LiteLLM, https://docs.litellm.ai/docs/completion/prompt_caching):
    # prompt_tokens is the whole prompt; cache reads and writes come as cache_read_input_tokens /
    # cache_creation_input_tokens. A native Messages usage (input_tokens) EXCLUDES both
    # (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching).
    "anthropic": _ANTHROPIC,
    # Bedrock Converse through an OpenAI-compatible gateway: Anthropic's fields and convention.
    "aws-bedrock": _ANTHROPIC,
    # Gemini's OpenAI compatibility (https://ai.google.dev/gemini-api/docs/openai): prompt_tokens
    # includes cached tokens (prompt_tokens_details.cached_tokens when sent); completion_tokens
    # EXCLUDES thinking tokens, which are in total_tokens only
    # (https://discuss.ai.google.dev/t/question-with-usage-in-openai-compatibility/98760).
    "google": UsageReport(completion_includes_reasoning=False, reasoning_outside_total=True),
    "google-vertex": UsageReport(completion_includes_reasoning=False, reasoning_outside_total=True),
    # xAI: https://docs.x.ai/developers/advanced-api-usage/prompt-caching/usage-and-pricing -
    # prompt_tokens includes prompt_tokens_details.cached_tokens; reasoning_tokens are reported
    # APART from completion_tokens (https://docs.cloud.google.com/vertex-ai/generative-ai/docs/
    # partner-models/grok/capabilities/reasoning: "separated from the completion_tokens").
    "x-ai": UsageReport(completion_includes_reasoning=False),
    # OpenRouter: https://openrouter.ai/docs/use-cases/usage-accounting - OpenAI's object plus
    # prompt_tokens_details.cache_write_tokens (inside prompt_tokens) and its own `cost`.
    "openrouter": UsageReport(cache_write=("prompt_tokens_details.cache_write_tokens",)),
    # Mistral: https://docs.mistral.ai/studio-api/conversations/advanced/prompt-caching - the
    # OpenAI object; cached prompt tokens in prompt_tokens_details.cached_tokens.
    "mistral": _OPENAI,
    # Groq: https://console.groq.com/docs/prompt-caching - prompt_tokens_details.cached_tokens
    # inside prompt_tokens; completion_tokens_details.reasoning_tokens (groq-typescript
    # CompletionUsage).
    "groq": _OPENAI,
    # Together: OpenAI's object (https://docs.together.ai/reference/chat-completions-1); some
    # replies carry a top-level cached_tokens instead of prompt_tokens_details (read once).
    "together": UsageReport(cached=("prompt_tokens_details.cached_tokens", "cached_tokens")),
    # Fireworks: https://docs.fireworks.ai/guides/prompt-caching - the OpenAI object,
    # prompt_tokens_details.cached_tokens inside prompt_tokens.
    "fireworks": _OPENAI,
    # Cerebras, Cohere's compatibility API, Ollama and local servers report the OpenAI way.
}


#: Dotted paths of the tables, split once (the tables are fixed, so this stays small).
_SPLIT: dict[str, tuple[str, ...]] = {}
#: Whether a type is a Mapping (the ABC's isinstance costs as much as the rest of a read).
_MAPPING: dict[type, bool] = {dict: True}


def _walk(value: Any, names: tuple[str, ...]) -> Any:
    """``value.a.b`` (or ``value["a"]["b"]``) for ``names`` ``("a", "b")``; None when absent."""
    for name in names:
        if value is None:
            return None
        kind = type(value)
        mapping = _MAPPING.get(kind)
        if mapping is None:
            mapping = _MAPPING[kind] = isinstance(value, Mapping)
        value = value.get(name) if mapping else getattr(value, name, None)
    return value


def _count(usage: Any, paths: tuple[str, ...]) -> int | None:
    """The first of ``paths`` present in ``usage`` as a non-negative int; None if none is."""
    top = _MAPPING.get(type(usage))
    if top is None:
        top = _MAPPING[type(usage)] = isinstance(usage, Mapping)
    for path in paths:
        names = _SPLIT.get(path)
        if names is None:
            names = _SPLIT[path] = tuple(path.split("."))
        # The first name in place (usually absent for the breakdowns): one look-up.
        value = usage.get(names[0]) if top else getattr(usage, names[0], None)
        if len(names) > 1 and value is not None:
            value = _walk(value, names[1:])
        if type(value) is int:  # the usual answer, without the conversions below
            return value if value > 0 else 0
        if value is None or isinstance(value, bool):
            continue
        try:
            return max(int(value), 0)
        except (TypeError, ValueError):
            continue
    return None


_PROMPT_PATHS: dict[UsageReport, tuple[tuple[tuple[str], bool], ...]] = {}


def _prompt_paths(row: UsageReport) -> tuple[tuple[tuple[str], bool], ...]:
    """``row.prompt`` with each path as the one-path tuple ``_count`` takes (built once)."""
    found = _PROMPT_PATHS.get(row)
    if found is None:
        found = _PROMPT_PATHS[row] = tuple(((path,), includes) for path, includes in row.prompt)
    return found


def usage_report(provider: str) -> UsageReport:
    """The :data:`USAGE_REPORTS` row for ``provider`` (the OpenAI way, with every unambiguous
    cache name, for one not listed). ``<provider>@local`` reads ``<provider>``'s row: the
    endpoint is a proxy in front of that provider and passes its usage object on."""
    return USAGE_REPORTS.get(table_provider(provider), _GENERIC)


def usage_from_report(provider: str, usage: Mapping[str, Any] | object | None) -> NormalizedUsage | None:
    """A provider's raw ``usage`` (the object an OpenAI-compatible SDK returns, or its dict) in
    the app's convention, read through :data:`USAGE_REPORTS`.

    Returns None when the reply carried no usage (``usage`` is None, or has neither a prompt nor
    a completion count): the caller records the call with no price (``no_usage``), never as
    0 tokens. Never raises on a malformed report: missing, negative or non-numeric counts read
    as 0, and breakdowns larger than their totals are clipped (as :func:`normalize_usage`).
    Cache reads and writes larger than a prompt said to include them mean the prompt did not:
    they are added to it.
    """
    if usage is None:
        return None
    row = usage_report(provider)
    prompt = includes_cache = None
    for paths, includes in _prompt_paths(row):
        prompt = _count(usage, paths)
        if prompt is not None:
            includes_cache = includes
            break
    completion = _count(usage, row.completion)
    if prompt is None and completion is None:
        return None
    prompt, completion = prompt or 0, completion or 0
    cached = _count(usage, row.cached) or 0
    cache_write = _count(usage, row.cache_write) or 0
    reasoning = _count(usage, row.reasoning)
    if reasoning is None and row.reasoning_outside_total:
        total = _count(usage, ("total_tokens",))
        reasoning = max((total or 0) - prompt - completion, 0)
    if includes_cache and cached + cache_write > prompt:
        includes_cache = False
    return normalize_usage(
        provider,
        prompt,
        completion,
        cached,
        reasoning or 0,
        cache_write,
        prompt_includes_cached=bool(includes_cache),
        completion_includes_reasoning=row.completion_includes_reasoning,
    )
