"""Fixtures for the ag2 1.x tests: real ``ag2.Agent`` objects against the fake LLM server.

Collected only where ``ag2`` is installed (``make test-ag2``, ``.venv-ag2``): see
``collect_ignore_glob`` in tests/conftest.py. AG2 itself is never mocked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from ag2.config import OpenAIConfig

from ag2_logging.testing import FakeLLMServer
from tests.conftest import TEST_API_KEY

T = TypeVar("T")


@pytest.fixture
def model_config(llm: FakeLLMServer) -> OpenAIConfig:
    # max_retries=0: the OpenAI SDK would otherwise absorb the fake server's scripted failures
    # before any AG2 middleware sees them.
    return OpenAIConfig(model="gpt-4o-mini", api_key=TEST_API_KEY, base_url=llm.base_url, max_retries=0)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """ag2 1.x is async only: each test drives its agents on a fresh event loop."""
    return asyncio.run(coro)
