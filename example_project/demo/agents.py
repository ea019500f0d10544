"""The demo's agents: real classic AG2 (``autogen``) agents talking to an OpenAI-compatible server.

Against the fake LLM server (``python -m ag2_logging.testing.fake_llm``) the conversation is
steered by directives inside the task text (see :func:`task_message`): ``[[tool:...]]`` makes the
analyst call ``lookup_price``, ``[[usage:...]]`` fixes the token counts, ``[[marker:...]]`` tags
the replies and ``[[terminate]]`` makes replies end with ``TERMINATE``. Every chat is also bounded
by ``max_round`` / ``max_turns``, so a real model cannot make it run away either.

The group chat, in round-robin order ``user -> analyst -> planner``::

    user     posts the task
    analyst  calls lookup_price(sku)           (LLM call 1: a tool call)
    user     executes the tool                 (no LLM call)
    analyst  reports the price                 (LLM call 2)
    planner  writes the plan, ends TERMINATE   (LLM call 3: the manager stops on the planner's TERMINATE)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import autogen
import httpx
from django.conf import settings

from example_project.demo.common import (  # noqa: F401 - the generation-neutral parts, re-exported
    ANALYST_PROMPT,
    CATALOG,
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    DEMO_API_KEY,
    PLANNER_PROMPT,
    lookup_price,
    task_message,
)


class _SharedHttpClient(httpx.Client):
    """The HTTP client of every demo agent. Each OpenAI client otherwise makes its own, and
    httpx loads a trust store into an SSL context for each: 50-300 ms with OpenSSL 3.0, a
    quarter of ``make demo``. AG2 deep-copies ``llm_config``; a copy of this is itself (what
    AG2 asks of an ``http_client`` in a config)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _SharedHttpClient:
        return self


@functools.cache
def _http_client() -> httpx.Client:
    return _SharedHttpClient()


def llm_config(model: str | None = None, base_url: str | None = None) -> dict[str, Any]:
    """AG2 ``llm_config`` for one model on the demo's OpenAI-compatible endpoint (no cache)."""
    return {
        "config_list": [
            {
                # getattr: the agents also work under other settings modules (the test suite's).
                "model": model or getattr(settings, "DEMO_LLM_MODEL", DEFAULT_MODEL),
                "base_url": base_url or getattr(settings, "DEMO_LLM_BASE_URL", DEFAULT_BASE_URL),
                "api_key": DEMO_API_KEY,
                "http_client": _http_client(),
            }
        ],
        # No disk cache: every run really calls the server, so every call is recorded and priced.
        "cache_seed": None,
    }


def _ends_with_terminate(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, str) and content.rstrip().endswith("TERMINATE")


def _planner_signed_off(message: dict[str, Any]) -> bool:
    # The group chat stamps each message with its speaker's name before this check runs.
    return message.get("name") == "planner" and _ends_with_terminate(message)


def _user_proxy() -> autogen.UserProxyAgent:
    return autogen.UserProxyAgent(
        "user",
        human_input_mode="NEVER",
        code_execution_config=False,
        max_consecutive_auto_reply=4,
        is_termination_msg=_ends_with_terminate,
        description="The customer; executes the tools the analyst calls.",
    )


def _analyst(config: dict[str, Any]) -> autogen.AssistantAgent:
    return autogen.AssistantAgent(
        "analyst",
        system_message=ANALYST_PROMPT,
        llm_config=config,
        description="Looks up prices with the lookup_price tool.",
    )


@dataclass
class GroupChatTeam:
    user: autogen.UserProxyAgent
    planner: autogen.AssistantAgent
    analyst: autogen.AssistantAgent
    groupchat: autogen.GroupChat
    manager: autogen.GroupChatManager

    def run(self, message: str) -> autogen.ChatResult:
        return self.user.initiate_chat(self.manager, message=message)

    async def a_run(self, message: str) -> autogen.ChatResult:
        return await self.user.a_initiate_chat(self.manager, message=message)


def build_group_chat(
    *, model: str | None = None, base_url: str | None = None, max_round: int = 8
) -> GroupChatTeam:
    """A round-robin group chat: ``user``, ``analyst`` (with ``lookup_price``) and ``planner``.

    Build it inside ``ag2_logging_session(...)`` so the agents' creation is recorded too.
    """
    config = llm_config(model, base_url)
    user = _user_proxy()
    analyst = _analyst(config)
    planner = autogen.AssistantAgent(
        "planner",
        system_message=PLANNER_PROMPT,
        llm_config=config,
        description="Turns the analyst's findings into a plan and ends the chat.",
    )
    autogen.register_function(
        lookup_price, caller=analyst, executor=user, description="Unit price in USD of a product SKU."
    )
    groupchat = autogen.GroupChat(
        agents=[user, analyst, planner],
        messages=[],
        max_round=max_round,
        speaker_selection_method="round_robin",
    )
    manager = autogen.GroupChatManager(
        groupchat=groupchat,
        name="manager",
        llm_config=False,  # round robin needs no model to pick the next speaker
        is_termination_msg=_planner_signed_off,
    )
    return GroupChatTeam(user=user, planner=planner, analyst=analyst, groupchat=groupchat, manager=manager)


@dataclass
class TwoAgentTeam:
    user: autogen.UserProxyAgent
    analyst: autogen.AssistantAgent
    max_turns: int = 2

    def run(self, message: str) -> autogen.ChatResult:
        return self.user.initiate_chat(self.analyst, message=message, max_turns=self.max_turns)

    async def a_run(self, message: str) -> autogen.ChatResult:
        return await self.user.a_initiate_chat(self.analyst, message=message, max_turns=self.max_turns)


def build_two_agent_chat(
    *, model: str | None = None, base_url: str | None = None, max_turns: int = 2
) -> TwoAgentTeam:
    """``user`` <-> ``analyst``: the analyst calls ``lookup_price``, the user runs it, the analyst reports."""
    user = _user_proxy()
    analyst = _analyst(llm_config(model, base_url))
    autogen.register_function(
        lookup_price, caller=analyst, executor=user, description="Unit price in USD of a product SKU."
    )
    return TwoAgentTeam(user=user, analyst=analyst, max_turns=max_turns)
