"""The active budgets as plain values, cached per process and reloaded when their version moves.

Each process keeps the active ``Budget`` rows as ``Spec`` tuples. The database holds a version
counter (``BudgetLedger`` row ``version``) that every save or delete of a Budget moves on; a
process reads it (one indexed SELECT) at most every ``POLL_SECONDS`` and on the first call of
each session that starts, and reloads the rows only when it changed. With no active budget the
pre-call check is a few attribute reads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

#: Seconds a process trusts its cached budgets before it polls the version again.
POLL_SECONDS = 1.0
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Spec:
    """One budget: ``id`` None for a per-session ``budget=`` limit; money in USD."""

    id: int | None
    label: str
    scope: str
    enterprise_id: str
    workflow_name: str
    period: str
    window_hours: int | None
    limit: Decimal
    soft_limit: Decimal
    action: str
    unknown_model: str

    def applies(self, enterprise_id: str, workflow_name: str) -> bool:
        """Whether a session of this enterprise and workflow is counted by this budget."""
        if self.scope in ("enterprise", "enterprise_workflow") and self.enterprise_id not in (
            "",
            enterprise_id,
        ):
            return False
        return not (
            self.scope in ("workflow", "enterprise_workflow")
            and self.workflow_name not in ("", workflow_name)
        )

    def scope_value(self, enterprise_id: str, workflow_name: str) -> str:
        """The part of the ledger key that names the counted sessions (``acme/nightly``...)."""
        scope = self.scope
        if scope == "global":
            return ""
        if scope == "enterprise":
            return enterprise_id
        if scope == "workflow":
            return workflow_name
        if scope == "enterprise_workflow":
            return f"{enterprise_id}/{workflow_name}"
        raise KeyError(scope)

    def describe(self, enterprise_id: str, workflow_name: str) -> str:
        value = self.scope_value(enterprise_id, workflow_name)
        return f"{self.scope} {value}".strip() + f", {self.period}"


def spec_of(row: Any) -> Spec:
    """A ``Budget`` row as a ``Spec``."""
    limit = Decimal(str(row.limit))
    return Spec(
        id=row.pk,
        label=str(row),
        scope=row.scope,
        enterprise_id=row.enterprise_id or "",
        workflow_name=row.workflow_name or "",
        period=row.period,
        window_hours=row.window_hours,
        limit=limit,
        soft_limit=limit * Decimal(str(row.soft_percent)) / _HUNDRED,
        action=row.action,
        unknown_model=row.unknown_model,
    )


def session_spec(limit: Decimal) -> Spec:
    """The spec of a per-session ``budget=`` limit: ``block``, soft threshold at 80%."""
    return Spec(
        None,
        "session budget",
        "global",
        "",
        "",
        "session",
        None,
        limit,
        limit * Decimal("0.8"),
        "block",
        "block",
    )


class Registry:
    """The process's cached specs and the version they were read at."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.specs: tuple[Spec, ...] = ()
        self.version: int | None = None
        self.polled_at = float("-inf")
        #: Set when a session starts: its first call polls the version.
        self.poll_due = True

    def stale(self) -> bool:
        return self.poll_due or time.monotonic() - self.polled_at > POLL_SECONDS

    def refresh(self, *, force: bool = False) -> tuple[Spec, ...]:
        """Poll the version (sync ORM) and reload the active budgets if it moved."""
        if not force and not self.stale():
            return self.specs
        from ag2_logging.budgets.ledger import DatabaseLedger
        from ag2_logging.models import Budget

        with self.lock:
            self.poll_due = False
            try:
                version = DatabaseLedger.version()
                if force or version != self.version:
                    self.specs = tuple(spec_of(row) for row in Budget.objects.filter(active=True))
                    self.version = version
            finally:
                # Polled, even when the database refused: a database that is down is asked
                # again after the poll interval, not on every call.
                self.polled_at = time.monotonic()
        return self.specs

    def forget(self) -> None:
        """Drop the cache (tests, a flushed database): the next call reloads."""
        with self.lock:
            self.specs, self.version, self.poll_due = (), None, True


registry = Registry()
