"""The shared ledgers: the database (default) and Redis (``AG2_LOGGING["BUDGET_REDIS_URL"]``).

A ledger holds, per key (``<budget id>:<period key>:<scope value>``), ``spent`` (settled cost)
and ``reserved`` (worst-case cost of calls in flight plus allowances processes hold), in USD.
``take`` adds to ``reserved`` only if ``spent + reserved + amount`` stays within the limit, in
one atomic step (a conditional UPDATE; a Lua script on Redis), so two processes can never both
pass the check with the same headroom. Every method is sync and does I/O: never call it on an
event loop thread (``budgets.enforce`` moves it to a worker thread).
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any, Protocol

from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from ag2_logging.models import MONEY_PLACES, BudgetLedger

VERSION_KEY = "version"
_UNIT = Decimal(1).scaleb(-MONEY_PLACES)


class Ledger(Protocol):
    def take(
        self, key: str, amount: Decimal, limit: Decimal, others: list[str], meta: dict[str, Any]
    ) -> bool:
        """Reserve ``amount`` under ``key`` if the total of ``key`` and ``others`` (older hours
        of a rolling window) plus ``amount`` stays within ``limit``; False if it would not."""

    def move(self, key: str, spent: Decimal, unreserve: Decimal) -> None:
        """Add ``spent`` to ``spent`` and take ``unreserve`` off ``reserved``."""

    def totals(self, key: str) -> tuple[Decimal, Decimal]:
        """``(spent, reserved)`` of ``key`` (zeros when unknown)."""

    def claim_soft(self, key: str) -> bool:
        """True the first time only (per key): the soft threshold's signal is this caller's."""


def to_units(amount: Decimal) -> int:
    """USD as an integer count of 1e-10 dollars, rounded up."""
    return int((amount / _UNIT).to_integral_value(rounding=ROUND_CEILING))


def from_units(units: int | bytes | str | None) -> Decimal:
    return Decimal(int(units or 0)) * _UNIT


class DatabaseLedger:
    """``BudgetLedger`` rows, one atomic UPDATE per operation (SQLite, PostgreSQL, MySQL)."""

    def _ensure(self, key: str, meta: dict[str, Any]) -> None:
        if BudgetLedger.objects.filter(key=key).exists():
            return
        try:
            with transaction.atomic():
                BudgetLedger.objects.create(key=key, **meta)
        except IntegrityError:
            pass  # another process created it first

    def take(
        self, key: str, amount: Decimal, limit: Decimal, others: list[str], meta: dict[str, Any]
    ) -> bool:
        headroom = limit - amount
        if others:
            older = BudgetLedger.objects.filter(key__in=others).aggregate(s=Sum(F("spent") + F("reserved")))[
                "s"
            ]
            headroom -= Decimal(str(older or 0))
        rows = BudgetLedger.objects.filter(key=key).filter(spent__lte=headroom - F("reserved"))
        if rows.update(reserved=F("reserved") + amount):
            return True
        if BudgetLedger.objects.filter(key=key).exists():
            return False
        self._ensure(key, meta)
        rows = BudgetLedger.objects.filter(key=key).filter(spent__lte=headroom - F("reserved"))
        return bool(rows.update(reserved=F("reserved") + amount))

    def move(self, key: str, spent: Decimal, unreserve: Decimal) -> None:
        BudgetLedger.objects.filter(key=key).update(
            spent=F("spent") + spent, reserved=F("reserved") - unreserve
        )

    def totals(self, key: str) -> tuple[Decimal, Decimal]:
        row = BudgetLedger.objects.filter(key=key).values_list("spent", "reserved").first()
        if not row:
            return Decimal(0), Decimal(0)
        # Rounded to the ledger's places: SQLite adds and subtracts them as floats.
        return Decimal(str(row[0])).quantize(_UNIT), Decimal(str(row[1])).quantize(_UNIT)

    def claim_soft(self, key: str) -> bool:
        return bool(
            BudgetLedger.objects.filter(key=key, soft_sent_at__isnull=True).update(
                soft_sent_at=timezone.now()
            )
        )

    @staticmethod
    def version() -> int:
        """The budgets' version counter (``Budget.save``/``delete`` add one)."""
        value = BudgetLedger.objects.filter(key=VERSION_KEY).values_list("counter", flat=True).first()
        return int(value or 0)


_TAKE = """
local total = 0
for i, k in ipairs(KEYS) do
  total = total + tonumber(redis.call('HGET', k, 'spent') or '0') + tonumber(redis.call('HGET', k, 'reserved') or '0')
end
if total + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[1])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIREAT', KEYS[1], ARGV[3]) end
return 1
"""


class RedisLedger:
    """Hashes ``ag2_logging:budget:<key>`` (``spent``, ``reserved`` in 1e-10 USD, ``soft``),
    expiring a day after their period ends. The budgets' version counter stays in the database."""

    PREFIX = "ag2_logging:budget:"

    def __init__(self, url: str) -> None:
        import redis

        self._redis: Any = redis.Redis.from_url(url)
        self._take = self._redis.register_script(_TAKE)

    def take(
        self, key: str, amount: Decimal, limit: Decimal, others: list[str], meta: dict[str, Any]
    ) -> bool:
        end: datetime | None = meta.get("period_end")
        expire = int(end.timestamp()) + 86_400 if end is not None else 0
        keys = [self.PREFIX + key, *(self.PREFIX + k for k in others)]
        return bool(self._take(keys=keys, args=[to_units(amount), to_units(limit), expire]))

    def move(self, key: str, spent: Decimal, unreserve: Decimal) -> None:
        pipe = self._redis.pipeline()
        pipe.hincrby(self.PREFIX + key, "spent", to_units(spent))
        pipe.hincrby(self.PREFIX + key, "reserved", -to_units(unreserve))
        pipe.execute()

    def totals(self, key: str) -> tuple[Decimal, Decimal]:
        spent, reserved = self._redis.hmget(self.PREFIX + key, "spent", "reserved")
        return from_units(spent), from_units(reserved)

    def claim_soft(self, key: str) -> bool:
        return bool(self._redis.hsetnx(self.PREFIX + key, "soft", 1))
