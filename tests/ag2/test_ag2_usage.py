"""How ag2 1.x's ``Usage`` maps onto the app's token convention, per AG2 client, and provider ids.

The shapes come from ag2's own mappers (``ag2/config/*/mappers.py``). The OpenAI one runs here on a
raw OpenAI usage object; the others need their provider SDK (not in ``ag2[openai]``), so their
output is built by hand as ag2 1.2.1's source builds it.
"""

from __future__ import annotations

import pytest
from ag2.events import Usage

from ag2_logging.integrations.ag2 import detect_provider, normalized_usage

pytestmark = pytest.mark.ag2


def counts(provider: str, usage: Usage) -> tuple[int, int, int, int, int, int]:
    n = normalized_usage(provider, usage)
    return (
        n.prompt_tokens,
        n.completion_tokens,
        n.cached_tokens,
        n.reasoning_tokens,
        n.cache_write_tokens,
        n.total_tokens,
    )


def test_openai_prompt_includes_cached_and_completion_includes_reasoning() -> None:
    from ag2.config.openai.mappers import normalize_usage
    from openai.types import CompletionUsage

    raw = CompletionUsage.model_validate(
        {
            "prompt_tokens": 200,
            "completion_tokens": 50,
            "total_tokens": 250,
            "prompt_tokens_details": {"cached_tokens": 80},
            "completion_tokens_details": {"reasoning_tokens": 20},
        }
    )
    assert counts("openai", normalize_usage(raw)) == (200, 50, 80, 20, 0, 250)


def test_anthropic_and_bedrock_prompt_excludes_cache_reads_and_writes() -> None:
    # ag2.config.anthropic.mappers.normalize_usage: prompt_tokens=input_tokens, which excludes
    # cache_read_input_tokens and cache_creation_input_tokens; total=prompt+completion. Bedrock's
    # inputTokens likewise excludes cacheReadInputTokens / cacheWriteInputTokens.
    usage = Usage(
        prompt_tokens=100,
        completion_tokens=40,
        total_tokens=140,
        cache_read_input_tokens=300,
        cache_creation_input_tokens=50,
        thinking_tokens=10,
    )
    assert counts("anthropic", usage) == (450, 40, 300, 10, 50, 490)
    assert counts("bedrock", usage) == (450, 40, 300, 10, 50, 490)


def test_gemini_and_xai_completion_excludes_thinking() -> None:
    usage = Usage(prompt_tokens=500, completion_tokens=60, cache_read_input_tokens=200, thinking_tokens=40)
    for provider in ("google", "gemini", "vertexai", "xai"):
        assert counts(provider, usage) == (500, 100, 200, 40, 0, 600), provider


def test_missing_and_float_counts() -> None:
    assert counts("openai", Usage()) == (0, 0, 0, 0, 0, 0)
    assert counts("openai", Usage(prompt_tokens=10.0, completion_tokens=None)) == (10, 0, 0, 0, 0, 10)
    assert counts("some-new-provider", Usage(prompt_tokens=5, completion_tokens=5)) == (5, 5, 0, 0, 0, 10)


@pytest.mark.parametrize(
    ("ag2_provider", "base_url", "model", "expected"),
    [
        ("openai", None, "gpt-4o-mini", "openai"),
        ("openai", "https://api.openai.com/v1", "gpt-4o", "openai"),
        ("openai", "http://127.0.0.1:9/v1", "anything", "openai"),  # PROVIDER_BASE_URLS in tests/settings
        ("openai", "https://api.groq.com/openai/v1", "llama-3.3-70b", "groq"),
        ("anthropic", None, "claude-sonnet-4-5", "anthropic"),
        ("google", None, "gemini-2.5-flash", "google"),
        ("gemini", None, "gemini-2.5-flash", "google"),
        ("vertexai", None, "gemini-2.5-flash", "google-vertex"),
        ("bedrock", None, "anthropic.claude-3-haiku-20240307-v1:0", "aws-bedrock"),
        ("mistral", None, "mistral-large-latest", "mistral"),
        ("ollama", None, "llama3", "ollama"),
        ("xai", None, "grok-4", "x-ai"),
        ("zai", None, "glm-4.6", "zai"),
        ("dashscope", None, "qwen-max", "unknown"),
    ],
)
def test_provider_ids(ag2_provider: str, base_url: str | None, model: str, expected: str) -> None:
    assert detect_provider(ag2_provider, base_url, model) == expected
