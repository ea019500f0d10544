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
from typing import Final

from ag2_logging.pricing.providers import normalize_provider

__all__ = ["USAGE_SHAPES", "NormalizedUsage", "normalize_usage"]


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
    ``completion_includes_reasoning`` default from ``provider``; pass them to override.

    Never raises on a bad report, so a provider quirk cannot lose a call's log: None and
    negative counts are read as 0, and a breakdown larger than its total (cache reads plus
    writes above the prompt, reasoning above the completion) is clipped to the total, cache
    reads first.
    """
    default_prompt, default_completion = USAGE_SHAPES.get(normalize_provider(provider), (True, True))
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
