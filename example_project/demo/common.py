"""What the demo's agents share whatever AG2 generation runs them: catalogue, tool, prompts, task text.

Imports no AG2: ``agents.py`` builds the teams with classic ``autogen``, ``agents_ag2.py`` with
``ag2`` 1.x, and both send the fake LLM server the same directives, so a workflow makes the same
LLM calls, with the same token counts, on either generation.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated

#: Sent as the API key: the fake server accepts anything, and no real key belongs in a demo.
DEMO_API_KEY = "sk-demo-not-a-real-key"
DEFAULT_BASE_URL = "http://127.0.0.1:8800/v1"
DEFAULT_MODEL = "gpt-4o-mini"

#: Prices of the demo catalogue; other SKUs get a deterministic price derived from their name.
CATALOG: dict[str, float] = {
    "SKU-1001": 19.99,
    "SKU-2002": 249.00,
    "SKU-3003": 4.75,
}

PLANNER_PROMPT = (
    "You are the planner. Read the analyst's findings and write a short action plan for the "
    "customer. End your message with TERMINATE."
)
ANALYST_PROMPT = (
    "You are the analyst. Use the lookup_price tool to find the price of any SKU mentioned, "
    "then report it in one sentence."
)


def lookup_price(sku: Annotated[str, "The product SKU, for example SKU-1001"]) -> float:
    """Unit price in USD of a product SKU (deterministic: same SKU, same price)."""
    sku = sku.strip().upper()
    if sku in CATALOG:
        return CATALOG[sku]
    digest = hashlib.sha256(sku.encode()).digest()
    return round(5 + int.from_bytes(digest[:2], "big") % 9500 / 100, 2)


def task_message(
    request: str,
    *,
    sku: str | None = None,
    marker: str | None = None,
    usage: str | None = None,
    terminate: bool = True,
) -> str:
    """The task text, with the fake server's directives appended.

    ``usage`` is the body of a ``[[usage:...]]`` directive, e.g. ``"prompt=900,completion=150"``.
    A real model reads the directives as noise; the fake server obeys them.
    """
    parts = [request.strip()]
    if sku:
        parts.append(f"[[tool:lookup_price {json.dumps({'sku': sku})}]]")
    if marker:
        parts.append(f"[[marker:{marker}]]")
    if usage:
        parts.append(f"[[usage:{usage}]]")
    if terminate:
        parts.append("[[terminate]]")
    return " ".join(parts)
