"""Test helpers: a deterministic OpenAI-compatible fake LLM server for real AG2 agents.

The names are imported lazily so that ``python -m ag2_logging.testing.fake_llm`` does not import
the module twice (runpy warns about that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ag2_logging.testing.fake_llm import FakeLLMServer, ServedRequest, Usage

__all__ = ["FakeLLMServer", "ServedRequest", "Usage"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ag2_logging.testing import fake_llm

        return getattr(fake_llm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
