"""The demo's agents on the ``ag2`` 1.x generation: the teams of ``agents.py``, rebuilt with ``ag2.Agent``.

ag2 1.x has no group chat manager and no user proxy: a team is a few lines of Python that hand
one agent's answer to the next. The teams make the same LLM calls as their classic twins, so the
demo records the same sessions, tokens and costs on either generation::

    GroupChatTeam   analyst.ask(task)   -> lookup_price tool call, the tool runs, the price (2 calls)
                    planner.ask(...)    -> the plan, ending TERMINATE                      (1 call)
    TwoAgentTeam    analyst.ask(task)   -> lookup_price tool call, the tool runs, the price (2 calls)

Every agent carries ``logging_middleware()`` (ag2 1.x has no process-wide hook), after AG2's
``RetryMiddleware`` so that each retried attempt is recorded too.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx2
from ag2 import Agent, tool
from ag2.config import OpenAIConfig
from ag2.middleware import RetryMiddleware
from django.conf import settings
from pydantic import Field

from ag2_logging.integrations.ag2 import logging_middleware
from example_project.demo.common import (
    ANALYST_PROMPT,
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    DEMO_API_KEY,
    PLANNER_PROMPT,
    lookup_price,
)

GENERATION = "ag2"


# The same tool as classic AG2's: ag2 builds the schema with pydantic, which reads a parameter's
# description from Field (a bare string in Annotated would be taken for a forward reference).
@tool(name="lookup_price", description="Unit price in USD of a product SKU.")
def price_tool(sku: Annotated[str, Field(description="The product SKU, for example SKU-1001")]) -> float:
    return lookup_price(sku)


def model_config(
    model: str | None = None, base_url: str | None = None, http_client: httpx2.AsyncClient | None = None
) -> OpenAIConfig:
    """One model on the demo's OpenAI-compatible endpoint."""
    return OpenAIConfig(
        # getattr: the agents also work under other settings modules (the test suite's).
        model=model or getattr(settings, "DEMO_LLM_MODEL", DEFAULT_MODEL),
        base_url=base_url or getattr(settings, "DEMO_LLM_BASE_URL", DEFAULT_BASE_URL),
        api_key=DEMO_API_KEY,
        http_client=http_client,
    )


def middleware() -> list[Any]:
    return [RetryMiddleware(max_retries=2), logging_middleware()]


def _analyst(config: OpenAIConfig) -> Agent:
    return Agent("analyst", ANALYST_PROMPT, config=config, tools=[price_tool], middleware=middleware())


@dataclass
class Transcript:
    """The conversation as ``{"name", "content"}`` dicts (what classic AG2's ``GroupChat.messages`` holds)."""

    messages: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, content: Any) -> str:
        text = content if isinstance(content, str) else str(content or "")
        self.messages.append({"name": name, "content": text})
        return text


@dataclass
class _Team:
    #: The team's HTTP connections, closed on the event loop that used them when a run ends: ag2
    #: makes an SDK client per turn, and one left to the garbage collector after ``asyncio.run``
    #: returned tries to close its connections on a loop that is gone.
    http: httpx2.AsyncClient

    def run(self, message: str) -> list[dict[str, Any]]:
        """Run the team in a sync caller (a view, a command): ag2 1.x agents are async only."""
        return asyncio.run(self.a_run(message))

    async def a_run(self, message: str) -> list[dict[str, Any]]:
        try:
            return await self._converse(message)
        finally:
            await self.http.aclose()

    async def _converse(self, message: str) -> list[dict[str, Any]]:
        raise NotImplementedError


@dataclass
class GroupChatTeam(_Team):
    analyst: Agent
    planner: Agent
    groupchat: Transcript = field(default_factory=Transcript)

    async def _converse(self, message: str) -> list[dict[str, Any]]:
        self.groupchat.add("user", message)
        findings = self.groupchat.add("analyst", (await self.analyst.ask(message)).body)
        plan = await self.planner.ask(f"{message}\n\nThe analyst's findings: {findings}")
        self.groupchat.add("planner", plan.body)
        return self.groupchat.messages


@functools.cache
def _tls() -> ssl.SSLContext:
    """One SSL context for every team's HTTP client: httpx2 otherwise loads the trust store into
    a new one per client, 50-300 ms each with OpenSSL 3.0 (a context is shared safely)."""
    return httpx2.create_ssl_context()


def _http_client() -> httpx2.AsyncClient:
    """A team's client (one per run: an async client belongs to the event loop that uses it)."""
    return httpx2.AsyncClient(verify=_tls())


def build_group_chat(
    *, model: str | None = None, base_url: str | None = None, max_round: int = 8
) -> GroupChatTeam:
    """``analyst`` (with ``lookup_price``) then ``planner``; ``max_round`` is classic AG2's bound,
    which this fixed hand-off never reaches. One run per team."""
    http = _http_client()
    config = model_config(model, base_url, http)
    planner = Agent("planner", PLANNER_PROMPT, config=config, middleware=middleware())
    return GroupChatTeam(http=http, analyst=_analyst(config), planner=planner)


@dataclass
class TwoAgentTeam(_Team):
    analyst: Agent
    transcript: Transcript = field(default_factory=Transcript)

    async def _converse(self, message: str) -> list[dict[str, Any]]:
        self.transcript.add("user", message)
        self.transcript.add("analyst", (await self.analyst.ask(message)).body)
        return self.transcript.messages


def build_two_agent_chat(
    *, model: str | None = None, base_url: str | None = None, max_turns: int = 2
) -> TwoAgentTeam:
    """The analyst alone: it calls ``lookup_price``, AG2 runs the tool, the analyst reports. One run per team."""
    http = _http_client()
    return TwoAgentTeam(http=http, analyst=_analyst(model_config(model, base_url, http)))
