"""A process's share of one ledger key: reservations served from a leased allowance.

The database ledger is too slow to touch on every call (tens of microseconds to milliseconds), so
a process leases an allowance from it (the call's worst case plus 1/16 of the headroom it last
saw, or only the call's worst case when that is all that is left) and reserves calls against
the allowance in memory. Settled spend is moved to the ledger at most ``FLUSH_SECONDS`` later
(and at each session end, and before the soft threshold is judged); what is left of the
allowance is given back then. The ledger's ``reserved`` always covers every call in flight, so a
check can never pass on headroom another process already holds: a limit is overshot only by
calls whose real cost exceeded their reservation, each in flight when it was reached.
"""

from __future__ import annotations

import threading
import time
from decimal import ROUND_CEILING, Decimal
from typing import Any

from ag2_logging.budgets.ledger import Ledger

#: Seconds between moves of settled spend to a shared ledger.
FLUSH_SECONDS = 0.5
#: Part of the headroom last seen that one lease takes beyond the call's own worst case.
LEASE_FRACTION = Decimal("0.0625")
_ZERO = Decimal(0)
#: Ledgers keep 10 decimal places (``models.MONEY_PLACES``): amounts are rounded up to them.
CENT_FRACTION = Decimal("1e-10")


def money(amount: Decimal) -> Decimal:
    """``amount`` rounded up to the ledgers' 10 decimal places (what a ledger row can hold)."""
    return amount.quantize(CENT_FRACTION, rounding=ROUND_CEILING)


class LocalLedger:
    """An in-memory ledger: per-session budgets (a session's calls run in its own process)."""

    def __init__(self) -> None:
        self._rows: dict[str, list[Decimal]] = {}
        self._soft: set[str] = set()
        self._lock = threading.Lock()

    def take(
        self, key: str, amount: Decimal, limit: Decimal, others: list[str], meta: dict[str, Any]
    ) -> bool:
        with self._lock:
            row = self._rows.setdefault(key, [_ZERO, _ZERO])
            if row[0] + row[1] + amount > limit:
                return False
            row[1] += amount
            return True

    def move(self, key: str, spent: Decimal, unreserve: Decimal) -> None:
        with self._lock:
            row = self._rows.setdefault(key, [_ZERO, _ZERO])
            row[0] += spent
            row[1] -= unreserve

    def totals(self, key: str) -> tuple[Decimal, Decimal]:
        row = self._rows.get(key) or [_ZERO, _ZERO]
        return row[0], row[1]

    def claim_soft(self, key: str) -> bool:
        with self._lock:
            first = key not in self._soft
            self._soft.add(key)
            return first

    def forget(self, prefix: str) -> None:
        with self._lock:
            for key in [k for k in self._rows if k.startswith(prefix)]:
                self._rows.pop(key, None)
                self._soft.discard(key)


class Account:
    """This process's view of one ledger key (amounts in USD, Decimal)."""

    def __init__(
        self, ledger: Ledger, key: str, others: list[str], meta: dict[str, Any], *, lease: bool
    ) -> None:
        self.ledger, self.key, self.others, self.meta = ledger, key, others, meta
        self.leases = lease
        self.lock = threading.RLock()
        self.lease = _ZERO  # what this process holds in the ledger's ``reserved``
        self.in_flight = _ZERO  # reservations of calls not settled yet
        self.unflushed = _ZERO  # settled spend not moved to the ledger yet
        self.known_spent = _ZERO  # the ledger's ``spent`` at the last move
        self.known_total = _ZERO  # the ledger's ``spent + reserved`` at the last move
        self.soft_done = False
        self.flushed_at = time.monotonic()

    def free(self) -> Decimal:
        return self.lease - self.in_flight - self.unflushed

    def reserve(self, amount: Decimal, limit: Decimal) -> bool:
        """Reserve ``amount``; False when ``limit`` would be passed (nothing reserved then)."""
        with self.lock:
            free = self.free()
            if free >= amount:
                self.in_flight += amount
                return True
            need = amount - max(free, _ZERO)
            extra = money((limit - self.known_total - need) * LEASE_FRACTION) if self.leases else _ZERO
            for want in (need + extra, need) if extra > 0 else (need,):
                if self.ledger.take(self.key, want, limit, self.others, self.meta):
                    self.lease += want
                    self.in_flight += amount
                    return True
            self.flush(force=True)
            return False

    def release(self, amount: Decimal) -> None:
        """A reserved call was not sent or failed: its reservation is free again."""
        with self.lock:
            self.in_flight -= amount
        self.flush()

    def settle(self, amount: Decimal, cost: Decimal) -> None:
        """A reserved call cost ``cost``: its reservation becomes spend."""
        with self.lock:
            self.in_flight -= amount
            self.unflushed += cost
        self.flush()

    def flush(self, *, force: bool = False) -> None:
        """Move settled spend to the ledger and give back the unused allowance (when due)."""
        with self.lock:
            if not force and self.leases and time.monotonic() - self.flushed_at < FLUSH_SECONDS:
                return
            spent, unreserve = self.unflushed, max(self.lease - self.in_flight, _ZERO)
            if spent or unreserve:
                self.ledger.move(self.key, spent, unreserve)
            self.lease -= unreserve
            self.unflushed = _ZERO
            self.flushed_at = time.monotonic()
            ledger_spent, reserved = self.ledger.totals(self.key)
            self.known_spent, self.known_total = ledger_spent, ledger_spent + reserved
