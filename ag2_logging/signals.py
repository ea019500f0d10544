"""Signals for the rest of a project (performance managers, realtime token loggers, budgets).

All are sent with ``send_robust``: a failing receiver is logged, never raised into AG2.
``llm_call_recorded`` is sent on the hot path, possibly from an AG2 executor thread or an event
loop thread: receivers must be quick and must not use the sync ORM.
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent when a session opens.
# Arguments: session_id (uuid.UUID), chat_id (str), workflow_name (str), enterprise_id (str),
# parent_id (uuid.UUID | None).
session_started = Signal()

# Sent after each LLM call is journaled.
# Arguments: session_id (uuid.UUID | None; None for unattributed calls), call (dict: the journal
# event, with model, provider, the token counts, cost as a string or None, latency_ms, status).
llm_call_recorded = Signal()

# Sent when a session ends, after its journal is closed.
# Arguments: session_id (uuid.UUID), status (str), error (str), totals (dict, as
# ``Totals.as_dict()``: call_count, the token counts, total_cost as a string, ...).
session_finished = Signal()

# Sent once per budget and period when the settled spend reaches the budget's soft threshold
# (``soft_percent`` of its limit), from the thread that settled the call.
# Arguments: budget (int | None: the Budget's id, None for a per-session limit), scope (str),
# period_key (str: the ledger key), period_end (datetime | None), spent, limit, soft_limit
# (Decimal, USD), session_id (uuid.UUID | None: the session whose call crossed it).
budget_threshold_reached = Signal()
